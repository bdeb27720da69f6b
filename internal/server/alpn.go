package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"time"
)

// A TLS protocol of our own on the public port, next to HTTP: a client that
// offers its ALPN name gets that protocol's TLS configuration (e.g. a
// required VMA client certificate, vmaauth.ServerConfig) and, once the
// handshake is done, its connection goes to the protocol's handler instead
// of the HTTP server. Clients that do not offer it (browsers, curl,
// vma-enroll's API calls) see the public TLS configuration unchanged.
type tlsProtocol struct {
	name    string
	config  *tls.Config
	handler func(*tls.Conn)
}

// handshakeTimeout bounds the TLS handshake on the public port, as the
// HTTP server's ReadHeaderTimeout did before the handshake moved here.
const handshakeTimeout = 5 * time.Second

// SetTLSProtocol routes TLS connections that negotiate the ALPN protocol
// name to handler after the handshake; config makes the protocol's TLS
// configuration from the public one (its NextProtos must be just name).
// Call it before Run.
func (s *Server) SetTLSProtocol(name string, config func(public *tls.Config) *tls.Config, handler func(*tls.Conn)) {
	s.protocols = append(s.protocols, tlsProtocol{name: name, config: config(s.TLSConfig()), handler: handler})
}

// publicTLSListener is the listener of the public HTTP server: TLS over
// inner, with the handshake done per connection (in its own goroutine) when
// protocols of our own share the port, so that they can be told apart.
func (s *Server) publicTLSListener(inner net.Listener) net.Listener {
	cfg := s.TLSConfig()
	// A VMA may present its enrolled key as a client certificate for the
	// VMA endpoints (vmaself.go): requested, never required, and not
	// verified here, so that every other client is served as before.
	cfg.ClientAuth = tls.RequestClientCert
	if len(s.protocols) == 0 {
		return tls.NewListener(inner, cfg)
	}
	protos := s.protocols
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		for _, p := range protos {
			if slices.Contains(hello.SupportedProtos, p.name) {
				return p.config, nil
			}
		}
		return nil, nil
	}
	l := &alpnListener{inner: inner, config: cfg, protocols: protos,
		conns: make(chan net.Conn), closed: make(chan struct{})}
	go l.loop()
	return l
}

type alpnListener struct {
	inner     net.Listener
	config    *tls.Config
	protocols []tlsProtocol
	conns     chan net.Conn
	closed    chan struct{}
	once      sync.Once
}

func (l *alpnListener) loop() {
	var delay time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			l.Close()
			return
		}
		delay = 0
		go l.handshake(c)
	}
}

func (l *alpnListener) handshake(c net.Conn) {
	tc := tls.Server(&readAheadConn{Conn: c}, l.config)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return
	}
	proto := tc.ConnectionState().NegotiatedProtocol
	for _, p := range l.protocols {
		if p.name == proto {
			p.handler(tc)
			return
		}
	}
	select {
	case l.conns <- tc:
	case <-l.closed:
		tc.Close()
	}
}

// Accept returns the next HTTP connection (its handshake done).
func (l *alpnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops accepting.
func (l *alpnListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.closed)
		err = l.inner.Close()
	})
	return err
}

// Addr is the listener's address.
func (l *alpnListener) Addr() net.Addr { return l.inner.Addr() }

// readAheadConn lets the handler of a protocol of our own switch the
// connection's reads to a large buffer once its handshake is done, for bulk
// data: one read syscall per buffer instead of one or two per TLS record.
// HTTP connections never get one.
type readAheadConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *readAheadConn) Read(p []byte) (int, error) {
	if c.br != nil {
		return c.br.Read(p)
	}
	return c.Conn.Read(p)
}

// ReadAhead switches reads to a buffer of size bytes; call it between
// reads (before the handler's copies start). It returns how many received
// bytes the buffer holds, so that a copy can tell whether reading on would
// wait for the network.
func (c *readAheadConn) ReadAhead(size int) (buffered func() int) {
	c.br = bufio.NewReaderSize(c.Conn, size)
	return c.br.Buffered
}

// Unwrap is the connection underneath (to reset it on an abort).
func (c *readAheadConn) Unwrap() net.Conn { return c.Conn }
