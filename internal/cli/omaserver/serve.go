package omaserver

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/oma-enroll/oma-enroll/internal/app"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
)

func newServeCmd(ios *cmdutil.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the admin and public listeners",
		Long: `Run the admin listener (admin API for omactl, /health, /metrics) and the
public listener (TLS; the enrollment endpoints and /health only).

On first start it creates, in --data-dir: the SQLite database (default store),
a self-signed TLS certificate (unless --tls-cert/--tls-key are given), the
audit-chain key (audit.key), the SSH host key and, when no admin token exists
yet, an admin token named "admin" written to admin.token (mode 0600).
Migrations are applied at start unless --no-migrate.

With --tunnel-mode openssh the system sshd is the tunnel endpoint: each
approval writes the VMA's restricted key line into the tunnel user's
authorized_keys (--authorized-keys-file), each revocation removes it and ends
the VMA's live session, and the file is re-synced with the database at start
and every --authorized-keys-resync. ` + "`oma-server sshd-config`" + ` prints the sshd
block.

Several instances may share one MariaDB database behind a load balancer;
give them the same audit.key (--audit-key-file) and the same certificate.

The admin listener also serves the admin web UI at / (turn it off with
--ui=false): sign in with an admin token to approve, reject and revoke VMAs,
make pairing codes and read the audit trail. UI sessions are kept in memory,
so a restart signs everyone out and several instances behind a load balancer
need sticky sessions. The admin listener speaks plain HTTP unless
--admin-tls (the public certificate) or --admin-tls-cert/--admin-tls-key;
omactl then needs --server https://….`,
		Example: `  # Development: SQLite in ./.oma-dev, public listener on :8443
  oma-server serve --data-dir ./.oma-dev --public-listen :8443 \
      --public-host 127.0.0.1

  # Production with MariaDB and a real certificate
  OMA_DB_DSN='oma:secret@tcp(db:3306)/oma' oma-server serve --db-driver mysql \
      --public-host oma.example.com \
      --tls-cert /etc/oma/tls.crt --tls-key /etc/oma/tls.key`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := config(cmd)
			if err != nil {
				return err
			}
			opts, err := serveOptionsFrom(v)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, opts, ios)
		},
	}
	f := cmd.Flags()
	f.String("admin-listen", "127.0.0.1:8082", "address of the admin listener (keep it on a private interface)")
	f.String("public-listen", ":443", "address of the public (TLS enrollment) listener")
	f.String("public-host", "", "name or IP that VMAs use to reach this OMA (certificate SAN, join command; default: the hostname)")
	f.Int("public-port", 0, "port VMAs use to reach the public listener, when a NAT maps it (default: the listen port)")
	f.String("tls-cert", "", "PEM certificate for the public listener (default: self-signed, created once in the data dir)")
	f.String("tls-key", "", "PEM private key for --tls-cert")
	f.String("tunnel-mode", "embedded", "tunnel endpoint: embedded, openssh or none")
	f.String("tunnel-host", "", "host VMAs open their tunnel to (default: the address they enrolled through)")
	f.String("tunnel-user", contract.TunnelUser, "SSH user of the tunnels")
	f.String("tunnel-port-range", "9081-9999", "pool of per-VMA reverse tunnel ports on the OMA")
	f.String("ssh-host-key", "/etc/ssh/ssh_host_ed25519_key.pub", "sshd's public host key (openssh tunnel mode)")
	f.Int("ssh-port", 22, "port VMAs reach sshd on (openssh tunnel mode; sshd cannot share 443 with the HTTPS listener)")
	f.String("authorized-keys-file", "", "authorized_keys file of the tunnel user that approvals write (openssh tunnel mode; default ~<tunnel-user>/.ssh/authorized_keys; none: sshd uses only the AuthorizedKeysCommand)")
	f.Duration("authorized-keys-resync", 30*time.Second, "how often the authorized_keys file is re-synced with the database (openssh tunnel mode; 0: only at start)")
	f.String("nbd-target", contract.NBDTarget, "OMA address the VMAs' NBD forward reaches (the only local forward allowed)")
	f.String("vma-nbd-listen", contract.VMANBDListen, "VMA-local listen address of the NBD forward (written into the VMA's ssh_config)")
	f.String("vma-api-target", contract.VMAAPITarget, "VMA-local target of the reverse forward (the VMA API)")
	f.String("audit-key-file", "", "HMAC key of the audit chain (default <data-dir>/audit.key; share it between instances)")
	f.StringSlice("trusted-proxy", nil, "CIDR of a reverse proxy whose X-Forwarded-For is trusted (repeatable)")
	f.Duration("code-ttl", 10*time.Minute, "default lifetime of pairing codes")
	f.Duration("max-code-ttl", 24*time.Hour, "longest lifetime an admin may give a pairing code (1m to 168h)")
	f.Int("max-code-uses", contract.MaxCodeUses, "most VMAs one pairing code may enroll (omactl pairing-code --uses)")
	f.Duration("verify-window", 10*time.Minute, "time a VMA has to answer its challenge")
	f.Duration("approval-window", 30*time.Minute, "time an admin has to approve a verified VMA")
	f.Duration("rotation-grace", enroll.DefaultRotationGrace, "how long a VMA's previous key still works after vma-enroll rotate, unless the VMA uses the new one first")
	addKeyPolicyFlags(f)
	f.Float64("rate-limit", 5, "public requests per second per client IP")
	f.Int("rate-burst", 20, "burst of public requests per client IP")
	f.Float64("code-failures-per-minute", 5, "rejected pairing codes allowed per minute per client IP")
	f.Int("code-failure-burst", 5, "rejected (or concurrent) pairing-code attempts allowed at once per client IP")
	f.Float64("ssh-rate-limit", 5, "new SSH connections per second per client IP (embedded tunnel mode)")
	f.Int("ssh-rate-burst", 30, "burst of new SSH connections per client IP (embedded tunnel mode)")
	f.Float64("ssh-login-failures-per-minute", 10, "refused SSH logins allowed per minute per client IP (embedded tunnel mode)")
	f.Int("ssh-login-failure-burst", 10, "refused SSH logins allowed at once per client IP; then its SSH connections are closed until the budget refills (embedded tunnel mode)")
	f.Int("max-unauthenticated-per-ip", 32, "connections per client IP not authenticated yet (SSH before login, TLS before the server's hello) on the public port (embedded tunnel mode)")
	f.Bool("no-migrate", false, "do not apply database migrations at start")
	addAdminUIFlags(f)
	return cmd
}

