package omactl

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/omatest"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// now is the fixed clock of the tests: the servers of the command tests
// stand at it once their history is built, and omactl reads it for
// relative times.
var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// hostileName is the stored name of vma-muc-02: it ends in a terminal
// escape sequence (red) and a bidi control (right-to-left override).
const hostileName = "vma-muc-02\x1b[31m\u202e"

// sharedPrefix starts the ids of the two enrollments of a world that
// share their first 8 characters (see idRand).
const sharedPrefix = "0b9d3c4e"

// idRand is the randomness of the test servers: a seeded stream, and
// while prefix is set every read starts with it. An enrollment id is one
// read of its own, so the ids made meanwhile share their first characters,
// as two ids with a colliding prefix would.
type idRand struct {
	mu     sync.Mutex
	r      io.Reader
	prefix []byte
}

func (r *idRand) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.r.Read(p)
	copy(p[:n], r.prefix)
	return n, err
}

func (r *idRand) setPrefix(b []byte) { r.mu.Lock(); defer r.mu.Unlock(); r.prefix = b }

// world is the oma-server of a command test with a history built at known
// times from a seeded randomness source, so that every id, pairing code,
// key fingerprint and time omactl prints is the same on every run:
//
//	approved  vma-fra-01 2.3.9, approved 3 days ago (port 9081), tunnel connected for 5h
//	ham       vma-ham-04, approved 2 days ago (port 9082), tunnel disconnected since
//	rejected  vma-ber-03, rejected yesterday
//	pending1  vma-fra-01 2.4.1 (a new appliance under the old name), awaiting approval,
//	          its id starting with sharedPrefix
//	pending2  vma-muc-02, awaiting approval, its id also starting with sharedPrefix;
//	          its stored name (hostileName) carries terminal controls
//
// with an unused pairing code and a failed enrollment (an unknown code) in
// the audit trail.
type world struct {
	*omatest.OMA
	clock *omatest.Clock
	rand  *idRand

	approved, ham, rejected, pending1, pending2 string
}

var (
	adminMeta = enroll.Meta{Actor: "admin", SourceIP: "127.0.0.1", UserAgent: "omactl/test"}
	vmaMeta   = enroll.Meta{SourceIP: "203.0.113.7", UserAgent: "oma-tunnel"}
)

