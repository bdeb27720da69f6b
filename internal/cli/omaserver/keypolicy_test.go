package omaserver

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
	"github.com/oma-enroll/oma-enroll/internal/store"
)

// TestOpenSSHSyncDropsExpiredKeys: in the openssh tunnel mode the
// authorized_keys sync writes the approved keys but those the key expiry
// policy refuses, and audits the first refusal once (key_expired).
func TestOpenSSHSyncDropsExpiredKeys(t *testing.T) {
	dataDir := t.TempDir()
	e, _ := approvedDB(t, dataDir)
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite", filepath.Join(dataDir, "oma.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := enroll.New(db, enroll.Config{KeyPolicy: enroll.KeyPolicy{MaxAge: time.Hour, RotationWindow: 20 * time.Minute, Grace: time.Hour}},
		bytes.Repeat([]byte{3}, 32), nil)
	ak := filepath.Join(t.TempDir(), "authorized_keys")
	tun, err := newOpenSSHTunnel(serveOptions{AuthorizedKeysFile: ak, TunnelUser: "oma-test-no-such-user", NBDTarget: contract.NBDTarget}, db, svc, slog.New(slog.DiscardHandler))
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
	if err := tun.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(read(), e.ID) {
		t.Fatalf("a fresh key is not in authorized_keys:\n%s", read())
	}
	// Two hours later the key is past max age + grace.
	svc.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	for range 2 {
		if err := tun.sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(read(), e.ID) {
		t.Fatalf("the expired key is still in authorized_keys:\n%s", read())
	}
	evs, err := db.ListAudit(ctx, enroll.AuditFilter{EventType: enroll.EventKeyExpired})
	if err != nil || len(evs) != 1 || *evs[0].EnrollmentID != e.ID {
		t.Fatalf("key_expired events after two syncs: %+v, %v", evs, err)
	}
}
