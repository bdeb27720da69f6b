package vmaenroll

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/vmaclient"
	"github.com/oma-enroll/oma-enroll/internal/vmaauth"
)

// DefaultKeepalive is the period of the tunnel's keepalives.
const DefaultKeepalive = 30 * time.Second

// tunnelOptions are the settings of one `vma-enroll tunnel` run.
type tunnelOptions struct {
	Dir       string
	Output    string // text or json
	OpenSSH   bool
	Once      bool
	Keepalive time.Duration // 0: none
	// KeepaliveSet says --keepalive was given (for --openssh).
	KeepaliveSet bool
	// Connections is how many NBD connections at once ride TLS data
	// streams of their own (0: all inside the SSH connection).
	Connections int
	// AutoRotate rotates the key inside the OMA's rotation window
	// (autorotate.go).
	AutoRotate bool
}

// DefaultConnections is --connections' default: on the 2-core machine of
// the benchmark, 4 NBD connections over 4 TLS streams carried the most
// (docs/benchmarks.md, row 8).
const DefaultConnections = 4

func newTunnelCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tunnel",
		Short: "Run the tunnel to the OMA",
		Long: `Run this VMA's tunnel to the OMA in the foreground, with the enrollment that
vma-enroll recorded in --config-dir (enrollment.json and id_ed25519).

The built-in SSH client connects to the OMA as the tunnel user with the
enrolled key and accepts only the OMA host key pinned at enrollment (the
host_key of enrollment.json, also in known_hosts; when the OMA sent none, the
known_hosts line for its address). It opens exactly the tunnel's forwards:
the local ones listen on this VMA (e.g. 127.0.0.1:10808 to the OMA's NBD
server), the remote ones listen on the OMA (127.0.0.1:<tunnel port>) and reach
this VMA's API (e.g. 127.0.0.1:8081).

It sends a keepalive every --keepalive (30s; 0 turns them off) and drops the
connection after 3 unanswered ones. After any drop it reconnects, waiting 1s,
then twice as long after each failed attempt up to 60s (less up to a quarter
at random), and starts over at 1s once a connection stayed up for a minute.
Each change (connecting, connected, forward up, disconnected and why,
retrying in Ns) is one line on stderr; with -o json one JSON object per line
on stdout (fields time, event, message, oma, and reason, listen, target,
direction, retry_in_seconds where they apply). SIGINT or SIGTERM stops it
(exit 0).

With a key expiry policy on the OMA (oma-server --key-max-age) it rotates
this VMA's key by itself once the key is due (inside the rotation window),
as vma-enroll rotate does, and reconnects with the new key: it asks the OMA
(GET /api/v1/vma/self) at its start and then when the answer says, at least
hourly. Each rotation, or failure (retried with backoff while the tunnel
keeps the current key), is one line on stderr. --auto-rotate=false turns
this off; --openssh never rotates (run vma-enroll rotate and restart it).

When the OMA refuses the key (the enrollment was revoked, or replaced by a
newer one, or the key expired: older than the OMA's key max age plus
grace), it checks once more a few seconds later, so that a passing
database problem on the OMA does not end it, then exits 7: re-enroll with a
new pairing code (vma-enroll --force --code …).

NBD traffic (the local forward) takes the fastest way the OMA offers: each
NBD connection rides a TLS 1.3 stream of its own on the OMA's public port,
authenticated by the enrolled key as a client certificate and pinned to the
OMA's TLS certificate like enrollment, so a migration tool that opens several
NBD connections uses several cores on the OMA. At most --connections (4)
streams are open at once; further NBD connections, and all of them when the
OMA does not offer the TLS data path (an older OMA, the openssh tunnel mode),
ride the SSH connection. --connections 0 keeps all traffic inside SSH.

--openssh runs the system's OpenSSH client instead, with the ssh_config that
enrollment wrote: ssh -F <config-dir>/ssh_config -N oma. It exits when the
connection or a forward fails; vma-tunnel.service restarts it.

Exit status: 0 stopped by SIGINT/SIGTERM, 1 error (not enrolled, a broken
config dir, or with --once the connection ended), 2 usage error, 6 the OMA
presented another SSH host key than the pinned one (someone may be
impersonating it: not retried), 7 the OMA refused this VMA's key (revoked or
replaced: re-enroll).`,
		Example: `  vma-enroll tunnel
  vma-enroll tunnel --config-dir /etc/vma-enroll -o json
  vma-enroll tunnel --keepalive 15s
  vma-enroll tunnel --connections 0    # NBD inside the SSH connection only
  vma-enroll tunnel --openssh          # ssh -F <config-dir>/ssh_config -N oma
  vma-enroll tunnel --auto-rotate=false   # rotate by hand only
  systemctl enable --now vma-tunnel   # after copying vma-tunnel.service`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := f.Config
			dir, err := filepath.Abs(cfg.ConfigDir)
			if err != nil {
				return err
			}
			opts := tunnelOptions{Dir: dir, Output: cfg.Output, KeepaliveSet: cmd.Flags().Changed("keepalive")}
			if opts.OpenSSH, err = cmd.Flags().GetBool("openssh"); err != nil {
				return err
			}
			if opts.Once, err = cmd.Flags().GetBool("once"); err != nil {
				return err
			}
			if opts.Keepalive, err = cmd.Flags().GetDuration("keepalive"); err != nil {
				return err
			}
			if opts.Connections, err = cmd.Flags().GetInt("connections"); err != nil {
				return err
			}
			if opts.AutoRotate, err = cmd.Flags().GetBool("auto-rotate"); err != nil {
				return err
			}
			if opts.Connections < 0 || opts.Connections > 64 {
				return cmdutil.FlagErrorf("--connections %d: use 0 (NBD inside SSH only) to 64", opts.Connections)
			}
			if opts.Keepalive < 0 || (opts.Keepalive > 0 && opts.Keepalive < time.Second) {
				return cmdutil.FlagErrorf("--keepalive %s: use 1s or more, or 0 to turn keepalives off", opts.Keepalive)
			}
			// SIGINT/SIGTERM stop the tunnel gracefully.
			ctx, stop := signal.NotifyContext(ctxOf(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if opts.OpenSSH {
				return runOpenSSHTunnel(ctx, f, opts)
			}
			return runTunnel(ctx, f, opts)
		},
	}
	fl := cmd.Flags()
	fl.Bool("openssh", false, "run the system's OpenSSH client (ssh -F <config-dir>/ssh_config -N oma) instead of the built-in one")
	fl.Bool("once", false, "do not reconnect: exit when the first connection ends")
	fl.Duration("keepalive", DefaultKeepalive, "period of the keepalives; 3 unanswered ones drop the connection (0: none)")
	_ = cmd.RegisterFlagCompletionFunc("keepalive", cobra.FixedCompletions([]string{"15s", "30s", "0"}, cobra.ShellCompDirectiveNoFileComp))
	fl.Int("connections", DefaultConnections, "NBD connections at once that ride TLS data streams of their own (0: all inside the SSH connection)")
	fl.Bool("auto-rotate", true, "rotate this VMA's key by itself inside the OMA's rotation window (oma-server --key-max-age)")
	return cmd
}

