package sshdkeys_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/sshdkeys"
)

// akKey is a fixed Ed25519 public key, so expected lines can be spelled out.
var akKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey)

// akEnrollment is an approved enrollment with a deterministic id from n.
func akEnrollment(n int, name string, port int) enroll.Enrollment {
	pub := akKey
	if n != 0 {
		seed := make([]byte, 32)
		copy(seed, fmt.Sprintf("seed-%d", n))
		pub = ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	}
	return enroll.Enrollment{
		ID:             fmt.Sprintf("00000000-0000-4000-8000-%012d", n),
		VMAName:        name,
		VMAPublicKey:   sshkey.AuthorizedKey(pub, ""),
		VMAFingerprint: sshkey.Fingerprint(pub),
		Status:         enroll.StatusApproved,
		TunnelPort:     &port,
	}
}

func akLine(t *testing.T, e enroll.Enrollment) string {
	t.Helper()
	l, err := sshdkeys.AuthorizedKeyLine(&e, "127.0.0.1:10809")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newAKFile(t *testing.T, path string) *sshdkeys.AuthorizedKeysFile {
	t.Helper()
	a, err := sshdkeys.NewAuthorizedKeysFile(sshdkeys.AuthorizedKeysConfig{Path: path, NBDTarget: "127.0.0.1:10809"})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAuthorizedKeyLineFormat(t *testing.T) {
	e := akEnrollment(0, "vma-prod 01", 9081)
	got := akLine(t, e)
	want := `restrict,port-forwarding,command="/bin/false",permitopen="127.0.0.1:10809",permitlisten="127.0.0.1:9081" ` +
		sshkey.AuthorizedKey(akKey, "") + " vma-enroll:" + e.ID + ":vma-prod 01"
	if got != want {
		t.Fatalf("line =\n%s\nwant\n%s", got, want)
	}
	if !strings.HasPrefix(got, `restrict,port-forwarding,command="/bin/false",permitopen="127.0.0.1:10809",permitlisten="127.0.0.1:9081" ssh-ed25519 AAAA`) {
		t.Fatalf("line does not start as DESIGN §6 says: %s", got)
	}
	ent, ok := sshdkeys.ParseAuthorizedKeyEntry(got)
	if !ok || ent.EnrollmentID != e.ID || ent.VMAName != "vma-prod 01" || ent.ListenPort != 9081 || ent.Line != got {
		t.Fatalf("parse = %+v, %v", ent, ok)
	}
	// A configured NBD target goes into permitopen.
	other, err := sshdkeys.AuthorizedKeyLine(&e, "10.0.0.5:10900")
	if err != nil || !strings.Contains(other, `permitopen="10.0.0.5:10900",permitlisten="127.0.0.1:9081" `) {
		t.Fatalf("nbd target: %q, %v", other, err)
	}
}

func TestAuthorizedKeyLineRejectsInjection(t *testing.T) {
	base := akEnrollment(1, "vma", 9081)
	cases := map[string]func(e *enroll.Enrollment) string{
		"name with newline": func(e *enroll.Enrollment) string { e.VMAName = "a\nssh-ed25519 AAAA evil"; return "127.0.0.1:10809" },
		"name with quote":   func(e *enroll.Enrollment) string { e.VMAName = `a"b`; return "127.0.0.1:10809" },
		"id not a uuid":     func(e *enroll.Enrollment) string { e.ID = "x:y"; return "127.0.0.1:10809" },
		"id upper case": func(e *enroll.Enrollment) string {
			e.ID = "ABCDEF00-0000-4000-8000-000000000001"
			return "127.0.0.1:10809"
		},
		"no port": func(e *enroll.Enrollment) string { e.TunnelPort = nil; return "127.0.0.1:10809" },
		"key with options": func(e *enroll.Enrollment) string {
			e.VMAPublicKey = `command="/bin/sh" ` + e.VMAPublicKey
			return "127.0.0.1:10809"
		},
		"key with second line": func(e *enroll.Enrollment) string {
			e.VMAPublicKey += "\n" + sshkey.AuthorizedKey(akKey, "")
			return "127.0.0.1:10809"
		},
		"rsa key": func(e *enroll.Enrollment) string {
			e.VMAPublicKey = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ"
			return "127.0.0.1:10809"
		},
		"target with quote": func(e *enroll.Enrollment) string { return `127.0.0.1:10809",permitopen="*:*` },
		"target no port":    func(e *enroll.Enrollment) string { return "127.0.0.1" },
		"target bad port":   func(e *enroll.Enrollment) string { return "127.0.0.1:99999" },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			e := base
			port := *base.TunnelPort
			e.TunnelPort = &port
			target := mod(&e)
			if l, err := sshdkeys.AuthorizedKeyLine(&e, target); err == nil {
				t.Fatalf("accepted: %q", l)
			}
		})
	}
}

