package hardening_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

// hostile is text a compromised database or an old bug could hold: ANSI
// colour and cursor movement, an OSC window-title change ended by BEL, a
// clear-screen, a C1 CSI, a bidi override and a bare carriage return.
const hostile = "ev\x1b[31mil\x1b]0;pwned\x07\x1b[2J\x1b[1A\u009b5m\u202eeman\r"

// unsafeRunes finds what can act on a terminal in out: C0 and C1 control
// characters but newline, DEL, bidi controls and bytes that are not UTF-8
// (which 8-bit terminals read as C1 controls).
func unsafeRunes(out string) []string {
	var bad []string
	if !utf8.ValidString(out) {
		bad = append(bad, "invalid UTF-8")
	}
	for _, r := range out {
		switch {
		case r == '\n':
		case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f, unicode.Is(unicode.Bidi_Control, r):
			bad = append(bad, fmt.Sprintf("%U", r))
		}
	}
	return bad
}

// TestStoredNamesRenderSafely puts hostile text straight into the database
// (past every input check) and runs the real omactl against it: no escape
// sequence or other control character reaches the admin's terminal, in
// any table, detail view or structured output.
func TestStoredNamesRenderSafely(t *testing.T) {
	t.Parallel()
	e := startEnv(t, envOpts{})
	now := time.Now().UTC()
	ts := func(d time.Duration) string { return now.Add(d).Format("2006-01-02 15:04:05.000000") }
	const pendingID = "11111111-1111-4111-8111-111111111111"
	const approvedID = "22222222-2222-4222-8222-222222222222"
	insert := `INSERT INTO vma_enrollments (id, pairing_code_hash, vma_public_key, vma_name, vma_version,
		vma_fingerprint, vma_ip_address, vma_user_agent, status, approved_by, approval_notes, tunnel_port,
		verified_at, approved_at, expires_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	mustExec(t, e.raw, insert, pendingID, strings.Repeat("a", 64), "ssh-ed25519 AAAA", hostile, "1.0"+hostile,
		"SHA256:"+hostile, "10.0.0.1"+hostile, hostile, "awaiting_approval", "", "", nil,
		ts(-time.Minute), nil, ts(time.Hour), ts(-2*time.Minute), ts(-time.Minute))
	// The approved VMA holds another key (approving the pending one would
	// otherwise supersede it: one key, one approved VMA).
	mustExec(t, e.raw, insert, approvedID, strings.Repeat("b", 64), "ssh-ed25519 BBBB", "b"+hostile, "2.0"+hostile,
		"SHA256:b"+hostile, "10.0.0.2"+hostile, hostile, "approved", "admin"+hostile, "notes"+hostile, 9500,
		ts(-time.Hour), ts(-time.Hour), nil, ts(-2*time.Hour), ts(-time.Hour))
	mustExec(t, e.raw, `INSERT INTO vma_active_connections (id, enrollment_id, vma_name, vma_fingerprint, ssh_user,
		connection_status, tunnel_port, remote_addr, last_seen_at, connected_at, revoked_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		"33333333-3333-4333-8333-333333333333", approvedID, hostile, hostile, "vma"+hostile, "connected"+hostile, 9500,
		"192.0.2.1:2222"+hostile, ts(-time.Second), ts(-time.Minute), "", ts(-time.Hour), ts(-time.Second))
	var head int64
	if err := e.raw.QueryRow("SELECT last_id FROM vma_audit_head WHERE id = 1").Scan(&head); err != nil {
		t.Fatal(err)
	}
	mustExec(t, e.raw, `INSERT INTO vma_connection_audit (id, enrollment_id, event_type, vma_name, vma_fingerprint,
		source_ip, user_agent, approved_by, event_details, created_at, prev_mac, mac)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		head+1, pendingID, "enrollment"+hostile, hostile, hostile, "10.0.0.1"+hostile, hostile, "admin"+hostile,
		`{"reason":"\u001b[31mred\u0007","\u001b]0;key\u0007":"v","nested":{"x":"\u009b2J\u202e"}}`,
		ts(-time.Minute), "", strings.Repeat("c", 64))
	mustExec(t, e.raw, "UPDATE vma_audit_head SET last_id = ?, last_mac = ? WHERE id = 1", head+1, strings.Repeat("c", 64))

	run := func(args ...string) result {
		r := omactl(t, e.admin, e.token, args...)
		if r.code != 0 {
			t.Fatalf("omactl %v: %s", args, r)
		}
		return r
	}
	outputs := map[string]result{}
	for _, args := range [][]string{
		{"pending"}, {"active"}, {"audit"}, {"audit", "--vma", hostile},
		{"pending", "-o", "json"}, {"active", "-o", "yaml"}, {"audit", "-o", "json"}, {"audit", "-o", "yaml"},
	} {
		outputs[strings.Join(args, " ")] = run(args...)
	}
	// Detail views: approving and revoking print the enrollment.
	outputs["approve"] = run("approve", pendingID, "--notes", "ok")
	outputs["revoke"] = run("revoke", approvedID, "--yes", "--reason", "done")
	outputs["audit after"] = run("audit", "--limit", "0")

	for name, r := range outputs {
		if bad := unsafeRunes(r.stdout + r.stderr); len(bad) > 0 {
			t.Errorf("omactl %s shows terminal control characters %v:\n%q", name, bad, r.stdout+r.stderr)
		}
	}
	// The rows were shown, defused, not dropped.
	if !strings.Contains(outputs["pending"].stdout, "ev?[31mil") || !strings.Contains(outputs["active"].stdout, "9500") {
		t.Errorf("the hostile rows are not shown:\npending:\n%s\nactive:\n%s", outputs["pending"].stdout, outputs["active"].stdout)
	}
	// Escaped, not mangled: the structured outputs decode to the stored text.
	var pend []api.Enrollment
	if err := json.Unmarshal([]byte(outputs["pending -o json"].stdout), &pend); err != nil || len(pend) != 1 || pend[0].VMAName != hostile {
		t.Errorf("omactl pending -o json does not decode to the stored name: %v %+v", err, pend)
	}
	var act []map[string]any
	if err := yaml.Unmarshal([]byte(outputs["active -o yaml"].stdout), &act); err != nil || len(act) != 1 || act[0]["vma_name"] != "b"+hostile {
		t.Errorf("omactl active -o yaml does not decode to the stored name: %v %q", err, act)
	}
	t.Logf("omactl pending:\n%s", outputs["pending"].stdout)
}