type serveOptions struct {
	common
	AdminListen, PublicListen, PublicHost string
	PublicPort                            int
	TLSCert, TLSKey                       string
	TunnelMode, TunnelHost, TunnelUser    string
	PortMin, PortMax                      int
	SSHHostKey                            string
	SSHPort                               int
	AuthorizedKeysFile                    string
	SSHLimits                             app.SSHLimits
	AuthorizedKeysResync                  time.Duration
	NBDTarget, VMANBDListen, VMAAPITarget string
	AuditKeyFile                          string
	TrustedProxies                        []netip.Prefix
	CodeTTL, VerifyWindow, ApprovalWindow time.Duration
	MaxCodeTTL                            time.Duration
	MaxCodeUses                           int
	RotationGrace                         time.Duration
	KeyPolicy                             enroll.KeyPolicy
	RateLimit                             float64
	RateBurst                             int
	CodeFailures                          float64
	CodeFailureBurst                      int
	NoMigrate                             bool
	adminUIOptions
}

func serveOptionsFrom(v *viper.Viper) (serveOptions, error) {
	c, err := commonFrom(v)
	if err != nil {
		return serveOptions{}, err
	}
	o := serveOptions{
		common:           c,
		AdminListen:      v.GetString("admin_listen"),
		PublicListen:     v.GetString("public_listen"),
		PublicHost:       v.GetString("public_host"),
		PublicPort:       v.GetInt("public_port"),
		TLSCert:          v.GetString("tls_cert"),
		TLSKey:           v.GetString("tls_key"),
		TunnelMode:       v.GetString("tunnel_mode"),
		TunnelHost:       v.GetString("tunnel_host"),
		TunnelUser:       v.GetString("tunnel_user"),
		SSHHostKey:       v.GetString("ssh_host_key"),
		NBDTarget:        v.GetString("nbd_target"),
		VMANBDListen:     v.GetString("vma_nbd_listen"),
		VMAAPITarget:     v.GetString("vma_api_target"),
		AuditKeyFile:     v.GetString("audit_key_file"),
		CodeTTL:          v.GetDuration("code_ttl"),
		MaxCodeTTL:       v.GetDuration("max_code_ttl"),
		MaxCodeUses:      v.GetInt("max_code_uses"),
		VerifyWindow:     v.GetDuration("verify_window"),
		ApprovalWindow:   v.GetDuration("approval_window"),
		RotationGrace:    v.GetDuration("rotation_grace"),
		RateLimit:        v.GetFloat64("rate_limit"),
		RateBurst:        v.GetInt("rate_burst"),
		CodeFailures:     v.GetFloat64("code_failures_per_minute"),
		CodeFailureBurst: v.GetInt("code_failure_burst"),
		NoMigrate:        v.GetBool("no_migrate"),
	}
	o.SSHLimits = app.SSHLimits{
		ConnPerSecond:         v.GetFloat64("ssh_rate_limit"),
		ConnBurst:             v.GetInt("ssh_rate_burst"),
		AuthFailuresPerMinute: v.GetFloat64("ssh_login_failures_per_minute"),
		AuthFailureBurst:      v.GetInt("ssh_login_failure_burst"),
		PreAuthPerAddr:        v.GetInt("max_unauthenticated_per_ip"),
	}
	if l := o.SSHLimits; l.ConnPerSecond <= 0 || l.ConnBurst < 1 || l.AuthFailuresPerMinute <= 0 || l.AuthFailureBurst < 1 || l.PreAuthPerAddr < 1 {
		return o, cmdutil.FlagErrorf("--ssh-rate-limit, --ssh-rate-burst, --ssh-login-failures-per-minute, --ssh-login-failure-burst and --max-unauthenticated-per-ip must be positive")
	}
	o.SSHPort = v.GetInt("ssh_port")
	o.AuthorizedKeysFile = v.GetString("authorized_keys_file")
	o.AuthorizedKeysResync = v.GetDuration("authorized_keys_resync")
	switch o.TunnelMode {
	case "embedded", "openssh", "none":
	default:
		return o, cmdutil.FlagErrorf("--tunnel-mode %q: use embedded, openssh or none", o.TunnelMode)
	}
	for flag, addr := range map[string]string{"nbd-target": o.NBDTarget, "vma-nbd-listen": o.VMANBDListen, "vma-api-target": o.VMAAPITarget} {
		h, _, err := net.SplitHostPort(addr)
		if err != nil {
			return o, cmdutil.FlagErrorf("--%s %q is not HOST:PORT", flag, addr)
		}
		// vma-enroll writes only loopback forward ends on the VMA's side.
		if flag != "nbd-target" && !tunnel.LoopbackHost(h) {
			return o, cmdutil.FlagErrorf("--%s %q: the VMA's end of a forward must be a loopback address (127.0.0.1, ::1 or localhost); vma-enroll refuses anything else", flag, addr)
		}
	}
	if o.PortMin, o.PortMax, err = parsePortRange(v.GetString("tunnel_port_range")); err != nil {
		return o, err
	}
	for _, p := range v.GetStringSlice("trusted_proxy") {
		for _, part := range strings.Split(p, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			pfx, err := netip.ParsePrefix(part)
			if err != nil {
				a, aerr := netip.ParseAddr(part)
				if aerr != nil {
					return o, cmdutil.FlagErrorf("--trusted-proxy %q is not a CIDR (like 10.0.0.0/8) or an IP", part)
				}
				pfx = netip.PrefixFrom(a, a.BitLen())
			}
			o.TrustedProxies = append(o.TrustedProxies, pfx.Masked())
		}
	}
	if o.CodeTTL < time.Minute || o.CodeTTL > 24*time.Hour {
		return o, cmdutil.FlagErrorf("--code-ttl %s: use 1m to 24h", o.CodeTTL)
	}
	if o.MaxCodeTTL < time.Minute || o.MaxCodeTTL > 168*time.Hour || o.CodeTTL > o.MaxCodeTTL {
		return o, cmdutil.FlagErrorf("--max-code-ttl %s: use 1m to 168h, at least --code-ttl", o.MaxCodeTTL)
	}
	if o.MaxCodeUses < 1 || o.MaxCodeUses > contract.CodeUsesLimit {
		return o, cmdutil.FlagErrorf("--max-code-uses %d: use 1 to %d", o.MaxCodeUses, contract.CodeUsesLimit)
	}
	if o.RotationGrace < time.Second || o.RotationGrace > 24*time.Hour {
		return o, cmdutil.FlagErrorf("--rotation-grace %s: use 1s to 24h, like 10m", o.RotationGrace)
	}
	if o.KeyPolicy, err = keyPolicyFrom(v); err != nil {
		return o, err
	}
	if o.VerifyWindow <= 0 || o.ApprovalWindow <= 0 {
		return o, cmdutil.FlagErrorf("--verify-window and --approval-window must be positive")
	}
	if o.PublicHost == "" {
		o.PublicHost, _ = os.Hostname()
	}
	if o.SSHPort < 1 || o.SSHPort > 65535 {
		return o, cmdutil.FlagErrorf("--ssh-port %d is not a port", o.SSHPort)
	}
	if o.AuthorizedKeysResync < 0 {
		return o, cmdutil.FlagErrorf("--authorized-keys-resync must not be negative")
	}
	if o.PublicPort < 0 || o.PublicPort > 65535 {
		return o, cmdutil.FlagErrorf("--public-port %d is not a port", o.PublicPort)
	}
	if o.AuditKeyFile == "" {
		o.AuditKeyFile = filepath.Join(o.DataDir, "audit.key")
	}
	if o.adminUIOptions, err = adminUIOptionsFrom(v); err != nil {
		return o, err
	}
	return o, nil
}

