// Package server is oma-server's HTTP side: the admin listener (token
// authenticated admin API, /health, /metrics) and the public listener (TLS,
// the three enrollment endpoints and /health only, rate-limited), built as
// two separate muxes so that nothing can leak from one to the other.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/ratelimit"
)

// TunnelConfig is what approved VMAs are told about their tunnel.
type TunnelConfig struct {
	Host         string // empty: the VMA uses the address it enrolled through
	Port         int    // SSH port (the public port in embedded mode)
	User         string
	HostKey      string // authorized_keys line of the SSH host key
	NBDListen    string // VMA-local side of the NBD forward
	NBDTarget    string // OMA side of the NBD forward
	VMAAPITarget string // VMA-local target of the reverse forward
}

// Config configures a Server.
type Config struct {
	AdminListen  string
	PublicListen string
	// JoinAddress is HOST:PORT as VMAs reach the public listener; it goes
	// into join commands. Empty: derived from PublicHost and the bound port.
	JoinAddress string
	PublicHost  string
	TLS         tls.Certificate

	TrustedProxies []netip.Prefix
	Tunnel         TunnelConfig

	// RatePerSecond and RateBurst bound public requests per client IP.
	RatePerSecond float64
	RateBurst     int
	// CodeFailuresPerMinute and CodeFailureBurst bound rejected pairing
	// codes per client IP (stricter).
	CodeFailuresPerMinute float64
	CodeFailureBurst      int
	// MaxWaitersPerIP bounds concurrent long polls per client IP.
	MaxWaitersPerIP int

	ShutdownTimeout time.Duration

	// TunnelState, when set, reports the tunnel endpoint in the admin health.
	TunnelState func() api.TunnelState

	// AdminTLS, when set, makes the admin listener serve HTTPS with it
	// (plain HTTP otherwise, which omactl uses by default).
	AdminTLS *tls.Config

	// Reactions, when set, is told of each committed approval and
	// revocation (the tunnel driver of internal/app).
	Reactions Reactions
	// Metrics is the /metrics registry; nil: one of the server's own over
	// the store (its audit counters then count nothing unless the
	// service's OnAudit feeds Metrics.ObserveAudit).
	Metrics *Metrics
}

func (c *Config) fill() {
	if c.RatePerSecond == 0 {
		c.RatePerSecond = 5
	}
	if c.RateBurst == 0 {
		c.RateBurst = 20
	}
	if c.CodeFailuresPerMinute == 0 {
		c.CodeFailuresPerMinute = 5
	}
	if c.CodeFailureBurst == 0 {
		c.CodeFailureBurst = 5
	}
	if c.MaxWaitersPerIP == 0 {
		c.MaxWaitersPerIP = 64
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Tunnel.User == "" {
		c.Tunnel.User = contract.TunnelUser
	}
	if c.Tunnel.NBDListen == "" {
		c.Tunnel.NBDListen = contract.VMANBDListen
	}
	if c.Tunnel.NBDTarget == "" {
		c.Tunnel.NBDTarget = contract.NBDTarget
	}
	if c.Tunnel.VMAAPITarget == "" {
		c.Tunnel.VMAAPITarget = contract.VMAAPITarget
	}
}

// Server runs both listeners over one enrollment service.
type Server struct {
	cfg       Config
	svc       Service
	store     Store
	log       *slog.Logger
	metrics   *Metrics
	reqLimit  *ratelimit.Limiter
	codeLimit *ratelimit.Limiter
	waiters   *ratelimit.Concurrent
	dbCheck   dbCheck // the public /health's view of the database

	// certs is the public certificate, hostKey the tunnel's SSH host key
	// once it changed (omakeys.go).
	certs   atomic.Pointer[certSet]
	hostKey atomic.Pointer[string]

	// reactions is told of approvals and revocations (Config.Reactions).
	reactions Reactions
	// ui, when set, serves every admin path that is not an API route (SetUI).
	ui http.Handler
	// protocols are TLS protocols of our own on the public port (alpn.go).
	protocols []tlsProtocol

	mu          sync.Mutex
	adminLn     net.Listener
	publicLn    net.Listener
	publicInner net.Listener
	ready       chan struct{}
}

// New builds a server over the enrollment service and the store (health and
// the /metrics gauges). It does not listen until Run.
func New(cfg Config, svc Service, store Store, log *slog.Logger) (*Server, error) {
	cfg.fill()
	if len(cfg.TLS.Certificate) == 0 || cfg.TLS.Leaf == nil {
		return nil, errors.New("server: a TLS certificate (with Leaf) is required for the public listener")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := cfg.Metrics
	if m == nil {
		m = NewMetrics(svc)
	}
	s := &Server{
		cfg: cfg, svc: svc, store: store, log: log,
		metrics:   m,
		reactions: cfg.Reactions,
		reqLimit:  ratelimit.New(cfg.RatePerSecond, cfg.RateBurst),
		codeLimit: ratelimit.New(cfg.CodeFailuresPerMinute/60, cfg.CodeFailureBurst),
		waiters:   ratelimit.NewConcurrent(cfg.MaxWaitersPerIP),
		ready:     make(chan struct{}),
	}
	if err := s.SetCertificates(cfg.TLS, nil); err != nil {
		return nil, err
	}
	if err := m.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "oma_enroll_long_polls_waiting",
		Help: "Result long polls this instance holds open now.",
	}, func() float64 { return float64(s.waiters.Total()) })); err != nil {
		return nil, fmt.Errorf("server: metrics: %w (one Metrics per server)", err)
	}
	return s, nil
}

