// Package vmaclient is the VMA's side of the VMA–OMA tunnel, linked by
// vma-enroll only. It turns the tunnel object of an approved enrollment
// into the files the VMA runs its tunnel from: known_hosts, ssh_config and
// a systemd unit (vmaside.go, vmaunit.go); and it is the native tunnel
// client of `vma-enroll tunnel` (client.go), with the client side of the
// TLS data path (clientdata.go). The OMA's side is package endpoint (or
// sshd with package sshdkeys); what both share is package tunnel.
package vmaclient

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/atomicfile"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
)

// Names of the files in the VMA's config directory.
const (
	FileKnownHosts = "known_hosts"
	FileSSHConfig  = "ssh_config"
	FileUnit       = "vma-tunnel.service"
	// SSHHostAlias is the Host block name in ssh_config: `ssh -F ssh_config oma`.
	SSHHostAlias = "oma"
)

// VMAConfig is the input of the VMA-side configuration writer.
type VMAConfig struct {
	// Dir is the config directory (absolute), e.g. /etc/vma-enroll.
	Dir string
	// EnrollmentID is recorded in the generated files' headers.
	EnrollmentID string
	// OMAHost is the host the VMA enrolled through; it is used when the
	// tunnel object carries no host (the server cannot know its own name
	// behind NAT).
	OMAHost string
	// OMAPort is the port the VMA enrolled through; used when the tunnel
	// object carries no port.
	OMAPort int
	// Tunnel is the approved result's tunnel object.
	Tunnel api.Tunnel
	// Binary is the absolute path of vma-enroll, for the systemd unit.
	Binary string
	// NextHostKeys are the OMA's next host keys during a rotation
	// (authorized_keys format), pinned in known_hosts beside Tunnel.HostKey.
	NextHostKeys []string
}

var (
	hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,252})$`)
	userRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9._-]{0,31}$`)
)

// Endpoint returns the SSH host and port the tunnel connects to.
func (c VMAConfig) Endpoint() (string, int) {
	host, port := c.Tunnel.Host, c.Tunnel.Port
	if host == "" {
		host = c.OMAHost
	}
	if port == 0 {
		port = c.OMAPort
	}
	return host, port
}

// Validate checks every value that goes into a generated file, so that a
// hostile or broken answer cannot inject options into ssh_config or the unit.
func (c VMAConfig) Validate() error {
	if !filepath.IsAbs(c.Dir) || !safePath(c.Dir) {
		return fmt.Errorf("config dir %q must be an absolute path without quotes or control characters", c.Dir)
	}
	if c.Binary != "" && (!filepath.IsAbs(c.Binary) || !safePath(c.Binary)) {
		return fmt.Errorf("binary path %q must be absolute, without quotes or control characters", c.Binary)
	}
	host, port := c.Endpoint()
	if err := validHost(host); err != nil {
		return fmt.Errorf("tunnel host: %w", err)
	}
	if port < 1 || port > 65535 {
		return fmt.Errorf("tunnel port %d is out of range", port)
	}
	if !userRE.MatchString(c.Tunnel.User) {
		return fmt.Errorf("tunnel user %q is not a valid user name", c.Tunnel.User)
	}
	if c.Tunnel.HostKey != "" {
		if _, err := hostKey(c.Tunnel.HostKey); err != nil {
			return err
		}
	}
	for _, k := range c.NextHostKeys {
		if _, err := hostKey(k); err != nil {
			return err
		}
	}
	return validForwards(c.Tunnel)
}