func TestParseAuthorizedKeyEntryForeign(t *testing.T) {
	k := sshkey.AuthorizedKey(akKey, "")
	for _, l := range []string{
		"",
		"# vma-enroll:00000000-0000-4000-8000-000000000001:vma",
		k + " admin@laptop",
		k + " vma-enroll:not-a-uuid:vma",
		k + " vma-enroll:00000000-0000-4000-8000-000000000001",                        // no name separator
		"ssh-ed25519 AAAAnotbase64 vma-enroll:00000000-0000-4000-8000-000000000001:x", // malformed key
		k + " someone vma-enroll:00000000-0000-4000-8000-000000000001:vma",            // marker not at the comment's start
	} {
		if e, ok := sshdkeys.ParseAuthorizedKeyEntry(l); ok {
			t.Errorf("%q parsed as ours: %+v", l, e)
		}
	}
}

// foreign is content the manager must keep byte for byte: comments, blank
// lines, a CRLF line, options, a look-alike comment, and no final newline.
func foreign() string {
	k := sshkey.AuthorizedKey(akKey, "")
	return "# managed by hand\n" +
		"\n" +
		`from="10.0.0.0/8",no-pty ` + k + " admin@jump\r\n" +
		"# vma-enroll:00000000-0000-4000-8000-000000000009:commented out\n" +
		k + " vma-enroll:not-a-uuid:look-alike\n" +
		"   \t \n" +
		"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ legacy@host"
}

func TestAuthorizedKeysKeepsForeignLines(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".ssh")
	path := filepath.Join(dir, "authorized_keys")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(foreign()), 0o644); err != nil {
		t.Fatal(err)
	}
	a := newAKFile(t, path)
	e1, e2 := akEnrollment(1, "vma1", 9081), akEnrollment(2, "vma2", 9082)

	if _, err := a.Add(&e1); err != nil {
		t.Fatal(err)
	}
	want := foreign() + "\n" + akLine(t, e1) + "\n"
	if got := readFile(t, path); got != want {
		t.Fatalf("after add:\n%q\nwant\n%q", got, want)
	}
	if got := readFile(t, path+".bak"); got != foreign() {
		t.Fatalf(".bak = %q, want the previous content %q", got, foreign())
	}

	if _, err := a.Add(&e2); err != nil {
		t.Fatal(err)
	}
	prev := want
	want = prev + akLine(t, e2) + "\n"
	if got := readFile(t, path); got != want {
		t.Fatalf("after second add:\n%q\nwant\n%q", got, want)
	}
	if got := readFile(t, path+".bak"); got != prev {
		t.Fatalf(".bak = %q, want %q", got, prev)
	}

	removed, err := a.Remove(e1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].EnrollmentID != e1.ID || removed[0].ListenPort != 9081 {
		t.Fatalf("removed = %+v", removed)
	}
	want = foreign() + "\n" + akLine(t, e2) + "\n"
	if got := readFile(t, path); got != want {
		t.Fatalf("after remove:\n%q\nwant\n%q", got, want)
	}
	if removed, err := a.Remove(e1.ID); err != nil || len(removed) != 0 {
		t.Fatalf("second remove = %v, %v", removed, err)
	}
	if _, err := a.Remove(e2.ID); err != nil {
		t.Fatal(err)
	}
	// Only foreign content left: the file is the original plus the newline
	// that ended its last line while ours followed it.
	if got := readFile(t, path); got != foreign()+"\n" {
		t.Fatalf("after removing all of ours:\n%q\nwant\n%q", got, foreign()+"\n")
	}

	// Modes: the existing directory outside a home is left alone, the file
	// and its backup are 600.
	for _, p := range []string{path, path + ".bak"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", p, fi.Mode().Perm())
		}
	}
	// No temp files left behind.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("left a temp file: %s", e.Name())
		}
	}
}

func TestAuthorizedKeysCreatesDirAndFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".ssh", "authorized_keys")
	a := newAKFile(t, path)
	e := akEnrollment(1, "vma1", 9081)
	if _, err := a.Add(&e); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != akLine(t, e)+"\n" {
		t.Fatalf("content = %q", got)
	}
	if fi, _ := os.Stat(filepath.Dir(path)); fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, want 0700", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(path + ".bak"); !os.IsNotExist(err) {
		t.Errorf("a .bak of a file that did not exist: %v", err)
	}
	// No parent: a clear error, nothing created.
	b := newAKFile(t, filepath.Join(t.TempDir(), "nohome", ".ssh", "authorized_keys"))
	if _, err := b.Add(&e); err == nil || !strings.Contains(err.Error(), "home directory") {
		t.Fatalf("missing home: %v", err)
	}
}

func TestAuthorizedKeysOwnerAndSSHDirMode(t *testing.T) {
	owner, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if owner, err = user.Lookup("nobody"); err != nil {
			t.Fatalf("as root this test chowns to user nobody: %v", err)
		}
	}
	home := t.TempDir()
	os.Chmod(home, 0o755)
	fake := *owner
	fake.HomeDir = home
	sshDir := filepath.Join(home, ".ssh")
	if err := os.Mkdir(sshDir, 0o775); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sshDir, "authorized_keys")
	if err := os.WriteFile(path, []byte("# hand\n"), 0o664); err != nil {
		t.Fatal(err)
	}
	a, err := sshdkeys.NewAuthorizedKeysFile(sshdkeys.AuthorizedKeysConfig{Path: path, Owner: &fake})
	if err != nil {
		t.Fatal(err)
	}
	e := akEnrollment(1, "vma1", 9081)
	if _, err := a.Add(&e); err != nil {
		t.Fatal(err)
	}
	// As root: root's, readable by the tunnel user's group (sshd reads the
	// file with the tunnel user's rights), writable by root only. Otherwise:
	// the writer's (who then is the tunnel user), private.
	uid, _ := strconv.Atoi(owner.Uid)
	gid, _ := strconv.Atoi(owner.Gid)
	dirMode, fileMode := os.FileMode(0o700), os.FileMode(0o600)
	if os.Geteuid() == 0 {
		uid, dirMode, fileMode = 0, 0o750, 0o640
	}
	for p, mode := range map[string]os.FileMode{sshDir: dirMode, path: fileMode, path + ".bak": fileMode, path + ".lock": 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode = %v, want %v", p, fi.Mode().Perm(), mode)
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || (os.Geteuid() == 0 && int(st.Gid) != gid) {
			t.Errorf("%s owner = %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
	}
	// An unchanged file still gets its mode back.
	os.Chmod(path, 0o666)
	if _, err := a.Add(&e); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != fileMode {
		t.Errorf("mode after no-op add = %v, want %v", fi.Mode().Perm(), fileMode)
	}
}

func TestAuthorizedKeysAddReplacesSupersededAndIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authorized_keys")
	a := newAKFile(t, path)
	old, other := akEnrollment(1, "vma1", 9081), akEnrollment(2, "vma2", 9082)
	for _, e := range []enroll.Enrollment{old, other} {
		if _, err := a.Add(&e); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.Stat(path)
	if _, err := a.Add(&other); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) {
		t.Error("an add that changes nothing rewrote the file")
	}
	// Re-enrollment of vma1 (new id, new key, maybe new port): the old line
	// goes in the same write.
	renew := akEnrollment(3, "vma1", 9083)
	removed, err := a.Add(&renew)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].EnrollmentID != old.ID || removed[0].ListenPort != 9081 {
		t.Fatalf("superseded = %+v", removed)
	}
	if got, want := readFile(t, path), akLine(t, other)+"\n"+akLine(t, renew)+"\n"; got != want {
		t.Fatalf("content:\n%s\nwant\n%s", got, want)
	}
}

func TestAuthorizedKeysSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authorized_keys")
	e1, e2, e3 := akEnrollment(1, "vma1", 9081), akEnrollment(2, "vma2", 9082), akEnrollment(3, "vma3", 9083)
	stale2 := e2
	p := 9999
	stale2.TunnelPort = &p
	// The file holds foreign lines, e1 (still approved), e2 with an old
	// port, a duplicate of e1, and e3 (revoked meanwhile).
	content := "# hand\n" + akLine(t, e1) + "\n" + akLine(t, stale2) + "\n" + akLine(t, e1) + "\n" + akLine(t, e3) + "\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBB other\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newAKFile(t, path)
	e4 := akEnrollment(4, "vma4", 9084)
	notApproved := akEnrollment(5, "vma5", 9085)
	notApproved.Status = enroll.StatusRevoked
	res, err := a.Sync([]enroll.Enrollment{e1, e2, e4, notApproved})
	if err != nil {
		t.Fatal(err)
	}
	want := "# hand\n" + akLine(t, e1) + "\n" + akLine(t, e2) + "\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBB other\n" + akLine(t, e4) + "\n"
	if got := readFile(t, path); got != want {
		t.Fatalf("after sync:\n%s\nwant\n%s", got, want)
	}
	if res.Kept != 1 || len(res.Added) != 2 || len(res.Removed) != 2 || !res.Changed() {
		t.Fatalf("result = %+v", res)
	}
	if got := readFile(t, path+".bak"); got != content {
		t.Fatalf(".bak = %q, want %q", got, content)
	}
	// In step already: nothing is written.
	before, _ := os.Stat(path)
	res, err = a.Sync([]enroll.Enrollment{e4, e2, e1})
	if err != nil || res.Changed() || res.Kept != 3 {
		t.Fatalf("second sync = %+v, %v", res, err)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) {
		t.Error("a sync that changes nothing rewrote the file")
	}
	// A broken row is skipped, not fatal for the others.
	bad := akEnrollment(6, "vma6", 9086)
	bad.VMAPublicKey = "garbage"
	res, err = a.Sync([]enroll.Enrollment{e1, bad})
	if err != nil || len(res.Skipped) != 1 || res.Skipped[0] != bad.ID {
		t.Fatalf("sync with a bad row = %+v, %v", res, err)
	}
	if got := readFile(t, path); got != "# hand\n"+akLine(t, e1)+"\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBB other\n" {
		t.Fatalf("after sync with a bad row:\n%s", got)
	}
	// A failing load leaves the file alone.
	if _, err := a.SyncFunc(func() ([]enroll.Enrollment, error) { return nil, fmt.Errorf("db down") }); err == nil {
		t.Fatal("sync with a failing load succeeded")
	}
	if got := readFile(t, path); !strings.Contains(got, akLine(t, e1)) {
		t.Fatal("a failed sync changed the file")
	}
}

func TestAuthorizedKeysRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("root:secret-hash\n"), 0o600)
	path := filepath.Join(dir, "authorized_keys")
	if err := os.Symlink(secret, path); err != nil {
		t.Fatal(err)
	}
	a := newAKFile(t, path)
	e := akEnrollment(1, "vma1", 9081)
	if _, err := a.Add(&e); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("add through a symlink: %v", err)
	}
	if got := readFile(t, secret); got != "root:secret-hash\n" {
		t.Fatalf("the symlink target changed: %q", got)
	}
}

