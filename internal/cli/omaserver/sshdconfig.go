package omaserver

import (
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/store"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/sshdkeys"
)

func newSSHDConfigCmd(ios *cmdutil.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sshd-config",
		Short: "Print the sshd_config block of the openssh tunnel mode",
		Long: `Print the "Match User <tunnel-user>" block that makes the system sshd the
tunnel endpoint of the openssh tunnel mode (oma-server serve --tunnel-mode
openssh): public key logins of the tunnel user only, TCP forwarding only (the
per-key permitopen/permitlisten narrow it to the NBD target and the VMA's own
reverse port), no shell, command, PTY, agent, X11 or tun device, and
keepalives that drop dead tunnels.

--keys-from command (the default) makes sshd ask ` + "`oma-server authorized-keys`" + `
at every login: approvals and revocations take effect for new connections at
once, straight from the database. --keys-from file points sshd at the
authorized_keys file that serve maintains instead (no database access from
sshd; a change reaches sshd when serve has written the file).

The command line printed for AuthorizedKeysCommand repeats the settings this
command sees (flags, OMA_* environment, --config), because sshd runs the
command with an almost empty environment; a MariaDB DSN is never printed
(put db-dsn into the config file and pass --config).

Append the block to the END of /etc/ssh/sshd_config (a Match block lasts
until the next Match line or the end of the file), then check and reload:
sshd -t && systemctl reload ssh`,
		Example: `  # The AuthorizedKeysCommand variant, run as the user that runs oma-server
  oma-server sshd-config --config /etc/oma-enroll/oma-server.yaml \
      >> /etc/ssh/sshd_config
  sshd -t && systemctl reload ssh

  # The authorized_keys file variant
  oma-server sshd-config --keys-from file`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := config(cmd)
			if err != nil {
				return err
			}
			o, err := sshdConfigOptionsFrom(cmd, v)
			if err != nil {
				return err
			}
			return runSSHDConfig(o, ios)
		},
	}
	f := cmd.Flags()
	f.String("tunnel-user", contract.TunnelUser, "SSH user of the tunnels (the Match User)")
	f.String("nbd-target", contract.NBDTarget, "OMA address the VMAs' NBD forward reaches (PermitOpen)")
	f.String("keys-from", "command", "where sshd gets the VMA keys: command (AuthorizedKeysCommand, immediate) or file (the authorized_keys file serve maintains)")
	f.String("authorized-keys-file", "", "authorized_keys file serve maintains (default ~<tunnel-user>/.ssh/authorized_keys)")
	f.String("command-user", "", "AuthorizedKeysCommandUser: a user that can read the database (default: the owner of --data-dir, else the current user)")
	f.String("oma-server-path", "", "absolute path of the oma-server binary for AuthorizedKeysCommand (default: this binary)")
	return cmd
}

type sshdConfigOptions struct {
	common
	ConfigFile         string
	TunnelUser         string
	NBDTarget          string
	KeysFrom           string
	AuthorizedKeysFile string
	CommandUser        string
	Binary             string
}

func sshdConfigOptionsFrom(cmd *cobra.Command, v *viper.Viper) (sshdConfigOptions, error) {
	c, err := commonFrom(v)
	if err != nil {
		return sshdConfigOptions{}, err
	}
	o := sshdConfigOptions{
		common:             c,
		TunnelUser:         v.GetString("tunnel_user"),
		NBDTarget:          v.GetString("nbd_target"),
		KeysFrom:           v.GetString("keys_from"),
		AuthorizedKeysFile: v.GetString("authorized_keys_file"),
		CommandUser:        v.GetString("command_user"),
		Binary:             v.GetString("oma_server_path"),
	}
	o.ConfigFile, _ = cmd.Flags().GetString("config")
	if o.ConfigFile == "" {
		o.ConfigFile = os.Getenv("OMA_CONFIG")
	}
	if o.ConfigFile != "" {
		if o.ConfigFile, err = filepath.Abs(o.ConfigFile); err != nil {
			return o, err
		}
	}
	switch o.KeysFrom {
	case "command", "file":
	default:
		return o, cmdutil.FlagErrorf("--keys-from %q: use command or file", o.KeysFrom)
	}
	if !sshdUserRE(o.TunnelUser) {
		return o, cmdutil.FlagErrorf("--tunnel-user %q is not a user name", o.TunnelUser)
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("find this binary (set --oma-server-path): %w", err)
		}
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		o.Binary = exe
	}
	if !filepath.IsAbs(o.Binary) {
		return o, cmdutil.FlagErrorf("--oma-server-path %q must be absolute", o.Binary)
	}
	if o.CommandUser == "" {
		o.CommandUser = defaultCommandUser(o.DataDir)
	}
	return o, nil
}