// runTunnel runs the built-in client until ctx ends or the OMA turns it
// away for good. It first settles an interrupted key rotation (keys.go),
// and when id_ed25519 changes while it runs (vma-enroll rotate), it
// connects with the new key and then closes the old key's connection.
func runTunnel(ctx context.Context, f *Factory, opts tunnelOptions) error {
	settleTunnelKeys(ctx, f, opts.Dir)
	errOut := &lockedWriter{w: f.IO.ErrOut} // the self-rotation writes from its own goroutine
	if opts.AutoRotate {
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); autoRotate(rctx, f, opts.Dir, errOut) }()
		defer func() { stop(); <-done }()
	}
	for {
		tc, st, err := tunnelClientConfig(opts)
		if err != nil {
			return cmdutil.Exit(cmdutil.ExitFailure, err)
		}
		// Text lines are progress (stderr); -o json's JSON Lines are the
		// data asked for (stdout).
		var events io.Writer = errOut
		if opts.Output == "json" {
			events = f.IO.Out
		}
		w := eventWriter(events, opts.Output)
		var wmu sync.Mutex // the client's events and the pin checks' (omapins.go)
		write := func(ev vmaclient.Event) {
			if ev.Time.IsZero() {
				ev.Time, ev.OMA = f.Now().UTC(), tc.Addr
			}
			wmu.Lock()
			defer wmu.Unlock()
			w(ev)
		}
		runCtx, cancel := context.WithCancel(ctx)
		// The OMA's next TLS pin during a rotation (omapins.go).
		kick := watchOMAPins(runCtx, opts.Dir, f.Now, write)
		tc.OnEvent = func(ev vmaclient.Event) {
			write(ev)
			if ev.Type == vmaclient.EventConnected {
				kick()
			}
		}
		tc.Now = f.Now
		client, err := vmaclient.NewClient(tc)
		if err != nil {
			cancel()
			return cmdutil.Exit(cmdutil.ExitFailure, fmt.Errorf("%s: %w", statePath(opts.Dir), err))
		}
		done := make(chan error, 1)
		go func() { done <- client.Run(runCtx) }()
		fp := st.VMAFingerprint
		changed := watchKey(runCtx, opts.Dir, fp)
		select {
		case err := <-done:
			cancel()
			if errors.Is(err, vmaclient.ErrKeyRefused) && settleTunnelKeys(ctx, f, opts.Dir) {
				continue // a rotation finished meanwhile: the new key may work
			}
			return tunnelExit(err, st, opts.Dir)
		case <-changed:
			fmt.Fprintf(errOut, "%s this VMA's key changed (vma-enroll rotate): reconnecting with the new key\n", time.Now().Local().Format(time.DateTime))
			// The local forwards cannot listen twice: the old key's
			// connection ends before the new one starts.
			cancel()
			<-done
		}
	}
}

