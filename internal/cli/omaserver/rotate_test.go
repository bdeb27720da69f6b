package omaserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/omakeys"
	"github.com/oma-enroll/oma-enroll/internal/server"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// rotateDataDir is a migrated data directory with an SSH host key, as
// serve leaves it in the embedded tunnel mode.
func rotateDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, stderr, code := runServerCmd(t, "migrate", "up", "--data-dir", dir); code != 0 {
		t.Fatalf("migrate up: exit %d\n%s", code, stderr)
	}
	_, priv, err := sshkey.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := sshkey.MarshalPrivateKey(priv, "oma-server")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, omakeys.FileHostKey), pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The staged private key is 0600, and the overlap is on disk as soon as
// the key is: --complete before its end is refused.
func TestRotateStagesWithOverlap(t *testing.T) {
	dir := rotateDataDir(t)
	if _, stderr, code := runServerCmd(t, "rotate", "ssh-host-key", "--data-dir", dir); code != 0 {
		t.Fatalf("rotate ssh-host-key: exit %d\n%s", code, stderr)
	}
	fi, err := os.Stat(filepath.Join(dir, omakeys.FileHostKeyNext))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("the staged private key has mode %v, want 0600", fi.Mode().Perm())
	}
	if rec := (omakeys.Files{DataDir: dir}).LoadRotation()["ssh_host_key"]; rec == nil || rec.OverlapUntil.IsZero() {
		t.Fatalf("no overlap recorded for the staged key: %+v", rec)
	}
	if _, stderr, code := runServerCmd(t, "rotate", "ssh-host-key", "--complete", "--data-dir", dir); code != 1 || !strings.Contains(stderr, "overlap lasts until") {
		t.Fatalf("--complete inside the overlap: exit %d\n%s", code, stderr)
	}
}

// Without the record of the overlap (oma-rotation.json removed or
// damaged) --complete cannot tell whether the overlap is over: it wants
// --force, and says where to look.
func TestRotateCompleteWithoutOverlapRecord(t *testing.T) {
	dir := rotateDataDir(t)
	if _, stderr, code := runServerCmd(t, "rotate", "ssh-host-key", "--overlap", "720h", "--data-dir", dir); code != 0 {
		t.Fatalf("rotate ssh-host-key: exit %d\n%s", code, stderr)
	}
	if err := os.Remove(filepath.Join(dir, omakeys.FileRotation)); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runServerCmd(t, "rotate", "ssh-host-key", "--complete", "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, "--force") || !strings.Contains(stderr, "oma_key_rotation") {
		t.Fatalf("--complete without the overlap's record: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, omakeys.FileHostKeyNext)); err != nil {
		t.Fatalf("the refused --complete changed the staged key: %v", err)
	}
	if _, stderr, code := runServerCmd(t, "rotate", "ssh-host-key", "--complete", "--force", "--data-dir", dir); code != 0 {
		t.Fatalf("--complete --force: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, omakeys.FileHostKeyNext)); !os.IsNotExist(err) {
		t.Fatalf("the next key is still staged after --complete --force: %v", err)
	}
}

// A crash between the renames of `rotate tls-cert --complete` leaves the
// next key as tls.key beside the old tls.crt. The next rotate (and serve)
// finishes the switch instead of failing on a key that does not match its
// certificate.
func TestRotateFinishesACutShortTLSSwitch(t *testing.T) {
	dir := rotateDataDir(t)
	f := omakeys.Files{DataDir: dir}
	certFile, keyFile := f.TLSPair()
	if _, err := server.CreateSelfSigned(certFile, keyFile, []string{"oma.example"}); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runServerCmd(t, "rotate", "tls-cert", "--data-dir", dir); code != 0 {
		t.Fatalf("rotate tls-cert: exit %d\n%s", code, stderr)
	}
	next, err := server.LoadPair(f.Path(omakeys.FileTLSNextCert), f.Path(omakeys.FileTLSNextKey))
	if err != nil {
		t.Fatal(err)
	}
	// The crash: the key was renamed, the certificate not yet.
	if err := os.Rename(f.Path(omakeys.FileTLSNextKey), keyFile); err != nil {
		t.Fatal(err)
	}
	if _, err := server.LoadPair(certFile, keyFile); err == nil {
		t.Fatal("the simulated crash left a matching pair")
	}
	_, stderr, code := runServerCmd(t, "rotate", "tls-cert", "--abort", "--data-dir", dir)
	if !strings.Contains(stderr, "finished the switch to the staged TLS certificate") {
		t.Fatalf("rotate after the cut-short switch: exit %d\n%s", code, stderr)
	}
	cur, err := server.LoadPair(certFile, keyFile)
	if err != nil || server.SPKIFingerprint(cur.Leaf) != server.SPKIFingerprint(next.Leaf) {
		t.Fatalf("after the repair the certificate in use is not the staged one: %v", err)
	}
	// Nothing is staged any more: the abort says so.
	if code != 1 || !strings.Contains(stderr, "no rotation of the TLS certificate is staged") {
		t.Fatalf("--abort after the repair: exit %d\n%s", code, stderr)
	}
}
