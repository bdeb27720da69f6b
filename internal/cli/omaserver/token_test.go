package omaserver

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/store"
)

// runServerCmd runs oma-server in-process with args. It never reads the
// machine's settings: the OMA_* database and data-dir variables are
// cleared and an empty config file replaces /etc/oma-enroll/oma-server.yaml
// (a test that runs migrate down must not find a real database).
func runServerCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	isolateServerConfig(t)
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	args = append(args, "--config", empty)
	ios, _, out, errOut := cmdutil.Test()
	root := NewRootCmd(ios)
	root.SetArgs(args)
	code := cmdutil.Run(root, ios)
	return out.String(), errOut.String(), code
}

func TestTokenListOutputs(t *testing.T) {
	t.Setenv("OMA_CONFIG", "")
	dir := t.TempDir()
	if _, stderr, code := runServerCmd(t, "migrate", "up", "--data-dir", dir); code != 0 {
		t.Fatalf("migrate up: exit %d\n%s", code, stderr)
	}
	for _, name := range []string{"alice", "bob"} {
		if _, stderr, code := runServerCmd(t, "token", "create", "--name", name, "--data-dir", dir); code != 0 {
			t.Fatalf("token create: exit %d\n%s", code, stderr)
		}
	}
	if _, stderr, code := runServerCmd(t, "token", "revoke", "alice", "--data-dir", dir); code != 0 {
		t.Fatalf("token revoke: exit %d\n%s", code, stderr)
	}

	out, _, code := runServerCmd(t, "token", "list", "--data-dir", dir)
	if code != 0 || !strings.HasPrefix(out, "NAME ") || strings.Count(out, "\n") != 3 || !strings.Contains(out, "revoked ") {
		t.Fatalf("table: exit %d\n%s", code, out)
	}
	out, _, _ = runServerCmd(t, "token", "list", "--no-headers", "--data-dir", dir)
	if strings.Contains(out, "NAME") || strings.Count(out, "\n") != 2 {
		t.Fatalf("--no-headers:\n%s", out)
	}
	var list []map[string]any
	out, _, code = runServerCmd(t, "token", "list", "-o", "json", "--data-dir", dir)
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != 0 || len(list) != 2 {
		t.Fatalf("-o json = %q: %v", out, err)
	}
	if list[0]["name"] != "alice" || list[0]["revoked_at"] == nil || list[1]["revoked_at"] != nil || list[1]["created_at"] == nil {
		t.Fatalf("-o json = %v", list)
	}
	if _, ok := list[1]["last_used_at"]; !ok {
		t.Fatalf("last_used_at is missing instead of null: %v", list[1])
	}
	list = nil
	out, _, _ = runServerCmd(t, "token", "list", "-o", "yaml", "--data-dir", dir)
	if err := yaml.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 || list[1]["name"] != "bob" {
		t.Fatalf("-o yaml = %q: %v", out, err)
	}
	if _, _, code := runServerCmd(t, "token", "list", "-o", "xml", "--data-dir", dir); code != 2 {
		t.Fatalf("-o xml: exit %d, want 2", code)
	}
	if strings.Contains(out, "token_hash") {
		t.Fatal("token hashes are listed")
	}
}

// isolateServerConfig clears the environment variables through which the
// machine could point a test's oma-server at a real database.
func isolateServerConfig(t *testing.T) {
	t.Helper()
	for _, k := range []string{"OMA_CONFIG", "OMA_DB_DRIVER", "OMA_DB_DSN", "OMA_DATA_DIR"} {
		t.Setenv(k, "")
	}
}

// TestTokenCreateRevokeAudited: 'oma-server token create|revoke' write
// admin_token_created / admin_token_revoked events (actor local:<user>, the
// token's name, never the token) into the chain that serve keeps, keyed by
// the audit key in the data directory (issue 13, finding 11).
func TestTokenCreateRevokeAudited(t *testing.T) {
	t.Setenv("OMA_CONFIG", "")
	dir := t.TempDir()
	if _, stderr, code := runServerCmd(t, "migrate", "up", "--data-dir", dir); code != 0 {
		t.Fatalf("migrate up: exit %d\n%s", code, stderr)
	}
	tok, stderr, code := runServerCmd(t, "token", "create", "--name", "dave", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("token create: exit %d\n%s", code, stderr)
	}
	if _, stderr, code := runServerCmd(t, "token", "revoke", "dave", "--data-dir", dir); code != 0 {
		t.Fatalf("token revoke: exit %d\n%s", code, stderr)
	}
	keyHex, err := os.ReadFile(filepath.Join(dir, "audit.key"))
	if err != nil {
		t.Fatalf("token create left no audit key: %v", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(keyHex)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite", filepath.Join(dir, "oma.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs, err := db.ListAudit(ctx, enroll.AuditFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].EventType != enroll.EventAdminTokenCreated || evs[1].EventType != enroll.EventAdminTokenRevoked {
		t.Fatalf("audit = %+v, want admin_token_created, admin_token_revoked", evs)
	}
	for _, ev := range evs {
		if !strings.HasPrefix(ev.ApprovedBy, "local:") || ev.Details()["token_name"] != "dave" {
			t.Errorf("event %s: actor %q, details %v; want local:<user> and token_name dave", ev.EventType, ev.ApprovedBy, ev.Details())
		}
		if strings.Contains(ev.EventDetails, strings.TrimSpace(tok)) {
			t.Errorf("event %s holds the token", ev.EventType)
		}
	}
	rep, err := enroll.New(db, enroll.Config{}, key, nil).VerifyAudit(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("audit chain: %+v, %v; want OK under the data directory's key", rep, err)
	}
}
