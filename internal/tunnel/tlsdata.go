package tunnel

// The TLS data path of the tunnel (issue 12): `vma-enroll tunnel` can carry
// each NBD connection as a TLS 1.3 stream of its own on the OMA's public
// port, instead of a channel of its SSH connection. x/crypto/ssh copies
// every packet it reads and runs all channels of a connection through one
// reader goroutine; a TLS stream has neither cost, and several streams use
// several cores.
//
// Protocol "oma-nbd/1": the VMA offers the ALPN name ALPNData, presents its
// enrolled Ed25519 key as a self-signed client certificate (vmaauth) and
// pins the OMA's TLS certificate as enrollment did. After the handshake
// the OMA checks the key against the approved enrollments, exactly as the
// SSH endpoint checks a login, and answers one line: "OK\n", or
// "ERR <reason>\n" and the end of the connection. After "OK" the stream
// is the NBD connection, byte for byte, to the endpoint's NBD target; the
// OMA closes it at revocation as it closes the SSH tunnels, and once its
// key was rotated away and is no longer accepted (Endpoint.recheck).

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/ratelimit"
	"github.com/oma-enroll/oma-enroll/internal/vmaauth"
)

// ALPNData is the ALPN protocol name of the TLS data path.
const ALPNData = "oma-nbd/1"

// Answers of the OMA after the handshake of a data stream.
const (
	dataOK           = "OK\n"
	dataRefused      = "ERR refused"     // the key is not approved
	dataUnavailable  = "ERR unavailable" // the check failed; retry
	dataNoTarget     = "ERR target"      // the NBD target does not answer
	maxDataLineBytes = 256
)

// dataConn is one live TLS data stream of an enrollment.
type dataConn struct {
	id   string
	conn net.Conn
	once sync.Once
	// key and keyFP are the key the stream was authenticated with: once
	// the VMA rotated it away, the stream lasts only while the OMA still
	// accepts it, as an SSH tunnel of that key (recheck).
	key, keyFP string
}

func (d *dataConn) close() { d.once.Do(func() { abort(d.conn) }) } // an error on the VMA's side, not an end of data

// DataTLSConfig is the TLS configuration of the data path, made from the
// public port's: a VMA client certificate is required, TLS 1.3 only.
func DataTLSConfig(public *tls.Config) *tls.Config {
	return vmaauth.ServerConfig(public, ALPNData)
}

// ServeData serves one TLS data stream whose handshake is done. It
// returns when the stream ends.
func (e *Endpoint) ServeData(ctx context.Context, c *tls.Conn) {
	e.wg.Add(1)
	defer e.wg.Done()
	defer c.Close()
	remote := c.RemoteAddr().String()
	remoteIP, _, _ := net.SplitHostPort(remote)
	// The same per-address budgets as an SSH login: a stream costs a
	// connection from the address's rate, a refused key one failed login,
	// and an address out of failed logins gets no key check at all.
	key := ratelimit.Key(remoteIP)
	if !e.admitConn(key) {
		return
	}
	c.SetDeadline(time.Now().Add(e.cfg.HandshakeTimeout))
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	id, err := vmaauth.Authenticate(actx, e.svc, c.ConnectionState())
	cancel()
	if err != nil {
		if enroll.ErrorCode(err) == enroll.CodeUnauthorized {
			e.lim.authFailures.Add(1)
			e.lim.authFail.Charge(key)
			e.log.Info("tunnel data stream refused", "remote", remote, "err", clip(err.Error(), maxErrText))
			io.WriteString(c, dataRefused+"\n")
		} else {
			e.log.Warn("tunnel data stream: key check failed; the VMA retries", "remote", remote, "err", err)
			io.WriteString(c, dataUnavailable+"\n")
		}
		return
	}
	dc := &dataConn{id: id.EnrollmentID, conn: c, key: clientKeyLine(c.ConnectionState()), keyFP: id.Fingerprint}
	if !e.addData(dc) {
		io.WriteString(c, dataUnavailable+"\n")
		return
	}
	defer e.removeData(dc)
	nbd, err := net.DialTimeout("tcp", e.cfg.NBDTarget, 5*time.Second)
	if err != nil {
		io.WriteString(c, dataNoTarget+"\n")
		return
	}
	defer nbd.Close()
	if _, err := io.WriteString(c, dataOK); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	e.log.Debug("tunnel data stream up", "enrollment_id", id.EnrollmentID, "vma_name", id.VMAName, "remote", remote)
	e.gc.begin()
	defer e.gc.end()
	// Bulk reads below TLS, coalesced writes to NBD (copy.go), when the
	// public port's listener offers them.
	var buffered func() int
	if ra, ok := c.NetConn().(interface{ ReadAhead(int) func() int }); ok {
		buffered = ra.ReadAhead(bulkBufferSize)
	}
	pipeConns(c, nbd, buffered)
}

