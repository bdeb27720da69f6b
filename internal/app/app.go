// Package app is oma-server as one value: an App built from one Config
// owns the store, the enrollment service, both listeners with the web UI,
// the expirer, the metrics and the tunnel driver (embedded, openssh or
// none), and wires what follows an approval or a revocation. `oma-server
// serve` fills a Config from its settings and runs an App; the in-process
// test server (internal/omatest) and the hardening suite run the same App.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/omakeys"
	"github.com/oma-enroll/oma-enroll/internal/server"
	"github.com/oma-enroll/oma-enroll/internal/store"
	"github.com/oma-enroll/oma-enroll/internal/webui"
)

// Config is everything an App needs, as plain values (the CLI fills it
// from its settings; tests fill it directly). Zero values take defaults
// where the field says so.
type Config struct {
	// DataDir holds the SQLite file, the keys, the certificate and the
	// admin token; created (0700) when missing.
	DataDir string
	// Driver (sqlite or mysql) and DSN name the database.
	Driver, DSN string
	// NoMigrate leaves the schema alone at start.
	NoMigrate bool
	// Log receives every log line (discarded when nil).
	Log *slog.Logger

	// AuditKeyFile holds the audit chain's HMAC key, created when the
	// audit trail is empty (<DataDir>/audit.key when empty). AuditKey,
	// when set, is used instead (tests).
	AuditKeyFile string
	AuditKey     []byte
	// SkipFirstAdminToken: do not create the admin token "admin" in
	// <DataDir>/admin.token when there is none (tests make their own).
	SkipFirstAdminToken bool

	// Service tunes the enrollment service (lifetimes, port pool, tunnel
	// user); Now and Rand, when set, replace its clock and randomness.
	Service enroll.Config
	Now     func() time.Time
	Rand    io.Reader

	AdminListen, PublicListen string
	// PublicHost is the name VMAs reach the OMA by (certificate SAN, join
	// command); PublicPort, when a NAT maps the public port, the port they
	// reach (0: the bound one).
	PublicHost string
	PublicPort int
	// TLSCert and TLSKey are the public certificate; empty: a self-signed
	// one made once in DataDir.
	TLSCert, TLSKey string
	// AdminTLS serves the admin listener over HTTPS with the public
	// certificate, or with AdminTLSCert/AdminTLSKey when given.
	AdminTLS                  bool
	AdminTLSCert, AdminTLSKey string
	// UI serves the admin web UI on the admin listener.
	UI             bool
	TrustedProxies []netip.Prefix

	// Public request limits per client IP (server.Config's defaults when 0).
	RatePerSecond         float64
	RateBurst             int
	CodeFailuresPerMinute float64
	CodeFailureBurst      int
	MaxWaitersPerIP       int
	// ExpireEvery is how often stale enrollments are marked expired (15s).
	ExpireEvery time.Duration
	// ShutdownTimeout bounds the graceful shutdown (10s).
	ShutdownTimeout time.Duration

	Tunnel TunnelConfig
}

// TunnelConfig selects and configures the tunnel driver.
type TunnelConfig struct {
	// Mode is embedded, openssh or none ("" is none).
	Mode string
	// Host is the host VMAs open their tunnel to ("": the address they
	// enrolled through); User the tunnel's SSH user.
	Host, User string
	// NBDTarget is the OMA end of the NBD forward; VMANBDListen and
	// VMAAPITarget the VMA-local ends written into its ssh_config.
	NBDTarget, VMANBDListen, VMAAPITarget string

	// Limits bound the embedded endpoint's unauthenticated peers.
	Limits SSHLimits

	// SSHHostKey is sshd's public host key file, SSHPort its port (openssh).
	SSHHostKey string
	SSHPort    int
	// AuthorizedKeysFile is the tunnel user's authorized_keys ("":
	// ~<user>/.ssh/authorized_keys; "none": sshd uses only the
	// AuthorizedKeysCommand), re-synced every AuthorizedKeysResync
	// (0: only at start) (openssh).
	AuthorizedKeysFile   string
	AuthorizedKeysResync time.Duration

	// HostKey is told to approved VMAs in the none mode, where the tunnel
	// endpoint runs elsewhere (tests pin a key of their own); the other
	// modes tell their own.
	HostKey string
}

// SSHLimits bound what peers can make the embedded endpoint do (see
// tunnel.Limits).
type SSHLimits struct {
	ConnPerSecond         float64
	ConnBurst             int
	AuthFailuresPerMinute float64
	AuthFailureBurst      int
	PreAuthPerAddr        int
}

