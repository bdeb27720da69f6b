package sshdkeys_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/sshdkeys"
)

// Findings 4 and 10 of issue 13: the authorized_keys file and ~/.ssh were
// the tunnel user's, so a shell of that user could rewrite its own
// restrictions, and the root-run manager's Lstat-then-open could be raced
// with a symbolic link planted in that directory. Now, as root, the
// manager takes over an existing ~/.ssh of the tunnel user at the start-up
// sync: both become root's (group: the tunnel user's, read only), so the
// tunnel user can still read its keys, as sshd needs, but can neither
// change them nor plant anything beside them.
func TestAuthorizedKeysTunnelUserCannotRewriteItsKeys(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the manager gives the files to root and the test acts as the tunnel user; CI runs the tests as root (.ci/run)")
	}
	u := osshTestUser(t)
	uid, gid := mustAtoi(t, u.Uid), mustAtoi(t, u.Gid)
	home := t.TempDir()
	for _, p := range []string{filepath.Dir(home), home} {
		os.Chmod(p, 0o755) // the tunnel user must reach its home
	}
	os.Chown(home, uid, gid)
	// An installation of an earlier version: ~/.ssh and the file are the
	// tunnel user's, with a hand-made line and one of ours.
	sshDir := filepath.Join(home, ".ssh")
	path := filepath.Join(sshDir, "authorized_keys")
	os.Mkdir(sshDir, 0o700)
	os.Chown(sshDir, uid, gid)
	e := akEnrollment(1, "vma1", 9081)
	if err := os.WriteFile(path, []byte("# hand\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(path, uid, gid)
	fake := *u
	fake.HomeDir = home
	a, err := sshdkeys.NewAuthorizedKeysFile(sshdkeys.AuthorizedKeysConfig{Path: path, Owner: &fake})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync([]enroll.Enrollment{e}); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{sshDir: 0o750, path: 0o640} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 0 || int(st.Gid) != gid || fi.Mode().Perm() != mode {
			t.Errorf("%s: owner %d:%d mode %v, want 0:%d and %v", p, st.Uid, st.Gid, fi.Mode().Perm(), gid, mode)
		}
	}
	// What the tunnel user can do there now.
	as := func(script string) (string, error) {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/bin:/bin", "K=" + path, "D=" + sshDir}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := as(`cat "$K"`); err != nil || !strings.Contains(out, "vma-enroll:") {
		t.Errorf("the tunnel user cannot read its keys (sshd reads them with its rights): %v\n%s", err, out)
	}
	for what, script := range map[string]string{
		"rewrite the file":      `echo 'ssh-ed25519 AAAA evil' >> "$K"`,
		"chmod the file":        `chmod 666 "$K"`,
		"replace the file":      `mv "$K" "$D/old"`,
		"plant a symbolic link": `ln -s /etc/shadow "$D/authorized_keys.bak"`,
		"create a file there":   `touch "$D/planted"`,
		"chmod the directory":   `chmod 777 "$D"`,
	} {
		if out, err := as(script); err == nil {
			t.Errorf("the tunnel user could %s: %s", what, out)
		}
	}
	if got := readFile(t, path); !strings.Contains(got, "# hand\n") || strings.Contains(got, "evil") {
		t.Fatalf("authorized_keys now:\n%s", got)
	}
}
