package omakeys_test

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/omakeys"
	"github.com/oma-enroll/oma-enroll/internal/server"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// TestFiles reads the OMA's keys from a real data directory: the current
// ones alone, then with a staged next key and certificate, and the
// rotation record through a save and a load.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	f := omakeys.Files{DataDir: dir}
	cur, err := sshkey.LoadOrGenerateFile(f.Path(omakeys.FileHostKey), "oma")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := f.TLSPair()
	if _, err := server.CreateSelfSigned(certFile, keyFile, []string{"oma.example"}); err != nil {
		t.Fatal(err)
	}

	hk, next, err := f.HostKeys()
	if err != nil || next != nil || !same(t, hk.PublicKey(), cur.Public) {
		t.Fatalf("host keys without a rotation: %v, next %v, %v", hk, next, err)
	}
	if _, nextCert, err := f.Certs(); err != nil || nextCert != nil {
		t.Fatalf("certificates without a rotation: next %v, %v", nextCert, err)
	}

	staged, err := sshkey.LoadOrGenerateFile(f.Path(omakeys.FileHostKeyNext), "oma-next")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.CreateSelfSigned(f.Path(omakeys.FileTLSNextCert), f.Path(omakeys.FileTLSNextKey), []string{"oma.example"}); err != nil {
		t.Fatal(err)
	}
	_, next, err = f.HostKeys()
	if err != nil || next == nil || !same(t, next.PublicKey(), staged.Public) {
		t.Fatalf("the staged host key: %v, %v", next, err)
	}
	curCert, nextCert, err := f.Certs()
	if err != nil || nextCert == nil || server.SPKIFingerprint(nextCert.Leaf) == server.SPKIFingerprint(curCert.Leaf) {
		t.Fatalf("the staged certificate: %v, %v", nextCert, err)
	}

	// A damaged next key is an error, not silently "no rotation".
	if err := os.WriteFile(f.Path(omakeys.FileHostKeyNext), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.HostKeys(); err == nil {
		t.Fatal("a damaged next host key was read without an error")
	}

	until := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	st := f.LoadRotation()
	if len(st) != 0 {
		t.Fatalf("a rotation record before any rotation: %+v", st)
	}
	st["tls_cert"] = &omakeys.RotationRecord{CurrentFingerprint: "sha256:aa", NextFingerprint: "sha256:bb", StartedAt: until.Add(-time.Hour), OverlapUntil: until}
	if err := f.SaveRotation(st); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, omakeys.FileRotation)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, %v", omakeys.FileRotation, fi, err)
	}
	got := f.LoadRotation()["tls_cert"]
	if got == nil || !got.OverlapUntil.Equal(until) || got.NextFingerprint != "sha256:bb" {
		t.Fatalf("the rotation record after a save and a load: %+v", got)
	}
	// Completing the last rotation removes the file.
	if err := f.SaveRotation(omakeys.RotationState{"tls_cert": nil}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, omakeys.FileRotation)); !os.IsNotExist(err) {
		t.Fatalf("%s after the last rotation ended: %v", omakeys.FileRotation, err)
	}
}

// same reports whether k is the Ed25519 public key pub.
func same(t *testing.T, k ssh.PublicKey, pub ed25519.PublicKey) bool {
	t.Helper()
	want, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(k.Marshal()) == string(want.Marshal())
}