// keyCheckEvery is how often a running tunnel looks at id_ed25519 (a read
// and parse of a 400-byte file).
const keyCheckEvery = 250 * time.Millisecond

// watchKey returns a channel closed when id_ed25519's fingerprint is no
// longer fp and enrollment.json records the new one (a finished
// promotion), checked every keyCheckEvery.
func watchKey(ctx context.Context, dir, fp string) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		t := time.NewTicker(keyCheckEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			k, err := readKey(keyPath(dir))
			if err != nil || fingerprintOf(k) == fp {
				continue
			}
			if st, err := loadState(dir); err == nil && st != nil && st.VMAFingerprint == fingerprintOf(k) {
				close(ch)
				return
			}
		}
	}()
	return ch
}

// settleTunnelKeys settles an interrupted rotation before the tunnel
// starts, unless a rotation runs now (it holds the key lock) or the OMA
// does not answer (the tunnel then starts with id_ed25519). It reports
// whether it changed the key.
func settleTunnelKeys(ctx context.Context, f *Factory, dir string) bool {
	st, err := loadState(dir)
	if err != nil || st == nil || st.Status != string(enroll.StatusApproved) || checkKeyTrust(dir) != nil {
		return false
	}
	unlock, ok, err := lockKeys(dir)
	if err != nil || !ok {
		return false
	}
	defer unlock()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := settleKeys(cctx, dir, st)
	switch {
	case err != nil:
		return false
	case out == settledPromoted:
		fmt.Fprintf(f.IO.ErrOut, "Finished an interrupted key rotation: using the new key %s.\n", st.VMAFingerprint)
	case out == settledDropped:
		fmt.Fprintln(f.IO.ErrOut, "Removed the new key of an interrupted rotation the OMA never took.")
	}
	return out == settledPromoted || out == settledRecorded
}

// tunnelExit turns the client's outcome into the exit status and the
// message that says what to do.
func tunnelExit(err error, st *State, dir string) error {
	if err == nil {
		return nil
	}
	reenroll := fmt.Sprintf("vma-enroll --force --config-dir %s --oma %s --code XXXX-XXXX-XXXX --fingerprint %s", dir, st.OMA, fingerprintOr(st))
	var hk *vmaclient.HostKeyMismatchError
	switch {
	case errors.Is(err, vmaclient.ErrKeyRefused):
		return cmdutil.Exit(ExitKeyRefused, fmt.Errorf("%v (enrollment %s); re-enroll with a new pairing code from the OMA admin:\n  %s", vmaclient.ErrKeyRefused, st.EnrollmentID, reenroll))
	case errors.As(err, &hk):
		return cmdutil.Exit(ExitIdentityMismatch, fmt.Errorf("%v. Someone may be impersonating the OMA, or its SSH host key changed (e.g. it was reinstalled): check with the OMA admin; if the change is expected, re-enroll with a new pairing code:\n  %s", hk, reenroll))
	default:
		return cmdutil.Exit(cmdutil.ExitFailure, err)
	}
}