func TestResolveAuthorizedKeysPath(t *testing.T) {
	root, err := user.LookupId("0")
	if err != nil {
		t.Skip("no user with uid 0")
	}
	p, u, err := sshdkeys.ResolveAuthorizedKeysPath("", root.Username)
	if err != nil || p != filepath.Join(root.HomeDir, ".ssh", "authorized_keys") || u.Uid != "0" {
		t.Fatalf("default = %q, %v, %v", p, u, err)
	}
	p, _, err = sshdkeys.ResolveAuthorizedKeysPath("~"+root.Username+"/keys/ak", root.Username)
	if err != nil || p != filepath.Join(root.HomeDir, "keys", "ak") {
		t.Fatalf("~user = %q, %v", p, err)
	}
	p, u, err = sshdkeys.ResolveAuthorizedKeysPath("/srv/ak", "no-such-user-oma")
	if err != nil || p != "/srv/ak" || u != nil {
		t.Fatalf("absolute with a missing user = %q, %v, %v", p, u, err)
	}
	if _, _, err := sshdkeys.ResolveAuthorizedKeysPath("", "no-such-user-oma"); err == nil || !strings.Contains(err.Error(), "useradd") {
		t.Fatalf("missing user: %v", err)
	}
	if _, _, err := sshdkeys.ResolveAuthorizedKeysPath("relative/ak", root.Username); err == nil {
		t.Fatal("a relative path was accepted")
	}
}

// akChecker verifies one snapshot of the file: every line is a known
// foreign line or a complete line of ours.
type akChecker struct {
	foreign map[string]bool
	ours    map[string]string // id → line
}

func (c *akChecker) check(b []byte) error {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return fmt.Errorf("no final newline: a partial write? %q", b[max(0, len(b)-80):])
	}
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if c.foreign[l] {
			continue
		}
		ent, ok := sshdkeys.ParseAuthorizedKeyEntry(l)
		if !ok {
			return fmt.Errorf("a line that is neither foreign nor ours: %q", l)
		}
		if c.ours[ent.EnrollmentID] != l {
			return fmt.Errorf("a line of ours that is not complete: %q", l)
		}
	}
	for l := range c.foreign {
		if !bytes.Contains(b, []byte(l+"\n")) {
			return fmt.Errorf("foreign line lost: %q", l)
		}
	}
	return nil
}

