package omaserver

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

func newSystemdUnitCmd(ios *cmdutil.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "systemd-unit",
		Short: "Print a hardened systemd unit for oma-server",
		Long: `Print a systemd service unit that runs 'oma-server serve' as a dedicated
user with the capability to bind port 443 and little else: no new
privileges, a read-only system, a private /tmp, and write access only to the
data directory.

Install it with:
  useradd --system --home-dir /var/lib/oma-enroll \
      --shell /usr/sbin/nologin oma-enroll
  oma-server systemd-unit > /etc/systemd/system/oma-server.service
  systemctl daemon-reload && systemctl enable --now oma-server`,
		Example: `  # The unit with the defaults (user oma-enroll, /usr/local/bin/oma-server)
  oma-server systemd-unit > /etc/systemd/system/oma-server.service

  # Another user, and a config file elsewhere
  oma-server systemd-unit --user oma --config-file /etc/oma/oma-server.yaml`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			user, _ := cmd.Flags().GetString("user")
			binary, _ := cmd.Flags().GetString("binary")
			config, _ := cmd.Flags().GetString("config-file")
			dataDir, _ := cmd.Root().PersistentFlags().GetString("data-dir")
			for name, v := range map[string]string{"user": user, "binary": binary, "config-file": config, "data-dir": dataDir} {
				if v == "" || strings.ContainsAny(v, " \t\n\"'\\%$;") || (name != "user" && !strings.HasPrefix(v, "/")) {
					return cmdutil.FlagErrorf("--%s %q must be non-empty without spaces, quotes or shell characters", name, v)
				}
			}
			if !cmd.Flags().Changed("config-file") {
				config = "" // serve reads the default file when it exists
			}
			_, err := fmt.Fprint(ios.Out, systemdUnit(user, binary, config, dataDir))
			return err
		},
	}
	cmd.Flags().String("user", "oma-enroll", "system user the service runs as")
	cmd.Flags().String("binary", "/usr/local/bin/oma-server", "path of the oma-server binary")
	cmd.Flags().String("config-file", DefaultConfigFile, "config file the service passes to serve with --config")
	cmdutil.NoConfig(cmd) // its flags only: it prints a unit, for any config
	return cmd
}

func systemdUnit(user, binary, config, dataDir string) string {
	exec := binary + " serve --data-dir " + dataDir
	if config != "" {
		exec += " --config " + config
	}
	state := ""
	if rel, ok := strings.CutPrefix(dataDir, "/var/lib/"); ok && rel != "" {
		state = "StateDirectory=" + rel + "\nStateDirectoryMode=0700\n"
	}
	return `[Unit]
Description=OMA VMA enrollment server (oma-server)
Documentation=man:oma-server(1)
After=network-online.target mariadb.service
Wants=network-online.target

[Service]
Type=simple
User=` + user + `
Group=` + user + `
ExecStart=` + exec + `
Restart=on-failure
RestartSec=2s
TimeoutStopSec=20s
# Port 443 without root.
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
# The data directory is the only writable place.
` + state + `ReadWritePaths=` + dataDir + `
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
UMask=0077
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`
}
