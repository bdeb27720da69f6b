package omactl

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

func startFake(t *testing.T) (*fakeAPI, *httptest.Server) {
	t.Helper()
	a := newFakeAPI()
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, srv
}

func mustOK(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

func TestTables(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"pairing-code", []string{"pairing-code", "--ttl", "10m"}},
		{"pending", []string{"pending"}},
		{"active", []string{"active"}},
		{"audit", []string{"audit"}},
		{"audit-verify", []string{"audit", "verify"}},
		{"approve", []string{"approve", "0b9d3c4e-1111", "--notes", "fingerprint checked"}},
		{"reject", []string{"reject", "0b9d3c4e-2222-4aaa-8bbb-000000000002", "--reason", "not ours"}},
		{"revoke", []string{"revoke", "7e6f5a4b", "--reason", "decommissioned"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := startFake(t)
			r := runCmd(t, srv, "", false, tt.args...)
			mustOK(t, r)
			golden(t, tt.name, r.stdout)
			if strings.ContainsAny(r.stdout, "\x1b\x07") {
				t.Errorf("terminal control characters reached stdout:\n%q", r.stdout)
			}
		})
	}
}

func TestJSONOutput(t *testing.T) {
	_, srv := startFake(t)
	for _, args := range [][]string{{"pending"}, {"active"}, {"audit"}} {
		r := runCmd(t, srv, "", false, append(args, "-o", "json")...)
		mustOK(t, r)
		var list []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
			t.Fatalf("%v: stdout is not one JSON array: %v\n%s", args, err, r.stdout)
		}
		if len(list) == 0 {
			t.Errorf("%v: empty list", args)
		}
	}
	r := runCmd(t, srv, "", false, "-o", "json", "pairing-code")
	mustOK(t, r)
	var pc api.PairingCodeResponse
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pc); err != nil || pc.PairingCode == "" || pc.JoinCommand == "" {
		t.Fatalf("pairing-code -o json = %q: %v", r.stdout, err)
	}
	if dec.More() {
		t.Fatal("more than one JSON document on stdout")
	}

	// The audit comes back oldest first although it was fetched newest first in pages.
	r = runCmd(t, srv, "", false, "audit", "-o", "json")
	var evs []api.AuditEvent
	json.Unmarshal([]byte(r.stdout), &evs)
	if len(evs) != 4 || evs[0].ID != 1 || evs[3].ID != 4 {
		t.Fatalf("audit order: %+v", evs)
	}
	r = runCmd(t, srv, "", false, "audit", "-o", "json", "--limit", "3")
	json.Unmarshal([]byte(r.stdout), &evs)
	if len(evs) != 3 || evs[0].ID != 2 || evs[2].ID != 4 {
		t.Fatalf("audit --limit 3 = ids %v, want the newest three (2,3,4)", evs)
	}

	// An empty list is [] in JSON, not null, and nothing on stdout in a table.
	a, srv2 := startFake(t)
	a.connections = nil
	r = runCmd(t, srv2, "", false, "active", "-o", "json")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("empty active -o json = %q", r.stdout)
	}
	r = runCmd(t, srv2, "", false, "active")
	if r.stdout != "" || !strings.Contains(r.stderr, "No VMA") {
		t.Fatalf("empty active table: stdout %q stderr %q", r.stdout, r.stderr)
	}
}

func TestYAMLOutput(t *testing.T) {
	_, srv := startFake(t)
	r := runCmd(t, srv, "", false, "pending", "-o", "yaml")
	mustOK(t, r)
	var list []map[string]any
	if err := yaml.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, r.stdout)
	}
	if len(list) != 2 || list[0]["vma_name"] != "vma-fra-01" || list[0]["id"] == nil {
		t.Fatalf("yaml = %v", list)
	}
	if !strings.HasPrefix(r.stdout, "- id: 0b9d3c4e-1111") {
		t.Fatalf("yaml is not block style with JSON field order:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, `approved_by: ""`) {
		t.Fatalf("empty strings should stay strings:\n%s", r.stdout)
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		args     []string
		wantPath string // the request that must have been made
		wantErr  string
	}{
		// a name with an approved and a pending enrollment: approve picks the pending one
		{[]string{"approve", "vma-fra-01"}, "POST /api/v1/admin/vma/approve/0b9d3c4e-1111-4aaa-8bbb-000000000001", ""},
		// ... revoke picks the approved one
		{[]string{"revoke", "vma-fra-01"}, "DELETE /api/v1/admin/vma/revoke/7e6f5a4b-3333-4ccc-9ddd-000000000003", ""},
		{[]string{"approve", "0B9D3C4E-1111-4AAA-8BBB-000000000001"}, "POST /api/v1/admin/vma/approve/0b9d3c4e-1111-4aaa-8bbb-000000000001", ""},
		{[]string{"approve", "0b9d3c4e"}, "", "matches 2 enrollments"},
		{[]string{"approve", "0b9d3c4e-2"}, "POST /api/v1/admin/vma/approve/0b9d3c4e-2222-4aaa-8bbb-000000000002", ""},
		{[]string{"approve", "0b9d"}, "", "no enrollment has the id, id prefix or VMA name"},
		{[]string{"approve", "nobody"}, "", "no enrollment has the id"},
		{[]string{"approve", "vma-ber-03"}, "POST /api/v1/admin/vma/approve/9a8b7c6d-4444-4eee-afff-000000000004", "it is rejected"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			a, srv := startFake(t)
			r := runCmd(t, srv, "", false, tt.args...)
			if tt.wantErr != "" {
				if r.code != 1 || !strings.Contains(r.stderr, tt.wantErr) {
					t.Fatalf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, tt.wantErr)
				}
			} else {
				mustOK(t, r)
			}
			if tt.wantPath != "" && !strings.Contains(strings.Join(a.requests, "\n"), tt.wantPath) {
				t.Fatalf("requests %v do not include %q", a.requests, tt.wantPath)
			}
		})
	}

	// Ambiguity lists the candidates.
	a, srv := startFake(t)
	a.enrollments[2].Status = "awaiting_approval"
	r := runCmd(t, srv, "", false, "approve", "vma-fra-01")
	if r.code != 1 || !strings.Contains(r.stderr, "0b9d3c4e-1111-4aaa-8bbb-000000000001") || !strings.Contains(r.stderr, "7e6f5a4b-3333-4ccc-9ddd-000000000003") {
		t.Fatalf("ambiguous name: exit %d\n%s", r.code, r.stderr)
	}
}

