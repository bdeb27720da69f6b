package omaserver

import (
	"encoding/json"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

func runServerCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
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