// vmaKey is the SSH key of a test VMA, the same on every run.
func vmaKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{clock: omatest.NewClock(now.Add(-80 * time.Hour)), rand: &idRand{r: omatest.SeededRand("omactl command tests")}}
	// A key expiry policy under which vma-fra-01's key (approved 72h ago)
	// is due and vma-ham-04's (51h) is ok.
	w.OMA = omatest.Start(t, omatest.Options{Now: w.clock.Now, Rand: w.rand,
		KeyPolicy: enroll.KeyPolicy{MaxAge: 80 * time.Hour, RotationWindow: 20 * time.Hour, Grace: 24 * time.Hour}})
	at := func(d time.Duration) { w.clock.Set(now.Add(d)) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	at(-(72*time.Hour + 15*time.Minute))
	e := w.StartEnroll(omatest.VMA{Name: "vma-fra-01", Version: "2.3.9", SourceIP: "203.0.113.7", Key: vmaKey("vma-fra-01 old")})
	at(-(72*time.Hour + 10*time.Minute))
	w.approved = e.Verify()
	at(-72 * time.Hour)
	w.Approve(w.approved)

	at(-(51*time.Hour + 10*time.Minute))
	e = w.StartEnroll(omatest.VMA{Name: "vma-ham-04", Version: "2.4.0", SourceIP: "192.0.2.44", Key: vmaKey("vma-ham-04")})
	at(-(51*time.Hour + 5*time.Minute))
	w.ham = e.Verify()
	at(-51 * time.Hour)
	w.Approve(w.ham)
	must(w.Svc.TunnelConnected(ctx, w.ham, "192.0.2.44:50122", enroll.Meta{SourceIP: "192.0.2.44", UserAgent: "oma-tunnel"}))
	at(-50 * time.Hour)
	must(w.Svc.TunnelDisconnected(ctx, w.ham, "connection lost", true, enroll.Meta{SourceIP: "192.0.2.44", UserAgent: "oma-tunnel"}))

	at(-26 * time.Hour)
	e = w.StartEnroll(omatest.VMA{Name: "vma-ber-03", Version: "2.4.1", SourceIP: "192.0.2.10", Key: vmaKey("vma-ber-03")})
	at(-(25*time.Hour + 58*time.Minute))
	w.rejected = e.Verify()
	at(-(25*time.Hour + 45*time.Minute))
	_, err := w.Svc.Reject(ctx, w.rejected, "unknown site", adminMeta)
	must(err)

	at(-5 * time.Hour)
	must(w.Svc.TunnelConnected(ctx, w.approved, "203.0.113.7:41022", vmaMeta))

	at(-13 * time.Minute)
	_, err = w.Svc.CreatePairingCode(ctx, 10*time.Minute, "ticket 4711", adminMeta)
	must(err)

	w.rand.setPrefix([]byte{0x0b, 0x9d, 0x3c, 0x4e})
	at(-4 * time.Minute)
	e = w.StartEnroll(omatest.VMA{Name: "vma-fra-01", Version: "2.4.1", SourceIP: "203.0.113.7", Key: vmaKey("vma-fra-01 new")})
	at(-3 * time.Minute)
	w.pending1 = e.Verify()

	at(-2 * time.Minute)
	_, err = w.Svc.Enroll(ctx, enroll.EnrollRequest{PairingCode: "7KQ2-M9XD-4RTB", PublicKey: sshkey.AuthorizedKey(vmaKey("vma-x").Public().(ed25519.PublicKey), ""), Name: "vma-x", Version: "1.0"},
		enroll.Meta{SourceIP: "198.51.100.99", UserAgent: "curl/8.5.0"})
	if !errors.Is(err, enroll.ErrPairingCodeRejected) {
		t.Fatalf("enroll with an unknown code: %v, want %v", err, enroll.ErrPairingCodeRejected)
	}

	at(-time.Minute)
	e = w.StartEnroll(omatest.VMA{Name: "vma-muc-02", Version: "2.4.0", SourceIP: "198.51.100.23", Key: vmaKey("vma-muc-02")})
	// The server accepts no control characters in a name; this one is
	// stored behind its back (as an older version or someone with write
	// access to the database could), to show that omactl does not pass it
	// on to the terminal.
	if w.Exec("UPDATE vma_enrollments SET vma_name = ? WHERE id = ?", hostileName, e.ID) != 1 {
		t.Fatal("renaming vma-muc-02 changed nothing")
	}
	at(-50 * time.Second)
	w.pending2 = e.Verify()
	w.rand.setPrefix(nil)

	at(-10 * time.Second)
	must(w.Svc.TunnelSeen(ctx, w.approved))
	at(0)
	return w
}

// status is the stored status of enrollment id.
func (w *world) status(t *testing.T, id string) enroll.Status {
	t.Helper()
	e, err := w.Svc.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e.Status
}

// normalize replaces what differs from run to run in omactl's output: the
// address of the public listener (a free port) and the fingerprint of its
// TLS certificate (generated by each server).
func (w *world) normalize(s string) string {
	s = strings.ReplaceAll(s, w.Public(), "127.0.0.1:PUBLIC-PORT")
	return strings.ReplaceAll(s, w.Fingerprint(), "sha256:OMA-TLS-FINGERPRINT")
}

type result struct {
	stdout, stderr string
	code           int
}

// runCmd runs omactl with args against oma's admin listener and token (nil:
// no server flags), with stdin and a terminal or not, at the time now.
func runCmd(t *testing.T, oma *omatest.OMA, stdin string, tty bool, args ...string) result {
	t.Helper()
	return runWith(t, oma, stdin, tty, nil, args...)
}

// runWith is runCmd with setup changing the factory first.
func runWith(t *testing.T, oma *omatest.OMA, stdin string, tty bool, setup func(f *Factory), args ...string) result {
	t.Helper()
	ios, in, out, errOut := cmdutil.Test()
	in.WriteString(stdin)
	ios.InTTY, ios.ErrTTY, ios.OutTTY = tty, tty, tty
	f := NewFactory(ios)
	f.Now = func() time.Time { return now }
	f.Loc = time.UTC
	f.ConfigFile = ""
	if setup != nil {
		setup(f)
	}
	root := NewRootCmd(f)
	if oma != nil {
		args = append([]string{"--server", oma.AdminURL(), "--token", oma.Token}, args...)
	}
	root.SetArgs(args)
	code := cmdutil.Run(root, ios)
	return result{out.String(), errOut.String(), code}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got ---\n%s--- want ---\n%s", name, path, got, want)
	}
}

func TestMain(m *testing.M) {
	// Config tests set OMACTL_* themselves; clear what the environment brings.
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, EnvPrefix) || strings.HasPrefix(kv, "COLUMNS=") {
			os.Unsetenv(strings.SplitN(kv, "=", 2)[0])
		}
	}
	os.Exit(m.Run())
}