func fingerprintOr(st *State) string {
	if st.OMAFingerprint != "" {
		return st.OMAFingerprint
	}
	return "sha256:…"
}

// tunnelClientConfig builds the client's configuration from the config
// directory: the tunnel object of enrollment.json, the pinned host key and
// the enrolled key.
func tunnelClientConfig(opts tunnelOptions) (vmaclient.ClientConfig, *State, error) {
	dir := opts.Dir
	st, err := loadState(dir)
	if err != nil {
		return vmaclient.ClientConfig{}, nil, err
	}
	if st == nil {
		return vmaclient.ClientConfig{}, nil, fmt.Errorf("%s does not exist: this VMA is not enrolled yet (run vma-enroll first), or pass --config-dir", statePath(dir))
	}
	if st.Status != string(enroll.StatusApproved) || st.Tunnel == nil {
		what := "is " + cleanMessage(st.Status)
		if st.Status == string(enroll.StatusApproved) {
			what = "has no tunnel settings"
		}
		return vmaclient.ClientConfig{}, st, fmt.Errorf("enrollment %s in %s %s: there is no tunnel to run; run vma-enroll (to resume waiting) or enroll again with --force and a new pairing code", cleanMessage(st.EnrollmentID), statePath(dir), what)
	}
	addr, err := parseOMA(st.OMA)
	if err != nil {
		return vmaclient.ClientConfig{}, st, fmt.Errorf("%s: %v; enroll again with --force and a new pairing code", statePath(dir), err)
	}
	vc := vmaclient.VMAConfig{Dir: dir, EnrollmentID: st.EnrollmentID, OMAHost: addr.Host, OMAPort: addr.Port, Tunnel: *st.Tunnel}
	if err := vc.Validate(); err != nil {
		return vmaclient.ClientConfig{}, st, fmt.Errorf("%s: the tunnel settings are not usable: %v", statePath(dir), err)
	}
	host, port := vc.Endpoint()

	var hostKey ssh.PublicKey
	if st.Tunnel.HostKey != "" {
		if hostKey, err = vmaclient.ParseHostKey(st.Tunnel.HostKey); err != nil {
			return vmaclient.ClientConfig{}, st, fmt.Errorf("%s: %v", statePath(dir), err)
		}
	} else {
		kh := filepath.Join(dir, vmaclient.FileKnownHosts)
		data, err := os.ReadFile(kh)
		if err == nil {
			hostKey, err = vmaclient.HostKeyFromKnownHosts(data, host, port)
		}
		if err != nil {
			return vmaclient.ClientConfig{}, st, fmt.Errorf("no SSH host key of the OMA is pinned: the OMA sent none at enrollment (its tunnel mode is not 'embedded') and %s has none for %s (%v); add the line '%s <key>' of the OMA's sshd there, or run with --openssh",
				kh, vmaclient.KnownHostsHost(host, port), err, vmaclient.KnownHostsHost(host, port))
		}
	}

	if err := checkKeyTrust(dir); err != nil {
		return vmaclient.ClientConfig{}, st, err
	}
	keyPath := filepath.Join(dir, "id_ed25519")
	data, err := os.ReadFile(keyPath)
	if err != nil {
		return vmaclient.ClientConfig{}, st, fmt.Errorf("read this VMA's key: %w", err)
	}
	priv, err := sshkey.ParsePrivateKey(data)
	if err != nil {
		return vmaclient.ClientConfig{}, st, fmt.Errorf("%s: %w", keyPath, err)
	}
	if fp := sshkey.Fingerprint(priv.Public().(ed25519.PublicKey)); st.VMAFingerprint != "" && fp != st.VMAFingerprint {
		return vmaclient.ClientConfig{}, st, fmt.Errorf("the key in %s (%s) is not the one enrollment %s was approved with (%s): restore it, or enroll again with --force and a new pairing code", keyPath, fp, st.EnrollmentID, st.VMAFingerprint)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return vmaclient.ClientConfig{}, st, fmt.Errorf("%s: %w", keyPath, err)
	}
	keepalive := opts.Keepalive
	if keepalive == 0 {
		keepalive = -1 // off
	}
	var next []ssh.PublicKey // the OMA's next host keys, during a rotation
	for _, line := range st.OMANextHostKeys {
		if k, err := vmaclient.ParseHostKey(line); err == nil {
			next = append(next, k)
		}
	}
	dataTLS, dataAddr, dataTarget, err := dataPath(st, dirPins(dir, st), priv, opts.Connections)
	if err != nil {
		return vmaclient.ClientConfig{}, st, err
	}
	return vmaclient.ClientConfig{
		DataTLS: dataTLS, DataAddr: dataAddr, DataTarget: dataTarget, DataConnections: opts.Connections,
		Addr:           netJoin(host, port),
		User:           st.Tunnel.User,
		HostKey:        hostKey,
		NextHostKeys:   next,
		OnHostKeys:     saveOMAHostKeys(dir, time.Now),
		Signer:         signer,
		LocalForwards:  st.Tunnel.LocalForwards,
		RemoteForwards: st.Tunnel.RemoteForwards,
		ClientVersion:  "SSH-2.0-vma-enroll_" + versionToken(cmdutil.Version),
		Keepalive:      keepalive,
		Once:           opts.Once,
	}, st, nil
}