// sshdUserRE accepts names that need no quoting in sshd_config.
func sshdUserRE(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')) {
			return false
		}
	}
	return true
}

// defaultCommandUser is the owner of the data directory (who runs serve and
// can read the SQLite file), else the current user.
func defaultCommandUser(dataDir string) string {
	if fi, err := os.Stat(dataDir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if u, err := user.LookupId(strconv.Itoa(int(st.Uid))); err == nil {
				return u.Username
			}
		}
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "root"
}

func runSSHDConfig(o sshdConfigOptions, ios *cmdutil.IOStreams) error {
	block, warnings, err := renderSSHDConfig(o)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(ios.ErrOut, "warning: %s\n", w)
	}
	_, err = io.WriteString(ios.Out, block)
	return err
}

// sshdArg checks that s can stand as one AuthorizedKeysCommand argument
// without quoting: sshd splits on blanks and expands %-tokens.
func sshdArg(flag, s string) error {
	if s == "" || strings.ContainsAny(s, " \t\"'\\%#\n\r") {
		return cmdutil.FlagErrorf("%s %q cannot go into sshd_config as it is (no blanks, quotes, backslashes, '%%' or '#')", flag, s)
	}
	return nil
}

// renderSSHDConfig builds the Match block and the warnings for stderr.
func renderSSHDConfig(o sshdConfigOptions) (string, []string, error) {
	var warnings []string
	var keys []string
	switch o.KeysFrom {
	case "command":
		if err := sshdArg("--oma-server-path", o.Binary); err != nil {
			return "", nil, err
		}
		if !sshdUserRE(o.CommandUser) {
			return "", nil, cmdutil.FlagErrorf("--command-user %q is not a user name", o.CommandUser)
		}
		args := []string{o.Binary, "authorized-keys"}
		add := func(flag, val, def string) error {
			if val == def {
				return nil
			}
			if err := sshdArg("--"+flag, val); err != nil {
				return err
			}
			args = append(args, "--"+flag, val)
			return nil
		}
		var err error
		if o.ConfigFile != "" {
			err = add("config", o.ConfigFile, "")
		}
		if err == nil {
			err = add("data-dir", o.DataDir, "/var/lib/oma-enroll")
		}
		if err == nil {
			err = add("db-driver", o.Driver, "sqlite")
		}
		if err == nil && o.Driver == store.DriverSQLite {
			err = add("db-dsn", o.DSN, filepath.Join(o.DataDir, "oma.db"))
		}
		if err == nil {
			err = add("tunnel-user", o.TunnelUser, contract.TunnelUser)
		}
		if err == nil {
			err = add("nbd-target", o.NBDTarget, contract.NBDTarget)
		}
		if err != nil {
			return "", nil, err
		}
		if o.Driver == store.DriverMySQL && o.ConfigFile == "" {
			warnings = append(warnings, "the MariaDB DSN is not printed into sshd_config: put db-dsn into a config file readable by "+
				o.CommandUser+" only and run sshd-config with --config FILE (sshd gives the command no OMA_* environment)")
		}
		if o.CommandUser == "root" {
			warnings = append(warnings, "AuthorizedKeysCommandUser is root; sshd recommends a dedicated user: run serve as one (e.g. oma) and give it the data directory, or set --command-user")
		}
		if w := unsafePath(o.Binary); w != "" {
			warnings = append(warnings, "sshd will refuse to run "+o.Binary+": "+w+" (install it as /usr/local/bin/oma-server, owned by root, mode 755, or set --oma-server-path)")
		}
		keys = []string{
			"# Keys come from the database: sshd runs the command at every login, so an",
			"# approval works and a revocation refuses the key for new connections at once.",
			"AuthorizedKeysFile none",
			"AuthorizedKeysCommand " + strings.Join(args, " ") + " %u %t %k",
			"AuthorizedKeysCommandUser " + o.CommandUser,
		}
	case "file":
		path := ".ssh/authorized_keys"
		if o.AuthorizedKeysFile != "" {
			p, _, err := sshdkeys.ResolveAuthorizedKeysPath(o.AuthorizedKeysFile, o.TunnelUser)
			if err != nil {
				return "", nil, err
			}
			if err := sshdArg("--authorized-keys-file", p); err != nil {
				return "", nil, err
			}
			path = p
		}
		keys = []string{
			"# Keys come from the authorized_keys file oma-server serve maintains (added on",
			"# approval, removed on revocation, re-synced from the database at start and",
			"# every --authorized-keys-resync). A key is refused once serve removed its line.",
			"AuthorizedKeysFile " + path,
		}
	}
	if err := sshdArg("--nbd-target", o.NBDTarget); err != nil {
		return "", nil, err
	}

	var b strings.Builder
	w := func(lines ...string) {
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	w(
		"# oma-enroll: SSH tunnels of enrolled VMAs (oma-server serve --tunnel-mode openssh).",
		"# Generated by `oma-server sshd-config`. Append to the END of /etc/ssh/sshd_config",
		"# (a Match block lasts until the next Match line or the end of the file), then",
		"#   sshd -t && systemctl reload ssh",
		"#",
		"# The tunnel user needs an account that sshd lets in: useradd --system",
		"# --create-home --shell /usr/sbin/nologin "+o.TunnelUser+"; with UsePAM no, also",
		"# usermod -p '*' "+o.TunnelUser+" (sshd refuses locked \"!\" accounts then).",
		"#",
		"# Port: VMAs reach this sshd on the port given to serve as --ssh-port (default",
		"# 22). sshd cannot share port 443 with oma-server's HTTPS listener. Either allow",
		"# the VMAs to reach sshd's port; or run sshd on 443 of a second IP address; or",
		"# put a protocol multiplexer (e.g. sslh) on 443 that hands SSH to sshd and TLS",
		"# to oma-server's --public-listen; or use --tunnel-mode embedded (the default),",
		"# where oma-server itself takes SSH and HTTPS on 443.",
		"#",
		"# Revocation: a revoked key cannot log in again (at once with the",
		"# AuthorizedKeysCommand; with the file, once serve removed the line). sshd does",
		"# not re-check the key of a connection that is already up: serve (as root, on",
		"# Linux, unless --authorized-keys-file none) ends the revoked VMA's session by",
		"# finding the tunnel user's sshd process that holds its reverse port",
		"# 127.0.0.1:<tunnel_port>. A connection of that key without the reverse forward",
		"# stays until it closes; ClientAlive* below only drop dead connections.",
		"Match User "+o.TunnelUser,
	)
	for _, l := range keys {
		w("\t" + l)
	}
	w(
		"\tPubkeyAuthentication yes",
		"\tAuthenticationMethods publickey",
		"\tPasswordAuthentication no",
		"\tKbdInteractiveAuthentication no",
		"\t# TCP forwarding only. Each key line narrows it further: permitopen (-L to the",
		"\t# NBD target) and permitlisten (-R on the VMA's own tunnel port), so no",
		"\t# PermitListen list here; GatewayPorts no keeps reverse ports on loopback.",
		"\tDisableForwarding no",
		"\tAllowTcpForwarding yes",
		"\tPermitOpen "+o.NBDTarget,
		"\tGatewayPorts no",
		"\tAllowStreamLocalForwarding no",
		"\tAllowAgentForwarding no",
		"\tX11Forwarding no",
		"\tPermitTunnel no",
		"\tPermitTTY no",
		"\tPermitUserRC no",
		"\t# No shell, command or subsystem: MaxSessions 0 refuses every session",
		"\t# channel (forwarding still works); ForceCommand is the second lock.",
		"\tMaxSessions 0",
		"\tForceCommand /bin/false",
		"\t# Drop a dead tunnel after 45 s so its reverse port is free for the reconnect.",
		"\tClientAliveInterval 15",
		"\tClientAliveCountMax 3",
	)
	return b.String(), warnings, nil
}

// unsafePath says why sshd would refuse to run path as an
// AuthorizedKeysCommand: it and every parent directory must be owned by
// root and not writable by group or others. Empty when it looks fine.
func unsafePath(path string) string {
	for p := path; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err.Error()
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && st.Uid != 0 {
			return p + " is not owned by root"
		}
		if fi.Mode().Perm()&0o022 != 0 {
			return p + " is writable by group or others"
		}
		if p == filepath.Dir(p) {
			return ""
		}
	}
}