func parsePortRange(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || lo < 1024 || hi > 65535 || lo > hi {
		return 0, 0, cmdutil.FlagErrorf("--tunnel-port-range %q: use LOW-HIGH within 1024-65535, e.g. 9081-9999", s)
	}
	return lo, hi, nil
}

func runServe(ctx context.Context, o serveOptions, ios *cmdutil.IOStreams) error {
	log, err := o.logger(ios.ErrOut)
	if err != nil {
		return err
	}
	// Everything the server writes (database, WAL, keys) is for its own
	// user only.
	syscall.Umask(0o077)
	if p := o.KeyPolicy; p.Enabled() {
		log.Info("VMA key expiry policy", "key_max_age", cmdutil.FormatDuration(p.MaxAge),
			"key_rotation_window", cmdutil.FormatDuration(p.RotationWindow), "key_expiry_grace", cmdutil.FormatDuration(p.Grace))
	}
	a, err := app.New(ctx, o.appConfig(log))
	if err != nil {
		return err
	}
	runErr := a.Run(ctx)
	if err := a.Close(); runErr == nil {
		runErr = err
	}
	return runErr
}

// appConfig is the App's configuration from serve's settings.
func (o serveOptions) appConfig(log *slog.Logger) app.Config {
	return app.Config{
		DataDir: o.DataDir, Driver: o.Driver, DSN: o.DSN, NoMigrate: o.NoMigrate, Log: log,
		AuditKeyFile: o.AuditKeyFile,
		Service: enroll.Config{
			CodeTTL: o.CodeTTL, VerifyWindow: o.VerifyWindow, ApprovalWindow: o.ApprovalWindow, RotationGrace: o.RotationGrace,
			MaxCodeTTL: o.MaxCodeTTL, MaxCodeUses: o.MaxCodeUses, KeyPolicy: o.KeyPolicy,
			PortMin: o.PortMin, PortMax: o.PortMax, SSHUser: o.TunnelUser,
		},
		AdminListen: o.AdminListen, PublicListen: o.PublicListen, PublicHost: o.PublicHost, PublicPort: o.PublicPort,
		TLSCert: o.TLSCert, TLSKey: o.TLSKey,
		AdminTLS: o.AdminTLS, AdminTLSCert: o.AdminTLSCert, AdminTLSKey: o.AdminTLSKey, UI: o.UI,
		TrustedProxies: o.TrustedProxies,
		RatePerSecond:  o.RateLimit, RateBurst: o.RateBurst, CodeFailuresPerMinute: o.CodeFailures, CodeFailureBurst: o.CodeFailureBurst,
		Tunnel: app.TunnelConfig{
			Mode: o.TunnelMode, Host: o.TunnelHost, User: o.TunnelUser,
			NBDTarget: o.NBDTarget, VMANBDListen: o.VMANBDListen, VMAAPITarget: o.VMAAPITarget,
			Limits:     o.SSHLimits,
			SSHHostKey: o.SSHHostKey, SSHPort: o.SSHPort,
			AuthorizedKeysFile: o.AuthorizedKeysFile, AuthorizedKeysResync: o.AuthorizedKeysResync,
		},
	}
}
