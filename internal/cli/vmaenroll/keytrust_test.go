package vmaenroll

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/omatest"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// keyDir returns a 0700 directory holding a fresh id_ed25519 (0600).
func keyDir(t *testing.T) (string, *sshkey.KeyPair) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vma")
	kp, err := sshkey.LoadOrGenerate(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir, kp
}

// TestKeyTrustRefusesUntrustedFiles: a key file of another owner, one others
// can read, a symbolic link, and a config directory others can write are
// refused, each saying what to do (issue 13, finding 7).
func TestKeyTrustRefusesUntrustedFiles(t *testing.T) {
	for name, c := range map[string]struct {
		mut  func(t *testing.T, dir string)
		want []string
	}{
		"dir writable by others": {func(t *testing.T, dir string) { os.Chmod(dir, 0o777) }, []string{"writable by others (mode 0777)", "chmod 700"}},
		"key readable by others": {func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, "id_ed25519"), 0o644) }, []string{"readable by others (mode 0644)", "chmod 600"}},
		"key readable by group":  {func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, "id_ed25519"), 0o640) }, []string{"readable by others", "rm "}},
		"key is a symlink": {func(t *testing.T, dir string) {
			k := filepath.Join(dir, "id_ed25519")
			os.Rename(k, k+".real")
			os.Symlink(k+".real", k)
		}, []string{"not a regular file"}},
	} {
		dir, _ := keyDir(t)
		c.mut(t, dir)
		err := checkKeyTrust(dir)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: err = %v, want it to contain %q", name, err, w)
			}
		}
	}
	dir, _ := keyDir(t)
	if err := checkKeyTrust(dir); err != nil {
		t.Fatalf("a 0600 key of our own in a 0700 directory: %v", err)
	}
	if err := checkKeyTrust(filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Fatalf("a directory still to be made: %v", err)
	}
}

// TestKeyTrustRefusesAnotherOwnersKey: a key owned by another uid is
// refused even when vma-enroll runs as root (CI runs the tests as root: the
// key is chowned to nobody, so the check really runs as root).
func TestKeyTrustRefusesAnotherOwnersKey(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the key file another owner; CI runs the tests as root (.ci/run)")
	}
	dir, _ := keyDir(t)
	if err := os.Chown(filepath.Join(dir, "id_ed25519"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	err := checkKeyTrust(dir)
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 65534, not to the user running vma-enroll (uid 0)") || !strings.Contains(err.Error(), "rm ") {
		t.Fatalf("a key owned by uid 65534, as root: %v", err)
	}
}

// TestEnrollRefusesUntrustedKey: vma-enroll stops before contacting the OMA
// when the key it finds is not safely its own (old main used a 0644 key of
// another owner in a 0777 directory silently), and names the key it reuses.
func TestEnrollRefusesUntrustedKey(t *testing.T) {
	oma := omatest.Start(t, omatest.Options{})
	dir, kp := keyDir(t)
	os.Chmod(filepath.Join(dir, "id_ed25519"), 0o644)
	r := runVE(t, "", false, "--oma", oma.Public(), "--code", oma.Code(), "--fingerprint", oma.Fingerprint(), "--config-dir", dir, "--timeout", "30s")
	if r.code != 1 || !strings.Contains(r.stderr, "readable by others") || !strings.Contains(r.stderr, "chmod 600") {
		t.Fatalf("0644 key: exit %d, want 1 saying what to do\n%s", r.code, r.stderr)
	}
	if n := len(oma.Enrollments()); n != 0 {
		t.Fatalf("the refused key was enrolled (%d enrollments)", n)
	}

	os.Chmod(filepath.Join(dir, "id_ed25519"), 0o600)
	oma.DecideWhenWaiting("approve", "")
	r = runVE(t, "", false, "--oma", oma.Public(), "--code", oma.Code(), "--fingerprint", oma.Fingerprint(), "--config-dir", dir, "--timeout", "30s")
	if r.code != 0 {
		t.Fatalf("0600 key: exit %d\n%s", r.code, r.stderr)
	}
	if want := "Using the existing key " + sshkey.Fingerprint(kp.Public); !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr does not say %q:\n%s", want, r.stderr)
	}
}

// TestKeyTrustHelper is not a test of its own: TestKeyTrustAsAnotherUser
// runs the test binary as another user with VMA_KEYTRUST_DIR set, and this
// prints what checkKeyTrust says about that directory.
func TestKeyTrustHelper(t *testing.T) {
	dir := os.Getenv("VMA_KEYTRUST_DIR")
	if dir == "" {
		return
	}
	if err := checkKeyTrust(dir); err != nil {
		fmt.Println("REFUSED:", err)
		return
	}
	fmt.Println("ACCEPTED")
}

// TestKeyTrustAsAnotherUser: vma-enroll running as an unprivileged user
// (uid 65534, through setpriv) refuses a key root placed in its config
// directory, and accepts its own.
func TestKeyTrustAsAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run as another user (setpriv); CI runs the tests as root (.ci/run)")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is required: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A copy of this test binary that uid 65534 can run, and a config
	// directory of its own holding a key root made.
	base := t.TempDir()
	for p := base; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	bin := filepath.Join(base, "vmaenroll.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "vma")
	if _, err := sshkey.LoadOrGenerate(dir, "planted-by-root"); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o700)
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	run := func() string {
		cmd := exec.Command(setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", bin, "-test.run", "^TestKeyTrustHelper$")
		cmd.Env = append(os.Environ(), "VMA_KEYTRUST_DIR="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper as uid 65534: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := run(); !strings.Contains(out, "REFUSED:") || !strings.Contains(out, "belongs to uid 0, not to the user running vma-enroll (uid 65534)") {
		t.Fatalf("a root-owned key, as uid 65534:\n%s", out)
	}
	for _, n := range []string{"id_ed25519", "id_ed25519.pub"} {
		if err := os.Chown(filepath.Join(dir, n), 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if out := run(); !strings.Contains(out, "ACCEPTED") {
		t.Fatalf("its own key, as uid 65534:\n%s", out)
	}
}
