package vmaclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
)

// EventDataPath says, once per connection, how forwarded NBD connections
// travel: as TLS data streams of their own, or inside the SSH connection.
const EventDataPath EventType = "data_path"

// localDialer picks the way of each forwarded local connection during one
// SSH session: a TLS data stream of its own (DialData below) while fewer than
// DataConnections streams are open and the OMA offers the data path, else
// a channel of the SSH connection. So a migration tool's NBD connections
// spread over several connections to the OMA, and over several cores
// there, and the tunnel never waits for a free stream.
type localDialer struct {
	c      *Client
	client *ssh.Client
	active atomic.Int32
	// off is set when the OMA does not offer the data path (or refused
	// it): the rest of the session uses the SSH connection.
	off      atomic.Bool
	announce sync.Once
}

func (c *Client) newLocalDialer(client *ssh.Client) *localDialer {
	d := &localDialer{c: c, client: client}
	if c.cfg.DataTLS == nil || c.cfg.DataConnections <= 0 || c.cfg.DataAddr == "" {
		d.off.Store(true)
	}
	return d
}

// dial connects one forwarded connection to f.Target on the OMA. release
// must be called when the connection ends.
func (d *localDialer) dial(ctx context.Context, f api.Forward) (conn net.Conn, release func(), err error) {
	if !d.off.Load() && f.Target == d.c.cfg.DataTarget {
		if n := d.active.Add(1); n <= int32(d.c.cfg.DataConnections) {
			dctx, cancel := context.WithTimeout(ctx, d.c.cfg.ConnectTimeout)
			conn, err := DialData(dctx, d.c.cfg.DataAddr, d.c.cfg.DataTLS)
			cancel()
			if err == nil {
				d.announce.Do(func() {
					d.c.emit(Event{Type: EventDataPath, Direction: "local", Listen: f.Listen, Target: f.Target,
						Message: fmt.Sprintf("NBD connections ride TLS data streams of their own (up to %d at once, more share the SSH connection)", d.c.cfg.DataConnections)})
				})
				return conn, func() { d.active.Add(-1) }, nil
			}
			d.active.Add(-1)
			// Whatever failed (no data path there, a refusal, a certificate
			// that does not match the pin, the network), this connection and
			// the rest of the session take the SSH way; the next connection
			// to the OMA tries again.
			if ctx.Err() == nil {
				d.off.Store(true)
				d.announce.Do(func() {
					d.c.emit(Event{Type: EventDataPath, Direction: "local", Listen: f.Listen, Target: f.Target, Reason: err.Error(),
						Message: "NBD connections ride the SSH connection: " + err.Error()})
				})
			}
		} else {
			d.active.Add(-1)
		}
	}
	rc, err := d.client.Dial("tcp", f.Target)
	return rc, func() {}, err
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
	bc := &tunnel.BatchConn{Conn: raw}
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
	if c.ConnectionState().NegotiatedProtocol != tunnel.ALPNData {
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
	case line == strings.TrimSuffix(tunnel.DataOK, "\n"):
		return tunnel.NewBatchedTLS(c, bc), nil
	case line == tunnel.DataRefused:
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
	for len(line) < tunnel.MaxDataLineBytes {
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