func netJoin(host string, port int) string {
	return (omaAddr{Host: strings.Trim(host, "[]"), Port: port}).String()
}

// versionToken keeps a version to the characters an SSH version string
// allows.
func versionToken(v string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' {
			return r
		}
		return '_'
	}, v)
}

// eventWriter prints each event as a plain line or, for -o json, as one
// JSON object per line.
func eventWriter(w io.Writer, output string) func(vmaclient.Event) {
	if output == "json" {
		enc := json.NewEncoder(w)
		return func(ev vmaclient.Event) { enc.Encode(ev) }
	}
	return func(ev vmaclient.Event) {
		fmt.Fprintf(w, "%s %s\n", ev.Time.Local().Format(time.DateTime), cleanMessage(ev.Message))
	}
}

// runOpenSSHTunnel runs `ssh -F <dir>/ssh_config -N oma` until it exits or
// ctx ends.
func runOpenSSHTunnel(ctx context.Context, f *Factory, opts tunnelOptions) error {
	conf := filepath.Join(opts.Dir, vmaclient.FileSSHConfig)
	if _, err := os.Stat(conf); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist: this VMA is not enrolled yet (run vma-enroll first), or pass --config-dir", conf)
	}
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		return fmt.Errorf("the OpenSSH client (ssh) is not installed: install openssh-client, or run without --openssh")
	}
	args := []string{"-F", conf, "-N"}
	if opts.KeepaliveSet {
		args = append(args, "-o", "ServerAliveInterval="+strconv.Itoa(int(opts.Keepalive/time.Second)))
	}
	args = append(args, vmaclient.SSHHostAlias)
	fmt.Fprintf(f.IO.ErrOut, "Running: %s %s\n", sshBin, strings.Join(args, " "))
	c := exec.CommandContext(ctx, sshBin, args...)
	c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
	c.WaitDelay = 5 * time.Second
	c.Stdin, c.Stdout, c.Stderr = nil, f.IO.Out, f.IO.ErrOut
	if err := c.Run(); err != nil {
		if ctx.Err() != nil {
			return nil // stopped on request
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return cmdutil.Exit(cmdutil.ExitFailure, fmt.Errorf("the tunnel ended: ssh exited with status %d (see its messages above)", ee.ExitCode()))
		}
		return err
	}
	return nil
}

// dataPath is the TLS data path's settings: the OMA's public port pinned
// as at enrollment, this VMA's key as the client certificate. Without a
// pinned fingerprint (enrolled with --insecure-skip-tls-verify), or with
// --connections 0, NBD stays inside the SSH connection.
func dataPath(st *State, pins func() []string, priv ed25519.PrivateKey, connections int) (*tls.Config, string, string, error) {
	if connections == 0 || st.OMAFingerprint == "" || len(st.Tunnel.LocalForwards) != 1 {
		return nil, "", "", nil
	}
	addr, err := parseOMA(st.OMA)
	if err != nil {
		return nil, "", "", nil
	}
	cert, err := vmaauth.ClientCertificate(priv)
	if err != nil {
		return nil, "", "", err
	}
	cfg := client.TLSConfigPins(pins) // the next pin too, during a rotation
	cfg.MinVersion = tls.VersionTLS13
	cfg.NextProtos = []string{tunnel.ALPNData}
	cfg.Certificates = []tls.Certificate{cert}
	return cfg, addr.String(), st.Tunnel.LocalForwards[0].Target, nil
}
