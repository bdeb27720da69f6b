package vmaenroll

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// runTunnelCmd runs `vma-enroll tunnel args…` and returns what it printed.
func runTunnelCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ios, _, out, errOut := cmdutil.Test()
	root := NewRootCmd(NewFactory(ios))
	root.SetArgs(append([]string{"tunnel"}, args...))
	code = cmdutil.Run(root, ios)
	return out.String(), errOut.String(), code
}

// sshServer is a minimal SSH server (golang.org/x/crypto/ssh) that refuses
// every key: what the OMA's endpoint does once an enrollment is revoked.
type sshServer struct {
	addr    string
	hostKey ssh.PublicKey
}

func startRefusingSSH(t *testing.T) *sshServer {
	t.Helper()
	_, priv, err := sshkey.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	conf := &ssh.ServerConfig{
		PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
			return nil, os.ErrPermission
		},
	}
	conf.AddHostKey(signer)
	addr := testbin.Serve(t, "127.0.0.1:0", func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		ssh.NewServerConn(c, conf)
	})
	return &sshServer{addr: addr, hostKey: signer.PublicKey()}
}

// enrolledDir writes the key and an approved enrollment.json whose tunnel
// points at addr and pins hostKey ("" for none).
func enrolledDir(t *testing.T, addr, hostKey string) string {
	t.Helper()
	dir := t.TempDir()
	kp, err := sshkey.LoadOrGenerate(dir, "vma-test")
	if err != nil {
		t.Fatal(err)
	}
	host, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	st := &State{
		OMA: addr, OMAFingerprint: "sha256:abcd", EnrollmentID: "0123456789abcdef", Status: "approved",
		VMAName: "vma-test", VMAFingerprint: sshkey.Fingerprint(kp.Public),
		Tunnel: &api.Tunnel{Host: host, Port: port, User: "vma_tunnel", HostKey: hostKey,
			LocalForwards:  []api.Forward{{Listen: "127.0.0.1:10808", Target: "127.0.0.1:10809"}},
			RemoteForwards: []api.Forward{{Listen: "127.0.0.1:9081", Target: "127.0.0.1:8081"}}},
	}
	if err := saveState(dir, st, time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir
}

func authorizedLine(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func TestTunnelNotEnrolled(t *testing.T) {
	_, stderr, code := runTunnelCmd(t, "--config-dir", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "not enrolled yet") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestTunnelNotApproved(t *testing.T) {
	dir := t.TempDir()
	if err := saveState(dir, &State{OMA: "127.0.0.1:443", EnrollmentID: "abc", Status: "awaiting_approval"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runTunnelCmd(t, "--config-dir", dir)
	if code != 1 || !strings.Contains(stderr, "is awaiting_approval: there is no tunnel to run") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestTunnelKeepaliveFlag(t *testing.T) {
	_, stderr, code := runTunnelCmd(t, "--config-dir", t.TempDir(), "--keepalive", "500ms")
	if code != cmdutil.ExitUsage || !strings.Contains(stderr, "--keepalive") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestTunnelKeyRefusedExits7(t *testing.T) {
	srv := startRefusingSSH(t)
	dir := enrolledDir(t, srv.addr, authorizedLine(srv.hostKey))
	start := time.Now()
	stdout, stderr, code := runTunnelCmd(t, "--config-dir", dir)
	if code != ExitKeyRefused {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitKeyRefused, stderr)
	}
	// Refused twice, a few seconds apart, not at the first refusal.
	if d := time.Since(start); d < 2*time.Second || d > 20*time.Second {
		t.Fatalf("gave up after %s, want the refusal confirmed a few seconds later", d)
	}
	if stdout != "" {
		t.Fatalf("stdout = %q, want nothing", stdout)
	}
	t.Logf("stderr:\n%s", stderr)
	for _, want := range []string{"connecting to " + srv.addr, "checking once more in 3s", "giving up",
		"Error: the OMA refused this VMA's key: it was revoked or replaced", "vma-enroll --force", "--code"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestTunnelHostKeyMismatchExits6(t *testing.T) {
	srv := startRefusingSSH(t)
	pub, _, _ := sshkey.Generate(nil)
	other, _ := ssh.NewPublicKey(pub)
	dir := enrolledDir(t, srv.addr, authorizedLine(other))
	_, stderr, code := runTunnelCmd(t, "--config-dir", dir)
	if code != ExitIdentityMismatch || !strings.Contains(stderr, "OMA host key mismatch") || !strings.Contains(stderr, ssh.FingerprintSHA256(other)) {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if n := strings.Count(stderr, "connecting to"); n != 1 {
		t.Fatalf("%d attempts, want 1 (a host key mismatch is not retried):\n%s", n, stderr)
	}
}

// TestTunnelJSONAndKnownHosts runs with -o json and --once against an OMA
// that sent no host key: the known_hosts line pins it, and every stderr line
// is one JSON event.
func TestTunnelJSONAndKnownHosts(t *testing.T) {
	srv := startRefusingSSH(t)
	dir := enrolledDir(t, srv.addr, "")
	host, p, _ := net.SplitHostPort(srv.addr)
	kh := "# pinned by hand\n[" + host + "]:" + p + " " + authorizedLine(srv.hostKey) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(kh), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runTunnelCmd(t, "--config-dir", dir, "--once", "-o", "json")
	if code != ExitKeyRefused {
		t.Fatalf("exit %d, want %d (the pinned key was accepted, the VMA key refused); stderr:\n%s", code, ExitKeyRefused, stderr)
	}
	// The events are the data asked for: JSON Lines on stdout; stderr has
	// only the final error.
	if !strings.HasPrefix(stderr, "Error: ") {
		t.Errorf("stderr has more than the error:\n%s", stderr)
	}
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var ev struct {
			Time    time.Time `json:"time"`
			Event   string    `json:"event"`
			Message string    `json:"message"`
			OMA     string    `json:"oma"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Time.IsZero() || ev.Message == "" || ev.OMA != srv.addr {
			t.Fatalf("stdout line %q is not an event (%v)", line, err)
		}
		types = append(types, ev.Event)
	}
	if got := strings.Join(types, ","); got != "connecting,key_refused" {
		t.Fatalf("events %s, want connecting,key_refused", got)
	}

	// Without a known_hosts line for the OMA there is nothing to pin.
	os.WriteFile(filepath.Join(dir, "known_hosts"), []byte("# nothing\n"), 0o644)
	_, stderr, code = runTunnelCmd(t, "--config-dir", dir, "--once")
	if code != 1 || !strings.Contains(stderr, "no SSH host key of the OMA is pinned") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestTunnelWrongKeyFile(t *testing.T) {
	srv := startRefusingSSH(t)
	dir := enrolledDir(t, srv.addr, authorizedLine(srv.hostKey))
	os.Remove(filepath.Join(dir, "id_ed25519"))
	os.Remove(filepath.Join(dir, "id_ed25519.pub"))
	if _, err := sshkey.LoadOrGenerate(dir, "another"); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runTunnelCmd(t, "--config-dir", dir)
	if code != 1 || !strings.Contains(stderr, "is not the one enrollment") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}