// akWork is the work of one writer: for i in [from, to) add enrollment i,
// and remove it again when i is odd.
func akWork(a *sshdkeys.AuthorizedKeysFile, from, to int) error {
	for i := from; i < to; i++ {
		e := akEnrollment(i, fmt.Sprintf("vma%d", i), 9000+i)
		if _, err := a.Add(&e); err != nil {
			return err
		}
		if i%2 == 1 {
			if _, err := a.Remove(e.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func akConcurrencySetup(t *testing.T, n int) (string, *akChecker) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "authorized_keys")
	fl := []string{"# hand-made", sshkey.AuthorizedKey(akKey, "admin@jump")}
	if err := os.WriteFile(path, []byte(strings.Join(fl, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &akChecker{foreign: map[string]bool{}, ours: map[string]string{}}
	for _, l := range fl {
		c.foreign[l] = true
	}
	for i := 1; i <= n; i++ {
		e := akEnrollment(i, fmt.Sprintf("vma%d", i), 9000+i)
		c.ours[e.ID] = akLine(t, e)
	}
	return path, c
}

// akReader reads the file in a loop until stop is closed and reports the
// first inconsistent snapshot.
func akReader(path string, c *akChecker, stop chan struct{}, reads *atomic.Int64) chan error {
	errc := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				errc <- nil
				return
			default:
			}
			b, err := os.ReadFile(path)
			if err != nil {
				errc <- err
				return
			}
			reads.Add(1)
			if err := c.check(b); err != nil {
				errc <- err
				return
			}
		}
	}()
	return errc
}

func akFinalCheck(t *testing.T, path string, c *akChecker, n int) {
	t.Helper()
	b := readFile(t, path)
	if err := c.check([]byte(b)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		e := akEnrollment(i, fmt.Sprintf("vma%d", i), 9000+i)
		has := strings.Contains(b, c.ours[e.ID]+"\n")
		if want := i%2 == 0; has != want {
			t.Errorf("enrollment %d present = %v, want %v (a lost update)", i, has, want)
		}
	}
}

func TestAuthorizedKeysConcurrentGoroutines(t *testing.T) {
	const n = 50
	path, c := akConcurrencySetup(t, n)
	stop := make(chan struct{})
	var reads atomic.Int64
	readErr := akReader(path, c, stop, &reads)
	// Each goroutine has its own manager (its own lock file descriptor),
	// as separate processes would.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := sshdkeys.NewAuthorizedKeysFile(sshdkeys.AuthorizedKeysConfig{Path: path})
			if err == nil {
				err = akWork(a, i, i+1)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := <-readErr; err != nil {
		t.Fatalf("reader: %v", err)
	}
	akFinalCheck(t, path, c, n)
	t.Logf("%d consistent reads during %d writes", reads.Load(), n+n/2)
}

// TestAuthorizedKeysHelperProcess is the writer run in a child process by
// TestAuthorizedKeysConcurrentProcesses; alone it does nothing.
func TestAuthorizedKeysHelperProcess(t *testing.T) {
	path := os.Getenv("OMA_AK_HELPER_PATH")
	if path == "" {
		t.Skip("helper process of TestAuthorizedKeysConcurrentProcesses")
	}
	from, _ := strconv.Atoi(os.Getenv("OMA_AK_HELPER_FROM"))
	to, _ := strconv.Atoi(os.Getenv("OMA_AK_HELPER_TO"))
	a, err := sshdkeys.NewAuthorizedKeysFile(sshdkeys.AuthorizedKeysConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	// Several goroutines per process too.
	var wg sync.WaitGroup
	var failed atomic.Value
	for i := from; i < to; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := akWork(a, i, i+1); err != nil {
				failed.Store(err)
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
}

func TestAuthorizedKeysConcurrentProcesses(t *testing.T) {
	const n = 50
	path, c := akConcurrencySetup(t, n)
	stop := make(chan struct{})
	var reads atomic.Int64
	readErr := akReader(path, c, stop, &reads)
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for _, r := range [][2]int{{1, 26}, {26, n + 1}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAuthorizedKeysHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "OMA_AK_HELPER_PATH="+path,
			fmt.Sprintf("OMA_AK_HELPER_FROM=%d", r[0]), fmt.Sprintf("OMA_AK_HELPER_TO=%d", r[1]))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer process %d: %v\n%s", i, err, outs[i])
		}
	}
	close(stop)
	if err := <-readErr; err != nil {
		t.Fatalf("reader: %v", err)
	}
	akFinalCheck(t, path, c, n)
	t.Logf("%d consistent reads during %d writes from 2 processes", reads.Load(), n+n/2)
}

// TestAuthorizedKeysAddReplacesSameKey: approving another name with a key
// already in the file (a clone, a renamed VMA) replaces that line, so that
// revoking the new one leaves the key nowhere (issue 13, finding 3).
func TestAuthorizedKeysAddReplacesSameKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authorized_keys")
	a := newAKFile(t, path)
	orig, other := akEnrollment(1, "vma-a", 9081), akEnrollment(2, "vma-b", 9082)
	for _, e := range []enroll.Enrollment{orig, other} {
		if _, err := a.Add(&e); err != nil {
			t.Fatal(err)
		}
	}
	clone := akEnrollment(1, "vma-clone", 9083) // vma-a's key
	clone.ID = "00000000-0000-4000-8000-000000000009"
	removed, err := a.Add(&clone)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].EnrollmentID != orig.ID || removed[0].Fingerprint != orig.VMAFingerprint {
		t.Fatalf("superseded = %+v, want vma-a's line", removed)
	}
	if _, err := a.Remove(clone.ID); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, path), akLine(t, other)+"\n"; got != want {
		t.Fatalf("after revoking the clone:\n%s\nwant only vma-b:\n%s", got, want)
	}
}