// SetUI mounts h (the admin web UI) at "/" on the admin listener; every
// /api/... route, /health and /metrics stay as they are, and unknown /api/
// paths still get the JSON 404. Call it before Run.
func (s *Server) SetUI(h http.Handler) { s.ui = h }

// Fingerprint is the SPKI fingerprint of the public certificate.
func (s *Server) Fingerprint() string { return s.certs.Load().fingerprint }

// LongPolls counts the result long polls this instance holds open now.
func (s *Server) LongPolls() int { return s.waiters.Total() }

// AdminFingerprint is the SPKI fingerprint of the admin listener's
// certificate, or "" when the admin listener speaks plain HTTP.
func (s *Server) AdminFingerprint() string {
	if s.cfg.AdminTLS == nil || len(s.cfg.AdminTLS.Certificates) == 0 {
		return ""
	}
	c := s.cfg.AdminTLS.Certificates[0]
	leaf := c.Leaf
	if leaf == nil && len(c.Certificate) > 0 {
		leaf, _ = x509.ParseCertificate(c.Certificate[0])
	}
	if leaf == nil {
		return ""
	}
	return SPKIFingerprint(leaf)
}

// Ready is closed once both listeners are bound.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// AdminAddr and PublicAddr are the bound addresses (after Ready).
func (s *Server) AdminAddr() string { return s.adminLn.Addr().String() }

// PublicAddr is the bound public address (after Ready).
func (s *Server) PublicAddr() string { return s.publicInner.Addr().String() }

// TLSConfig is the public listener's TLS configuration.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: TLS12CipherSuites,
		// The current certificate at each handshake (omakeys.go).
		GetCertificate: s.getCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// PublicListener optionally replaces how the public port's raw listener is
// turned into the listener of TLS connections for HTTP (the tunnel endpoint
// uses it to take SSH connections off the same port). It receives the raw
// TCP listener and returns the listener HTTP should serve (plain TCP
// connections carrying TLS).
type PublicListener func(raw net.Listener) net.Listener

