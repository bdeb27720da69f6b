package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/server"
)

// TunnelDriver is the tunnel endpoint of one tunnel mode: what approved
// VMAs are told to connect to, what follows an approval or a revocation,
// and the driver's own run loop. The App builds one per run (embedded,
// openssh or none) and owns it.
type TunnelDriver interface {
	// Name is the tunnel mode (embedded, openssh, none), reported in the
	// admin health.
	Name() string
	// Advertise is what an approved VMA pins and dials: the host key
	// (an authorized_keys line; "" without a tunnel endpoint) and the SSH
	// port (0: the public port).
	Advertise() (hostKey string, port int)
	// Attach connects the driver to the server before it runs: protocols
	// that share the public port, collectors for /metrics. It returns how
	// the public port's raw listener becomes the HTTPS one (nil: as is).
	// ctx lives as long as the driver runs.
	Attach(ctx context.Context, srv *server.Server, m *server.Metrics) (server.PublicListener, error)
	// OnApprove and OnRevoke react to a committed approval or revocation
	// (server.Reactions); a failure is logged, and the driver's run loop
	// or the next start repairs it.
	OnApprove(e *enroll.Enrollment)
	OnRevoke(e *enroll.Enrollment)
	// LiveTunnels counts the tunnels this instance holds (0 when it holds
	// none itself, as sshd does).
	LiveTunnels() int
	// Run runs the driver's loop until ctx ends (it may return at once
	// when there is nothing to do).
	Run(ctx context.Context) error
	// Close releases what the driver holds. Call it after Run returned.
	Close() error
}

// newTunnelDriver builds the driver of cfg.Tunnel.Mode.
func newTunnelDriver(ctx context.Context, cfg *Config, svc *enroll.Service, db enroll.Store, log *slog.Logger) (TunnelDriver, error) {
	switch cfg.Tunnel.Mode {
	case "embedded":
		return newEmbeddedDriver(cfg, svc, log)
	case "openssh":
		return newOpenSSHDriver(ctx, cfg, db, svc, log)
	case "none", "":
		return noneDriver{}, nil
	}
	return nil, fmt.Errorf("tunnel mode %q: use embedded, openssh or none", cfg.Tunnel.Mode)
}

// tunnelState is the admin health's view of the driver.
func tunnelState(d TunnelDriver) api.TunnelState {
	return api.TunnelState{Mode: d.Name(), LiveTunnels: d.LiveTunnels()}
}

// noneDriver runs no tunnel endpoint: VMAs enroll, and something else
// (or nothing) carries their tunnels.
type noneDriver struct{}

func (noneDriver) Name() string                  { return "none" }
func (noneDriver) Advertise() (string, int)      { return "", 0 }
func (noneDriver) OnApprove(*enroll.Enrollment)  {}
func (noneDriver) OnRevoke(*enroll.Enrollment)   {}
func (noneDriver) LiveTunnels() int              { return 0 }
func (noneDriver) Run(ctx context.Context) error { return nil }
func (noneDriver) Close() error                  { return nil }
func (noneDriver) Attach(context.Context, *server.Server, *server.Metrics) (server.PublicListener, error) {
	return nil, nil
}
