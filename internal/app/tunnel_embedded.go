package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/server"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/endpoint"
)

// embeddedDriver is oma-server's own SSH endpoint on the public port (SSH
// and the TLS data path of `vma-enroll tunnel` told apart from HTTPS by
// their first bytes and ALPN). A revocation closes the VMA's live tunnels;
// an approval needs nothing, since every login is checked against the
// database.
type embeddedDriver struct {
	ep      *endpoint.Endpoint
	hostKey string
}

func newEmbeddedDriver(cfg *Config, svc *enroll.Service, log *slog.Logger) (*embeddedDriver, error) {
	signer, err := loadOrCreateHostKey(filepath.Join(cfg.DataDir, "ssh_host_ed25519_key"))
	if err != nil {
		return nil, err
	}
	t := cfg.Tunnel
	l := t.Limits
	ep := endpoint.New(endpoint.Config{HostKey: signer, User: t.User, NBDTarget: t.NBDTarget, Limits: endpoint.Limits{
		ConnPerSecond: l.ConnPerSecond, ConnBurst: l.ConnBurst,
		AuthFailuresPerMinute: l.AuthFailuresPerMinute, AuthFailureBurst: l.AuthFailureBurst,
		PreAuthPerAddr: l.PreAuthPerAddr,
	}}, svc, log)
	return &embeddedDriver{ep: ep, hostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))}, nil
}

// loadOrCreateHostKey returns the embedded SSH endpoint's Ed25519 host key,
// generating it once into the data directory.
func loadOrCreateHostKey(path string) (ssh.Signer, error) {
	kp, err := sshkey.LoadOrGenerateFile(path, "oma-server")
	if err != nil {
		return nil, fmt.Errorf("ssh host key: %w", err)
	}
	return ssh.NewSignerFromKey(kp.Private)
}

func (d *embeddedDriver) Name() string                  { return "embedded" }
func (d *embeddedDriver) Advertise() (string, int)      { return d.hostKey, 0 }
func (d *embeddedDriver) OnApprove(*enroll.Enrollment)  {}
func (d *embeddedDriver) OnRevoke(e *enroll.Enrollment) { d.ep.Disconnect(e.ID, "revoked") }
func (d *embeddedDriver) LiveTunnels() int              { return d.ep.Live() }
func (d *embeddedDriver) Run(ctx context.Context) error { d.ep.Run(ctx); return nil }
func (d *embeddedDriver) Close() error                  { return nil }

// HostKeys and SetHostKeys let the key watch (internal/omakeys) hand the
// endpoint a rotation's next host key and its switch.
func (d *embeddedDriver) HostKeys() (current, next ssh.PublicKey) { return d.ep.HostKeys() }
func (d *embeddedDriver) SetHostKeys(current, next ssh.Signer)    { d.ep.SetHostKeys(current, next) }

func (d *embeddedDriver) Attach(ctx context.Context, srv *server.Server, m *server.Metrics) (server.PublicListener, error) {
	if err := m.Register(tunnelLimitMetrics(d.ep)...); err != nil {
		return nil, err
	}
	// The TLS data path of `vma-enroll tunnel` shares the public port.
	srv.SetTLSProtocol(tunnel.ALPNData, endpoint.DataTLSConfig, func(c *tls.Conn) { d.ep.ServeData(ctx, c) })
	return d.ep.Listener(ctx, endpoint.SniffTimeout), nil
}

// tunnelLimitMetrics exports the embedded SSH endpoint's limit counters:
// what unauthenticated peers and logged-in VMAs had refused, counted
// instead of logged line by line.
func tunnelLimitMetrics(ep *endpoint.Endpoint) []prometheus.Collector {
	refused := func(reason string, get func(endpoint.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "oma_enroll_tunnel_connections_refused_total",
			Help:        "Public-port connections closed by a per-address limit before authentication, by reason.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(get(ep.Stats())) })
	}
	counter := func(name, help string, get func(endpoint.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(get(ep.Stats())) })
	}
	return []prometheus.Collector{
		refused("connection_rate", func(s endpoint.Stats) uint64 { return s.ConnRateLimited }),
		refused("failed_logins", func(s endpoint.Stats) uint64 { return s.AuthLocked }),
		refused("unauthenticated_cap", func(s endpoint.Stats) uint64 { return s.PreAuthCapped }),
		counter("oma_enroll_tunnel_login_failures_total", "Refused SSH login attempts on the embedded endpoint (wrong user, key type or key).",
			func(s endpoint.Stats) uint64 { return s.AuthFailures }),
		counter("oma_enroll_tunnel_requests_refused_total", "Refused forwards and channels of logged-in VMAs.",
			func(s endpoint.Stats) uint64 { return s.RequestsRefused }),
		counter("oma_enroll_tunnel_closed_for_refusals_total", "Tunnels closed after too many refused requests.",
			func(s endpoint.Stats) uint64 { return s.ClosedForRefusals }),
	}
}
