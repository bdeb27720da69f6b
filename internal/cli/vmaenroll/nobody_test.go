package vmaenroll

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// nobodyUID is the unprivileged user (nobody) that rerunAsNobody runs as.
const nobodyUID = "65534"

// rerunAsNobody runs the calling test again in a copy of this test binary
// as nobody (setpriv), for a test about permissions that root would pass
// by ignoring them: CI runs the tests as root, and such a test must run
// there too. It fails when the copy fails or skips.
func rerunAsNobody(t *testing.T) {
	t.Helper()
	setpriv := testbin.Need(t, "apt-get install util-linux", "setpriv")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// go test's build directory is root's alone: copy the binary where
	// nobody may run it, with a temporary directory nobody may write.
	dir, err := os.MkdirTemp("", "oma-nobody-") // not t.TempDir: its parent is root's alone
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tmp := filepath.Join(dir, "tmp")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tmp, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "vmaenroll.test")
	if err := copyFile(self, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid="+nobodyUID, "--regid="+nobodyUID, "--clear-groups", "--",
		bin, "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "HOME="+tmp)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s as nobody: %v\n%s", t.Name(), err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s as nobody did not pass:\n%s", t.Name(), out)
	}
	t.Logf("ran as nobody (uid %s) through setpriv: PASS", nobodyUID)
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
