package omaserver

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
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

// TestServeKeyPolicy: serve's key expiry flags, from the command line and
// the config file (days accepted), the defaults, and the combinations
// refused with a usage error naming the flag.
func TestServeKeyPolicy(t *testing.T) {
	t.Setenv("OMA_CONFIG", "")
	day := 24 * time.Hour
	policy := func(args ...string) (enroll.KeyPolicy, error) {
		v, err := loadConfig(serveCmdWith(t, args...))
		if err != nil {
			t.Fatal(err)
		}
		return keyPolicyFrom(v)
	}
	file := filepath.Join(t.TempDir(), "oma-server.yaml")
	if err := os.WriteFile(file, []byte("key_max_age: 30d\nkey_expiry_grace: 36h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want enroll.KeyPolicy
	}{
		{nil, enroll.KeyPolicy{}},
		{[]string{"--key-max-age", "90d"}, enroll.KeyPolicy{MaxAge: 90 * day, RotationWindow: 14 * day, Grace: 7 * day}},
		{[]string{"--key-max-age", "30s", "--key-rotation-window", "20s", "--key-expiry-grace", "0"}, enroll.KeyPolicy{MaxAge: 30 * time.Second, RotationWindow: 20 * time.Second}},
		{[]string{"--config", file}, enroll.KeyPolicy{MaxAge: 30 * day, RotationWindow: 10 * day, Grace: 36 * time.Hour}},
		{[]string{"--key-rotation-window", "-5s"}, enroll.KeyPolicy{}}, // off: not used
	} {
		got, err := policy(tc.args...)
		if err != nil || got != tc.want {
			t.Errorf("%v: %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
	for _, args := range [][]string{
		{"--key-max-age", "90"}, {"--key-max-age", "-1d"}, {"--key-max-age", "90d", "--key-rotation-window", "90d"},
		{"--key-max-age", "90d", "--key-expiry-grace", "soon"}, {"--key-max-age", "500ms"},
	} {
		_, err := policy(args...)
		var fe *cmdutil.FlagError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "--key-") {
			t.Errorf("%v: %v, want a usage error naming the flag", args, err)
		}
	}
}
