package endpoint

// The OMA's side of the TLS data path (the protocol: tunnel/dataproto.go):
// ServeData checks a VMA's key on a data stream and carries it to the NBD
// target.

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/ratelimit"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
	"github.com/oma-enroll/oma-enroll/internal/vmaauth"
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

func (d *dataConn) close() { d.once.Do(func() { tunnel.Abort(d.conn) }) } // an error on the VMA's side, not an end of data

// DataTLSConfig is the TLS configuration of the data path, made from the
// public port's: a VMA client certificate is required, TLS 1.3 only.
func DataTLSConfig(public *tls.Config) *tls.Config {
	return vmaauth.ServerConfig(public, tunnel.ALPNData)
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
			io.WriteString(c, tunnel.DataRefused+"\n")
		} else {
			e.log.Warn("tunnel data stream: key check failed; the VMA retries", "remote", remote, "err", err)
			io.WriteString(c, tunnel.DataUnavailable+"\n")
		}
		return
	}
	dc := &dataConn{id: id.EnrollmentID, conn: c, key: clientKeyLine(c.ConnectionState()), keyFP: id.Fingerprint}
	if !e.addData(dc) {
		io.WriteString(c, tunnel.DataUnavailable+"\n")
		return
	}
	defer e.removeData(dc)
	nbd, err := net.DialTimeout("tcp", e.cfg.NBDTarget, 5*time.Second)
	if err != nil {
		io.WriteString(c, tunnel.DataNoTarget+"\n")
		return
	}
	defer nbd.Close()
	if _, err := io.WriteString(c, tunnel.DataOK); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	e.log.Debug("tunnel data stream up", "enrollment_id", id.EnrollmentID, "vma_name", id.VMAName, "remote", remote)
	e.gc.Begin()
	defer e.gc.End()
	// Bulk reads below TLS, coalesced writes to NBD (tunnel/copy.go), when the
	// public port's listener offers them.
	var buffered func() int
	if ra, ok := c.NetConn().(interface{ ReadAhead(int) func() int }); ok {
		buffered = ra.ReadAhead(tunnel.BulkBufferSize)
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
			_, err = tunnel.CoalescingCopy(dst, src, aBuffered)
		} else {
			_, err = tunnel.BulkCopy(dst, src)
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
			cw.CloseWrite()
		} else {
			// An error (a reset, a revocation) ends both directions at once,
			// so that both peers see it as an error, not as an end of data.
			tunnel.Abort(a)
			tunnel.Abort(b)
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