// Run binds both listeners, serves until ctx ends, then shuts down
// gracefully: in-flight requests finish and long polls return.
func (s *Server) Run(ctx context.Context, wrapPublic PublicListener) error {
	adminLn, err := net.Listen("tcp", s.cfg.AdminListen)
	if err != nil {
		return fmt.Errorf("admin listener %s: %w", s.cfg.AdminListen, err)
	}
	rawPublic, err := net.Listen("tcp", s.cfg.PublicListen)
	if err != nil {
		adminLn.Close()
		return fmt.Errorf("public listener %s: %w", s.cfg.PublicListen, err)
	}
	httpPublic := rawPublic
	if wrapPublic != nil {
		httpPublic = wrapPublic(rawPublic)
	}
	if s.cfg.AdminTLS != nil {
		adminLn = tls.NewListener(adminLn, s.cfg.AdminTLS)
	}
	s.mu.Lock()
	s.adminLn, s.publicInner = adminLn, rawPublic
	s.publicLn = s.publicTLSListener(httpPublic)
	s.mu.Unlock()
	if s.cfg.JoinAddress == "" {
		_, port, _ := net.SplitHostPort(rawPublic.Addr().String())
		host := s.cfg.PublicHost
		if host == "" {
			host = "localhost"
		}
		s.cfg.JoinAddress = net.JoinHostPort(host, port)
	}
	if s.cfg.Tunnel.Port == 0 {
		_, port, _ := net.SplitHostPort(rawPublic.Addr().String())
		s.cfg.Tunnel.Port, _ = strconv.Atoi(port)
	}

	// baseCtx ends when shutdown starts, so long polls return at once.
	baseCtx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	mk := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      contract.MaxWait + 15*time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    16 << 10,
			BaseContext:       func(net.Listener) context.Context { return baseCtx },
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
	}
	adminSrv := mk(s.adminMux())
	publicSrv := mk(s.publicMux())

	errc := make(chan error, 2)
	go func() { errc <- adminSrv.Serve(adminLn) }()
	go func() { errc <- publicSrv.Serve(s.publicLn) }()
	s.log.Info("oma-server listening", "admin", adminLn.Addr().String(), "admin_tls", s.cfg.AdminTLS != nil, "public", rawPublic.Addr().String(),
		"oma_fingerprint", s.Fingerprint(), "join_address", s.cfg.JoinAddress)
	if fp := s.AdminFingerprint(); fp != "" {
		s.log.Info("the admin listener serves HTTPS; omactl trusts its certificate with --fingerprint", "admin_fingerprint", fp)
	}
	close(s.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			runErr = err
		}
	}
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout)
	cancelBase()
	shCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := publicSrv.Shutdown(shCtx); err != nil {
		s.log.Warn("public shutdown", "err", err)
	}
	if err := adminSrv.Shutdown(shCtx); err != nil {
		s.log.Warn("admin shutdown", "err", err)
	}
	return runErr
}

// dbCheck caches whether the database answers a ping, refreshing it at
// most once per dbCheckMaxAge; while a ping is under way, other callers get
// the last answer (or, before the first one, wait for it) instead of
// pinging too.
type dbCheck struct {
	mu     sync.Mutex
	at     time.Time
	up     bool
	flight chan struct{} // closed when the ping under way answers
}

const dbCheckMaxAge = time.Second

func (c *dbCheck) ok(ctx context.Context, ping func(context.Context) error) bool {
	c.mu.Lock()
	if c.flight != nil || (!c.at.IsZero() && time.Since(c.at) < dbCheckMaxAge) {
		up, flight, first := c.up, c.flight, c.at.IsZero()
		c.mu.Unlock()
		if flight != nil && first {
			<-flight // no answer yet to give: the first one's
			c.mu.Lock()
			up = c.up
			c.mu.Unlock()
		}
		return up
	}
	flight := make(chan struct{})
	c.flight = flight
	c.mu.Unlock()
	// The check does not end with the request that started it: its answer
	// serves the others.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	up := ping(pctx) == nil
	c.mu.Lock()
	c.at, c.up, c.flight = time.Now(), up, nil
	c.mu.Unlock()
	close(flight)
	return up
}