// App is a running (or ready to run) oma-server.
type App struct {
	cfg     Config
	log     *slog.Logger
	db      *store.DB
	svc     *enroll.Service
	metrics *server.Metrics
	srv     *server.Server
	tunnel  TunnelDriver

	mu        sync.Mutex
	running   bool
	stop      context.CancelFunc // ends the running Run
	done      chan struct{}      // closed when Run has returned
	closeOnce sync.Once
	closeErr  error
}

// New opens (and migrates) the store, creates the audit key and the first
// admin token when missing, and builds the service, the tunnel driver, the
// server and the web UI. Nothing listens until Run. ctx bounds the start
// (the database and the first authorized_keys sync).
func New(ctx context.Context, cfg Config) (_ *App, err error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.AuditKeyFile == "" {
		cfg.AuditKeyFile = filepath.Join(cfg.DataDir, "audit.key")
	}
	if cfg.ExpireEvery == 0 {
		cfg.ExpireEvery = 15 * time.Second
	}
	a := &App{cfg: cfg, log: log}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	a.db, err = store.Open(ctx, cfg.Driver, cfg.DSN, store.Options{})
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", cfg.Driver, err)
	}
	defer func() {
		if err != nil {
			a.db.Close()
		}
	}()
	if !cfg.NoMigrate {
		if err := store.MigrateUp(ctx, cfg.Driver, cfg.DSN); err != nil {
			return nil, fmt.Errorf("apply migrations: %w", err)
		}
	}
	auditKey := cfg.AuditKey
	if auditKey == nil {
		if auditKey, err = LoadOrCreateAuditKey(ctx, cfg.AuditKeyFile, a.db, log); err != nil {
			return nil, err
		}
	}
	a.svc = enroll.New(a.db, cfg.Service, auditKey, log)
	if cfg.Now != nil {
		a.svc.Now = cfg.Now
	}
	if cfg.Rand != nil {
		a.svc.Rand = cfg.Rand
	}
	// The service's committed audit events feed the metrics.
	a.metrics = server.NewMetrics(a.svc)
	a.svc.OnAudit = a.metrics.ObserveAudit
	if !cfg.SkipFirstAdminToken {
		if err := ensureAdminToken(ctx, a.svc, a.db, cfg.DataDir, log); err != nil {
			return nil, err
		}
	}
	// A key switch of `oma-server rotate --complete` cut short by a crash
	// is finished first, or the certificate would not load.
	did, err := omakeys.Files{DataDir: cfg.DataDir, TLSCert: cfg.TLSCert, TLSKey: cfg.TLSKey}.Repair()
	if err != nil {
		return nil, fmt.Errorf("finish an interrupted key switch (oma-server rotate): %w", err)
	}
	for _, d := range did {
		log.Warn(d)
	}
	cert, err := server.LoadOrCreateCertificate(cfg.TLSCert, cfg.TLSKey, cfg.DataDir, []string{cfg.PublicHost})
	if err != nil {
		return nil, err
	}
	if a.tunnel, err = newTunnelDriver(ctx, &cfg, a.svc, a.db, log); err != nil {
		return nil, err
	}
	hostKey, tunnelPort := a.tunnel.Advertise()
	if a.tunnel.Name() == "none" {
		hostKey = cfg.Tunnel.HostKey
	}
	if tunnelPort == 0 {
		tunnelPort = cfg.PublicPort // 0: the bound public port
	}
	join := ""
	if cfg.PublicPort != 0 {
		join = net.JoinHostPort(cfg.PublicHost, strconv.Itoa(cfg.PublicPort))
	}
	adminTLS, err := adminTLSConfig(cfg, cert)
	if err != nil {
		return nil, err
	}
	t := cfg.Tunnel
	a.srv, err = server.New(server.Config{
		AdminListen: cfg.AdminListen, PublicListen: cfg.PublicListen, PublicHost: cfg.PublicHost, JoinAddress: join,
		TLS: cert, TrustedProxies: cfg.TrustedProxies,
		Tunnel: server.TunnelConfig{Host: t.Host, Port: tunnelPort, User: t.User, HostKey: hostKey,
			NBDListen: t.VMANBDListen, NBDTarget: t.NBDTarget, VMAAPITarget: t.VMAAPITarget},
		RatePerSecond: cfg.RatePerSecond, RateBurst: cfg.RateBurst,
		CodeFailuresPerMinute: cfg.CodeFailuresPerMinute, CodeFailureBurst: cfg.CodeFailureBurst,
		MaxWaitersPerIP: cfg.MaxWaitersPerIP, ShutdownTimeout: cfg.ShutdownTimeout,
		TunnelState: func() api.TunnelState { return tunnelState(a.tunnel) },
		AdminTLS:    adminTLS,
		Reactions:   a.tunnel,
		Metrics:     a.metrics,
	}, a.svc, a.db, log)
	if err != nil {
		return nil, err
	}
	warnAdminListener(log, cfg.AdminListen, adminTLS != nil)
	if cfg.UI {
		ui, err := webui.New(webui.Config{Service: a.svc, Store: a.db, Actions: a.srv, Log: log,
			CodeTTL: a.svc.Config.CodeTTL, MaxCodeTTL: a.svc.Config.MaxCodeTTL})
		if err != nil {
			return nil, err
		}
		a.srv.SetUI(ui)
	}
	return a, nil
}