func TestConfirm(t *testing.T) {
	// On a terminal a "no" changes nothing.
	a, srv := startFake(t)
	r := runCmd(t, srv, "n\n", true, "revoke", "vma-fra-01")
	if r.code != 1 || !strings.Contains(r.stderr, "[y/N]") || !strings.Contains(r.stderr, "cancelled") {
		t.Fatalf("revoke answered n: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, req := range a.requests {
		if strings.HasPrefix(req, "DELETE") {
			t.Fatalf("revoked although the answer was no: %v", a.requests)
		}
	}
	r = runCmd(t, srv, "yes\n", true, "revoke", "vma-fra-01")
	mustOK(t, r)
	// --yes does not ask; no terminal does not ask.
	_, srv = startFake(t)
	r = runCmd(t, srv, "", true, "reject", "vma-fra-01", "--yes")
	mustOK(t, r)
	if strings.Contains(r.stderr, "[y/N]") {
		t.Fatal("asked despite --yes")
	}
	_, srv = startFake(t)
	r = runCmd(t, srv, "", false, "reject", "vma-fra-01")
	mustOK(t, r)
}

func TestErrorsAndExitCodes(t *testing.T) {
	a, srv := startFake(t)
	a.chain = api.ChainReport{OK: false, Checked: 2, HeadID: 4, BreakID: 3, Reason: "mac mismatch"}
	r := runCmd(t, srv, "", false, "audit", "verify")
	if r.code != 1 || !strings.Contains(r.stdout, "BROKEN") || !strings.Contains(r.stdout, "#3") {
		t.Fatalf("broken chain: exit %d stdout %q", r.code, r.stdout)
	}
	r = runCmd(t, srv, "", false, "audit", "verify", "-o", "json")
	var rep api.ChainReport
	if r.code != 1 || json.Unmarshal([]byte(r.stdout), &rep) != nil || rep.BreakID != 3 {
		t.Fatalf("broken chain json: exit %d stdout %q", r.code, r.stdout)
	}

	r = runCmd(t, nil, "", false, "--server", srv.URL, "--token", "wrong", "pending")
	if r.code != 1 || !strings.Contains(r.stderr, "admin token was refused") || r.stdout != "" {
		t.Fatalf("bad token: exit %d stderr %q", r.code, r.stderr)
	}
	r = runCmd(t, nil, "", false, "--server", srv.URL, "--token-file", "/nonexistent/admin.token", "pending")
	if r.code != 1 || !strings.Contains(r.stderr, "/nonexistent/admin.token does not exist") {
		t.Fatalf("missing token file: exit %d stderr %q", r.code, r.stderr)
	}
	r = runCmd(t, nil, "", false, "--server", "http://127.0.0.1:1", "--token", "x", "pending")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach oma-server at http://127.0.0.1:1") {
		t.Fatalf("no server: exit %d stderr %q", r.code, r.stderr)
	}
	r = runCmd(t, srv, "", false, "approve", "7e6f5a4b-3333-4ccc-9ddd-000000000003")
	if r.code != 1 || !strings.Contains(r.stderr, "it is approved") {
		t.Fatalf("wrong state: exit %d stderr %q", r.code, r.stderr)
	}

	for _, args := range [][]string{
		{"approve"},
		{"approve", "a", "b"},
		{"pending", "-o", "xml"},
		{"pending", "--bogus"},
		{"nosuchcommand"},
		{"pairing-code", "--ttl", "25h"},
		{"audit", "--since", "yesterday"},
		{"audit", "--type", "nope"},
	} {
		r := runCmd(t, srv, "", false, args...)
		if r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage); stderr %q", args, r.code, r.stderr)
		}
	}
}

func TestHelpHasExamples(t *testing.T) {
	ios, _, _, _ := cmdutil.Test()
	root := NewRootCmd(NewFactory(ios))
	for _, c := range allCommands(root) {
		if c.Long == "" || c.Example == "" {
			t.Errorf("%q lacks Long or Example help", c.CommandPath())
		}
	}
}