// validForwards accepts only what the design's tunnel needs: at most one
// forward of each kind, and every end the VMA or the OMA's listener opens on
// loopback. A local forward listening on 0.0.0.0 would open the OMA's side to
// the customer's network; a remote forward to 10.20.30.40:445 would let the
// OMA (or whoever answers in its place) reach hosts behind the VMA; a remote
// listen on 0.0.0.0 would offer the VMA's API to the OMA's network. Each is
// refused, saying which forward and why. The local forward's target is the
// one end left free: the OMA's side dials it (oma-server --nbd-target), so it
// reaches only what the OMA reaches already, never the VMA's networks.
func validForwards(t api.Tunnel) error {
	if len(t.LocalForwards) > 1 || len(t.RemoteForwards) > 1 {
		return fmt.Errorf("the OMA asked for %d local and %d remote forwards; a VMA tunnel has at most one of each (NBD out, VMA API in): refusing to write them, ask the OMA admin to check the server's tunnel settings",
			len(t.LocalForwards), len(t.RemoteForwards))
	}
	check := func(kind string, f api.Forward) error {
		for _, end := range []struct{ what, addr string }{{"listen", f.Listen}, {"target", f.Target}} {
			if err := validHostPort(end.addr); err != nil {
				return fmt.Errorf("%s forward %.80q -> %.80q: %w", kind, f.Listen, f.Target, err)
			}
			if kind == "local" && end.what == "target" {
				continue // dialled by the OMA, on the OMA's side
			}
			if !loopbackHostPort(end.addr) {
				return fmt.Errorf("%s forward %.80q -> %.80q: its %s address %.80q is not on loopback (127.0.0.1, ::1 or localhost); a VMA forwards only between loopback addresses, so that the tunnel cannot reach into the networks around the VMA or the OMA: refusing to write it, ask the OMA admin to check --vma-nbd-listen and --vma-api-target",
					kind, f.Listen, f.Target, end.what, end.addr)
			}
		}
		return nil
	}
	for _, f := range t.LocalForwards {
		if err := check("local", f); err != nil {
			return err
		}
	}
	for _, f := range t.RemoteForwards {
		if err := check("remote", f); err != nil {
			return err
		}
	}
	return nil
}

// loopbackHostPort reports whether a (host:port) names a loopback address.
func loopbackHostPort(a string) bool {
	h, _, err := net.SplitHostPort(a)
	if err != nil {
		return false
	}
	return tunnel.LoopbackHost(h)
}

func safePath(p string) bool {
	return !strings.ContainsAny(p, "\"'\\\n\r\t\x00%$")
}

func validHost(h string) error {
	if h == "" {
		return fmt.Errorf("empty host")
	}
	if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
		return nil
	}
	if !hostRE.MatchString(h) {
		return fmt.Errorf("%q is not a host name or IP address", h)
	}
	return nil
}

func validHostPort(a string) error {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port", a)
	}
	if err := validHost(h); err != nil {
		return err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q has no valid port", a)
	}
	return nil
}

// hostKey parses the OMA's host key line and returns "type base64" without
// options or comment.
func hostKey(line string) (string, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return "", fmt.Errorf("the OMA's SSH host key is malformed: %v", err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))), nil
}

// KnownHostsHost is how known_hosts names host:port ("[host]:port", or the
// bare host for port 22).
func KnownHostsHost(host string, port int) string {
	host = strings.Trim(host, "[]")
	if port == 22 {
		return host
	}
	return "[" + host + "]:" + strconv.Itoa(port)
}

// RenderKnownHosts returns the known_hosts file pinning the OMA's SSH host
// key. Without a host key (tunnel mode none) it holds only a comment, so
// that StrictHostKeyChecking refuses the connection until one is installed.
func RenderKnownHosts(c VMAConfig) (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# OMA SSH host key, pinned by vma-enroll (enrollment %s).\n", c.EnrollmentID)
	if c.Tunnel.HostKey == "" {
		b.WriteString("# The OMA sent no host key (its tunnel mode is not 'embedded'): add the line\n# '[host]:port <key>' of the OMA's sshd here before starting the tunnel.\n")
		return b.String(), nil
	}
	key, _ := hostKey(c.Tunnel.HostKey)
	host, port := c.Endpoint()
	fmt.Fprintf(&b, "%s %s\n", KnownHostsHost(host, port), key)
	for _, k := range c.NextHostKeys {
		next, _ := hostKey(k)
		fmt.Fprintf(&b, "%s %s\n", KnownHostsHost(host, port), next)
	}
	return b.String(), nil
}