// Run serves until ctx ends or Close is called, then shuts down
// gracefully: the HTTP servers first (in-flight requests finish, long polls
// return), then the expirer and the tunnel driver. It runs once.
func (a *App) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return errors.New("app: Run called twice")
	}
	a.running, a.stop, a.done = true, stop, make(chan struct{})
	done := a.done
	a.mu.Unlock()
	defer close(done)

	// The driver outlives the HTTP shutdown: its tunnels close last.
	drvCtx, stopDriver := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDriver()
	wrap, err := a.tunnel.Attach(drvCtx, a.srv, a.metrics)
	if err != nil {
		return err
	}
	// oma-server rotate stages and switches keys while the server runs.
	var hostKeys omakeys.HostKeyUser
	if hk, ok := a.tunnel.(omakeys.HostKeyUser); ok {
		hostKeys = hk
	}
	watchDone := omakeys.Watch(ctx, omakeys.Files{DataDir: a.cfg.DataDir, TLSCert: a.cfg.TLSCert, TLSKey: a.cfg.TLSKey}, hostKeys, a.srv, a.log)
	drvErr := make(chan error, 1)
	go func() { drvErr <- a.tunnel.Run(drvCtx) }()
	expDone := make(chan struct{})
	go func() {
		defer close(expDone)
		select {
		case <-a.srv.Ready():
			a.expirer(ctx)
		case <-ctx.Done():
		}
	}()
	err = a.srv.Run(ctx, wrap)
	stop()
	<-expDone
	<-watchDone // no key change reaches the endpoint Close releases
	stopDriver()
	if derr := <-drvErr; err == nil && derr != nil {
		err = fmt.Errorf("tunnel driver %s: %w", a.tunnel.Name(), derr)
	}
	return err
}

// Close stops a running Run and waits for it, then releases the tunnel
// driver and the store. The listeners are closed once it returns.
func (a *App) Close() error {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		stop, done := a.stop, a.done
		a.running = true // no Run after Close
		a.mu.Unlock()
		if stop != nil {
			stop()
			<-done
		}
		a.closeErr = errors.Join(a.tunnel.Close(), a.db.Close())
	})
	return a.closeErr
}

// expirer marks stale enrollments expired; several instances may run it.
func (a *App) expirer(ctx context.Context) {
	t := time.NewTicker(a.cfg.ExpireEvery)
	defer t.Stop()
	for {
		n, err := a.svc.ExpireDue(ctx)
		if err != nil && ctx.Err() == nil {
			a.log.Warn("expirer", "err", err)
		} else if n > 0 {
			a.log.Info("expired enrollments", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Service is the enrollment service (tests drive it directly).
func (a *App) Service() *enroll.Service { return a.svc }

// Store is the open store.
func (a *App) Store() *store.DB { return a.db }

// Tunnel is the tunnel driver.
func (a *App) Tunnel() TunnelDriver { return a.tunnel }

// HostKey is the SSH host key approved VMAs are told to pin ("" when none).
func (a *App) HostKey() string {
	if a.tunnel.Name() == "none" {
		return a.cfg.Tunnel.HostKey
	}
	k, _ := a.tunnel.Advertise()
	return k
}

// Ready is closed once both listeners are bound.
func (a *App) Ready() <-chan struct{} { return a.srv.Ready() }

// AdminAddr is the bound admin address, host:port (after Ready).
func (a *App) AdminAddr() string { return a.srv.AdminAddr() }

// PublicAddr is the bound public address, host:port (after Ready).
func (a *App) PublicAddr() string { return a.srv.PublicAddr() }

// Fingerprint is the SPKI fingerprint of the public certificate.
func (a *App) Fingerprint() string { return a.srv.Fingerprint() }