// pipeConns copies both ways with bulk buffers (a's reads coalesced when
// aBuffered is given), passing each end of data
// on as a half-close, until both directions ended.
func pipeConns(a, b net.Conn, aBuffered func() int) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		var err error
		if src == a && aBuffered != nil {
			_, err = coalescingCopy(dst, src, aBuffered)
		} else {
			_, err = bulkCopy(dst, src)
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
			cw.CloseWrite()
		} else {
			// An error (a reset, a revocation) ends both directions at once,
			// so that both peers see it as an error, not as an end of data.
			abort(a)
			abort(b)
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}

// addData registers a data stream; false while the endpoint shuts down.
func (e *Endpoint) addData(d *dataConn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		return false
	}
	if e.data == nil {
		e.data = map[string]map[*dataConn]bool{}
	}
	if e.data[d.id] == nil {
		e.data[d.id] = map[*dataConn]bool{}
	}
	e.data[d.id][d] = true
	return true
}

func (e *Endpoint) removeData(d *dataConn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.data[d.id], d)
	if len(e.data[d.id]) == 0 {
		delete(e.data, d.id)
	}
}

// closeData closes the data streams of id, or of every enrollment when id
// is "".
func (e *Endpoint) closeData(id string) {
	e.mu.Lock()
	var list []*dataConn
	for k, set := range e.data {
		if id == "" || k == id {
			for d := range set {
				list = append(list, d)
			}
		}
	}
	e.mu.Unlock()
	for _, d := range list {
		d.close()
	}
}

// clientKeyLine is the authorized_keys line of the client certificate's
// key of an authenticated stream ("" if it cannot be read: the stream is
// then re-checked by its enrollment's status only).
func clientKeyLine(cs tls.ConnectionState) string {
	pub, err := vmaauth.ClientKey(cs)
	if err != nil {
		return ""
	}
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		return ""
	}
	return string(ssh.MarshalAuthorizedKey(sk))
}

// liveData is the data streams of id.
func (e *Endpoint) liveData(id string) []*dataConn {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*dataConn, 0, len(e.data[id]))
	for d := range e.data[id] {
		out = append(out, d)
	}
	return out
}

// liveIDs is every enrollment with an SSH tunnel or a data stream here.
func (e *Endpoint) liveIDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make([]string, 0, len(e.conns)+len(e.data))
	for id := range e.conns {
		ids = append(ids, id)
	}
	for id := range e.data {
		if e.conns[id] == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// LiveDataStreams counts the TLS data streams this instance carries.
func (e *Endpoint) LiveDataStreams() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, set := range e.data {
		n += len(set)
	}
	return n
}

// ErrDataRefused means the OMA refused the key on the data path.
var ErrDataRefused = errors.New("the OMA refused this VMA's key on the TLS data path")

// errDataUnsupported means the OMA does not offer the TLS data path at
// this address (an older OMA, or sshd in the openssh tunnel mode).
var errDataUnsupported = errors.New("the OMA does not offer the TLS data path here")

// DialData opens one TLS data stream to addr and waits for the OMA's
// answer. cfg is the VMA's TLS configuration (pinned OMA certificate,
// client certificate, NextProtos = ALPNData).
func DialData(ctx context.Context, addr string, cfg *tls.Config) (net.Conn, error) {
	nd := net.Dialer{KeepAlive: 30 * time.Second}
	raw, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	bc := &batchConn{Conn: raw}
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	c := tls.Client(bc, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		var rec tls.RecordHeaderError
		var alert tls.AlertError
		if errors.As(err, &rec) || (errors.As(err, &alert) && alert == 120) { // no_application_protocol
			return nil, fmt.Errorf("%w: %v", errDataUnsupported, err)
		}
		return nil, err
	}
	if c.ConnectionState().NegotiatedProtocol != ALPNData {
		c.Close()
		return nil, errDataUnsupported
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetReadDeadline(dl)
	}
	line, err := readLine(c)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS data stream: no answer from the OMA: %w", err)
	}
	switch {
	case line == strings.TrimSuffix(dataOK, "\n"):
		return &batchedTLS{Conn: c, b: bc}, nil
	case line == dataRefused:
		c.Close()
		return nil, ErrDataRefused
	default:
		c.Close()
		return nil, fmt.Errorf("TLS data stream: the OMA answered %q", enroll.Printable(line))
	}
}

// readLine reads one line byte by byte, so that no byte after it is
// consumed.
func readLine(r io.Reader) (string, error) {
	var b [1]byte
	var line []byte
	for len(line) < maxDataLineBytes {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", err
		}
		if b[0] == '\n' {
			return string(line), nil
		}
		line = append(line, b[0])
	}
	return "", errors.New("answer line too long")
}