// RenderSSHConfig returns the ssh_config with the single Host block the
// tunnel runs from: only the allowed forwards, strict host key checking
// against known_hosts, only our key, keepalives, no agent, X11 or TTY.
func RenderSSHConfig(c VMAConfig) (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	host, port := c.Endpoint()
	var b strings.Builder
	fmt.Fprintf(&b, "# VMA tunnel to the OMA, written by vma-enroll (enrollment %s).\n", c.EnrollmentID)
	fmt.Fprintf(&b, "# Run: ssh -F %s -N %s   (or: vma-enroll tunnel)\n", quote(filepath.Join(c.Dir, FileSSHConfig)), SSHHostAlias)
	fmt.Fprintf(&b, "Host %s\n", SSHHostAlias)
	line := func(k, v string) { fmt.Fprintf(&b, "    %s %s\n", k, v) }
	line("HostName", strings.Trim(host, "[]"))
	line("Port", strconv.Itoa(port))
	line("User", c.Tunnel.User)
	line("IdentityFile", quote(filepath.Join(c.Dir, "id_ed25519")))
	line("IdentitiesOnly", "yes")
	line("UserKnownHostsFile", quote(filepath.Join(c.Dir, FileKnownHosts)))
	line("GlobalKnownHostsFile", "/dev/null")
	line("StrictHostKeyChecking", "yes")
	// The OMA announces its next host key during a rotation; ssh takes
	// it into known_hosts once the OMA proved it holds it.
	line("UpdateHostKeys", "yes")
	line("PreferredAuthentications", "publickey")
	line("Ciphers", tunnel.SSHConfigCiphers)
	line("MACs", tunnel.SSHConfigMACs)
	line("BatchMode", "yes")
	for _, f := range c.Tunnel.LocalForwards {
		line("LocalForward", f.Listen+" "+f.Target)
	}
	for _, f := range c.Tunnel.RemoteForwards {
		line("RemoteForward", f.Listen+" "+f.Target)
	}
	line("ExitOnForwardFailure", "yes")
	line("ServerAliveInterval", "30")
	line("ServerAliveCountMax", "3")
	line("ConnectTimeout", "30")
	line("ForwardAgent", "no")
	line("ForwardX11", "no")
	line("RequestTTY", "no")
	line("PermitLocalCommand", "no")
	return b.String(), nil
}

func quote(p string) string {
	if strings.ContainsAny(p, " ") {
		return `"` + p + `"`
	}
	return p
}

// defaultUnitBinary is the vma-enroll path the unit runs when the writer
// does not know its own.
const defaultUnitBinary = "/usr/local/bin/vma-enroll"

// RenderUnit returns the systemd unit that keeps the tunnel up. It runs in
// a sandbox (systemd-analyze security: 1.7, was 3.5): no /home, /root or shared
// /tmp (UnitProblems says when the config directory or the binary is
// there), a read-only system, no capabilities, the system-service system
// calls without the privileged ones, and only its own processes in /proc.
func RenderUnit(c VMAConfig) (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	bin := c.Binary
	if bin == "" {
		bin = defaultUnitBinary
	}
	return fmt.Sprintf(`# VMA tunnel to the OMA, written by vma-enroll (enrollment %s).
# Install: cp %s /etc/systemd/system/ && systemctl enable --now vma-tunnel
[Unit]
Description=VMA tunnel to the OMA
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart=%s tunnel --config-dir %s
Restart=always
RestartSec=10
# 6: the OMA's host key changed; 7: the OMA refused this VMA's key (revoked).
# Retrying cannot fix either: re-enroll (vma-enroll --force --code ...).
RestartPreventExitStatus=6 7
UMask=0077
NoNewPrivileges=yes
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
ProtectProc=invisible
ProcSubset=pid
PrivateMounts=yes
PrivateIPC=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
CapabilityBoundingSet=
AmbientCapabilities=
# Read-write: the tunnel records the OMA's next keys during a rotation.
ReadWritePaths=%s

[Install]
WantedBy=multi-user.target
`, c.EnrollmentID, quote(filepath.Join(c.Dir, FileUnit)), quote(bin), quote(c.Dir), quote(c.Dir)), nil
}

// WriteKnownHosts rewrites known_hosts (0644) atomically.
func WriteKnownHosts(c VMAConfig) error {
	kh, err := RenderKnownHosts(c)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(c.Dir, FileKnownHosts), []byte(kh), 0o644)
}

// WriteVMAConfig writes known_hosts (0644), ssh_config (0644) and
// vma-tunnel.service (0644) into c.Dir, each atomically, and returns their
// paths. Nothing is written when a value fails validation.
func WriteVMAConfig(c VMAConfig) ([]string, error) {
	kh, err := RenderKnownHosts(c)
	if err != nil {
		return nil, err
	}
	sc, err := RenderSSHConfig(c)
	if err != nil {
		return nil, err
	}
	unit, err := RenderUnit(c)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, f := range []struct {
		name, data string
	}{{FileKnownHosts, kh}, {FileSSHConfig, sc}, {FileUnit, unit}} {
		p := filepath.Join(c.Dir, f.name)
		if err := atomicfile.WriteFile(p, []byte(f.data), 0o644); err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}
