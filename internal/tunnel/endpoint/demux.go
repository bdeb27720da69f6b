package endpoint

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

// Demux splits one TCP listener by the first bytes a client sends: "SSH-"
// goes to the SSH handler, a TLS handshake record (0x16 0x03) to the
// listener returned for HTTPS, anything else is closed. Sniffing happens
// once per connection in its own goroutine, never per request and never on
// the Accept path, so a silent client delays nobody (and is cut after
// SniffTimeout).
type Demux struct {
	raw          net.Listener
	ssh          func(net.Conn)
	log          *slog.Logger
	sniffTimeout time.Duration
	// gate bounds each address's connections not authenticated yet
	// (limits.go).
	gate *preAuthGate

	tlsConns chan net.Conn
	closed   chan struct{}
	once     sync.Once
}

// NewDemux starts accepting on raw, with the default cap of connections
// not authenticated yet per address (Limits.PreAuthPerAddr).
func NewDemux(raw net.Listener, sshHandler func(net.Conn), sniffTimeout time.Duration, log *slog.Logger) *Demux {
	var l Limits
	l.fill()
	return newDemux(raw, sshHandler, sniffTimeout, log, newPreAuthGate(l.PreAuthPerAddr))
}

func newDemux(raw net.Listener, sshHandler func(net.Conn), sniffTimeout time.Duration, log *slog.Logger, gate *preAuthGate) *Demux {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Demux{raw: raw, ssh: sshHandler, log: log, sniffTimeout: sniffTimeout, gate: gate,
		tlsConns: make(chan net.Conn), closed: make(chan struct{})}
	go d.loop()
	return d
}

func (d *Demux) loop() {
	var delay time.Duration
	for {
		c, err := d.raw.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if delay == 0 {
					delay = 5 * time.Millisecond
				} else if delay *= 2; delay > time.Second {
					delay = time.Second
				}
				time.Sleep(delay)
				continue
			}
			d.Close()
			return
		}
		delay = 0
		go d.sniff(c)
	}
}

func (d *Demux) sniff(c net.Conn) {
	slot, ok := d.gate.admit(c)
	if !ok {
		c.Close() // too many connections of this address not authenticated yet
		return
	}
	c.SetReadDeadline(time.Now().Add(d.sniffTimeout))
	br := bufio.NewReaderSize(c, 512)
	head, err := br.Peek(4)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		slot.release()
		c.Close()
		return
	}
	pc := &peekedConn{Conn: c, r: br}
	switch {
	case string(head) == "SSH-":
		defer slot.release()
		if d.ssh == nil {
			c.Close()
			return
		}
		d.ssh(&sshPreAuthConn{peekedConn: pc, slot: slot})
	case head[0] == 0x16 && head[1] == 0x03:
		select {
		case d.tlsConns <- &tlsPreAuthConn{peekedConn: pc, slot: slot}:
		case <-d.closed:
			slot.release()
			c.Close()
		}
	case plainHTTP(head):
		// A plain-HTTP client (omactl or curl given the public port
		// without https://): answer as a TLS-only Go server would, so it
		// can tell the user which listener this is, then close.
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write([]byte(plainHTTPAnswer))
		c.Close()
	default:
		d.log.Debug("public port: closing a connection that is neither TLS nor SSH", "remote", c.RemoteAddr().String())
		slot.release()
		c.Close()
	}
}

// Accept returns the next TLS connection.
func (d *Demux) Accept() (net.Conn, error) {
	select {
	case c := <-d.tlsConns:
		return c, nil
	case <-d.closed:
		return nil, net.ErrClosed
	}
}

// Close stops accepting.
func (d *Demux) Close() error {
	var err error
	d.once.Do(func() {
		close(d.closed)
		err = d.raw.Close()
	})
	return err
}

// Addr is the listener's address.
func (d *Demux) Addr() net.Addr { return d.raw.Addr() }

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// Unwrap is the connection underneath (to reset it on an abort).
func (p *peekedConn) Unwrap() net.Conn { return p.Conn }

// Listener adapts Demux for server.Run's public-listener hook.
func (e *Endpoint) Listener(ctx context.Context, sniffTimeout time.Duration) func(raw net.Listener) net.Listener {
	return func(raw net.Listener) net.Listener {
		return newDemux(raw, func(c net.Conn) { e.Serve(ctx, c) }, sniffTimeout, e.log, e.lim.preAuth)
	}
}

// plainHTTPAnswer is what the public port says to a plain-HTTP request.
const plainHTTPAnswer = "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	api.HeaderListener + ": public\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"

// plainHTTP reports whether the first bytes of a connection start an HTTP
// request.
func plainHTTP(head []byte) bool {
	switch string(head) {
	case "GET ", "POST", "HEAD", "PUT ", "DELE", "PATC", "OPTI":
		return true
	}
	return false
}
