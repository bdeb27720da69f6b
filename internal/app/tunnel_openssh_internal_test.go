package app

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/store"
)

// TestOpenSSHSyncDropsExpiredKeys: in the openssh tunnel mode the
// authorized_keys sync writes the approved keys but those the key expiry
// policy refuses, and audits the first refusal once (key_expired).
func TestOpenSSHSyncDropsExpiredKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dsn := filepath.Join(dir, "oma.db")
	if err := store.MigrateUp(ctx, "sqlite", dsn); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, "sqlite", dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := enroll.New(db, enroll.Config{KeyPolicy: enroll.KeyPolicy{MaxAge: time.Hour, RotationWindow: 20 * time.Minute, Grace: time.Hour}},
		bytes.Repeat([]byte{3}, 32), nil)
	admin := enroll.Meta{Actor: "admin"}
	code, err := svc.CreatePairingCode(ctx, 0, "", admin)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := sshkey.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Enroll(ctx, enroll.EnrollRequest{PairingCode: code.Code.Reveal(), PublicKey: sshkey.AuthorizedKey(pub, ""), Name: "vma-old-key", Version: "1"}, enroll.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Verify(ctx, res.EnrollmentID, enroll.SignChallenge(priv, res.EnrollmentID, res.Challenge), enroll.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Approve(ctx, res.EnrollmentID, "", admin); err != nil {
		t.Fatal(err)
	}
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key.pub")
	if err := os.WriteFile(hostKey, []byte(sshkey.AuthorizedKey(pub, "sshd")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ak := filepath.Join(dir, "authorized_keys")
	cfg := &Config{Tunnel: TunnelConfig{Mode: "openssh", User: "oma-test-no-such-user", NBDTarget: contract.NBDTarget, SSHHostKey: hostKey, AuthorizedKeysFile: ak}}
	d, err := newOpenSSHDriver(ctx, cfg, db, svc, slog.New(slog.DiscardHandler)) // syncs once
	if err != nil {
		t.Fatal(err)
	}
	read := func() string {
		b, err := os.ReadFile(ak)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if !strings.Contains(read(), res.EnrollmentID) {
		t.Fatalf("a fresh key is not in authorized_keys:\n%s", read())
	}
	// Two hours later the key is past max age + grace.
	svc.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	for range 2 {
		if err := d.sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(read(), res.EnrollmentID) {
		t.Fatalf("the expired key is still in authorized_keys:\n%s", read())
	}
	evs, err := db.ListAudit(ctx, enroll.AuditFilter{EventType: enroll.EventKeyExpired})
	if err != nil || len(evs) != 1 || *evs[0].EnrollmentID != res.EnrollmentID {
		t.Fatalf("key_expired events after two syncs: %+v, %v", evs, err)
	}
}
