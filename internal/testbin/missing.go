package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The one policy for a test whose dependency (a tool such as sshd, ssh,
// Chromium or curl, a MariaDB server, root) the machine lacks: on a
// developer machine the test is skipped with a message that says how to
// get it; under CI it fails, because .ci/run installs every dependency and
// nothing may be skipped there.

// InCI reports whether the tests run under CI: CI is set to anything but
// "", "0" or "false" (.ci/run is run with CI=true).
func InCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "0" && v != "false"
}

// Missing stops the test for a missing dependency: t.Skip with the message
// locally, t.Fatal under CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("missing dependency under CI (.ci/run installs it): %s", msg)
	}
	t.Skipf("SKIP (missing dependency; under CI=true this fails): %s", msg)
}

// sbinDirs are searched after PATH: sshd and mariadbd live there, and a
// non-root PATH often lacks them.
var sbinDirs = []string{"/usr/sbin", "/usr/local/sbin", "/sbin"}

// LookPath returns the path of the first of names found on PATH or in the
// sbin directories, or "".
func LookPath(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, dir := range sbinDirs {
			p := filepath.Join(dir, n)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return p
			}
		}
	}
	return ""
}

// Need returns the path of the first of names that is installed, and
// otherwise stops the test by the policy above; install says how to get it
// (e.g. "apt-get install openssh-client").
func Need(t testing.TB, install string, names ...string) string {
	t.Helper()
	if p := LookPath(names...); p != "" {
		return p
	}
	Missing(t, "%s not found on PATH (%s)", names[0], install)
	return ""
}

// NeedRoot stops the test by the policy above unless it runs as root.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root: %s", why)
	}
}
