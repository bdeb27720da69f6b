package omactl

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/omatest"
)

func mustOK(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// uniquePrefix is the shortest prefix of id that no other of ids has.
func uniquePrefix(t *testing.T, id string, ids ...string) string {
	t.Helper()
	for n := MinIDPrefix; n <= len(id); n++ {
		unique := true
		for _, o := range ids {
			if o != id && strings.HasPrefix(o, id[:n]) {
				unique = false
			}
		}
		if unique {
			return id[:n]
		}
	}
	t.Fatalf("%s has no unique prefix among %v", id, ids)
	return ""
}

// TestOutput compares what each command prints, as a table for people and
// as JSON or YAML for scripts, with the golden files in testdata (go test
// -update rewrites them).
func TestOutput(t *testing.T) {
	tests := []struct {
		name    string
		changes bool // the command changes the world: it gets its own
		args    func(t *testing.T, w *world) []string
	}{
		{"pairing-code", true, func(*testing.T, *world) []string { return []string{"pairing-code", "--ttl", "10m"} }},
		{"pending", false, func(*testing.T, *world) []string { return []string{"pending"} }},
		{"active", false, func(*testing.T, *world) []string { return []string{"active"} }},
		{"audit", false, func(*testing.T, *world) []string { return []string{"audit"} }},
		{"audit-enrollment", false, func(*testing.T, *world) []string { return []string{"audit", "--enrollment", "vma-ber-03"} }},
		{"audit-verify", false, func(*testing.T, *world) []string { return []string{"audit", "verify"} }},
		{"approve", true, func(t *testing.T, w *world) []string {
			return []string{"approve", uniquePrefix(t, w.pending1, w.pending1, w.pending2), "--notes", "fingerprint checked"}
		}},
		{"reject", true, func(t *testing.T, w *world) []string {
			return []string{"reject", w.pending2, "--reason", "not ours", "--yes"}
		}},
		{"revoke", true, func(t *testing.T, w *world) []string {
			return []string{"revoke", w.approved[:MinIDPrefix], "--reason", "decommissioned", "--yes"}
		}},

		{"pairing-code.json", true, func(*testing.T, *world) []string {
			return []string{"pairing-code", "--note", "ticket 4712", "-o", "json"}
		}},
		{"pending.json", false, func(*testing.T, *world) []string { return []string{"pending", "-o", "json"} }},
		{"active.json", false, func(*testing.T, *world) []string { return []string{"active", "-o", "json"} }},
		{"audit.json", false, func(*testing.T, *world) []string { return []string{"audit", "--limit", "4", "-o", "json"} }},
		{"audit-verify.json", false, func(*testing.T, *world) []string { return []string{"audit", "verify", "-o", "json"} }},
		{"approve.yaml", true, func(*testing.T, *world) []string { return []string{"approve", "vma-fra-01", "-o", "yaml"} }},
		{"pending.yaml", false, func(*testing.T, *world) []string { return []string{"pending", "-o", "yaml"} }},
		{"revoke.json", true, func(*testing.T, *world) []string { return []string{"revoke", "vma-fra-01", "-o", "json", "--yes"} }},

		// -o wide: every column, nothing cut.
		{"pending.wide", false, func(*testing.T, *world) []string { return []string{"pending", "-o", "wide"} }},
		{"active.wide", false, func(*testing.T, *world) []string { return []string{"active", "-o", "wide"} }},
		{"audit.wide", false, func(*testing.T, *world) []string { return []string{"audit", "-o", "wide", "--limit", "6"} }},
		// list, get and describe.
		{"list", false, func(*testing.T, *world) []string { return []string{"list"} }},
		{"list-all", false, func(*testing.T, *world) []string { return []string{"list", "--status", "all", "--sort", "created"} }},
		{"list.wide", false, func(*testing.T, *world) []string { return []string{"list", "--status", "all", "-o", "wide"} }},
		{"list-name", false, func(*testing.T, *world) []string {
			return []string{"list", "--status", "all", "--name", "vma-fra-*", "-o", "name"}
		}},
		{"get", false, func(*testing.T, *world) []string { return []string{"get", "vma-fra-01"} }},
		{"get-ham", false, func(*testing.T, *world) []string { return []string{"describe", "vma-ham-04"} }},
		{"get.json", false, func(*testing.T, *world) []string { return []string{"get", "vma-ber-03", "-o", "json"} }},
		{"describe.json", false, func(*testing.T, *world) []string { return []string{"describe", "vma-ber-03", "-o", "json"} }},
		{"pending.template", false, func(*testing.T, *world) []string {
			return []string{"pending", "--template", `{{range .}}{{.vma_name}} {{.source_ip}} {{timeago .created_at}}{{"\n"}}{{end}}`}
		}},
		{"active.name", false, func(*testing.T, *world) []string { return []string{"active", "-q"} }},
		{"active-key-due", false, func(*testing.T, *world) []string { return []string{"active", "--key-status", "due,overdue"} }},
		{"get-fra.json", false, func(*testing.T, *world) []string { return []string{"get", "vma-fra-01", "-o", "json"} }},
		{"approve-dry-run", false, func(*testing.T, *world) []string { return []string{"approve", "vma-fra-01", "--dry-run"} }},
	}
	shared := newWorld(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := shared
			if tt.changes {
				w = newWorld(t)
			}
			r := runCmd(t, w.OMA, "", false, tt.args(t, w)...)
			mustOK(t, r)
			golden(t, tt.name, w.normalize(r.stdout))
			if strings.ContainsAny(r.stdout, "\x1b\u202e") {
				t.Errorf("terminal control characters reached stdout:\n%q", r.stdout)
			}
			if r.stderr != "" {
				t.Errorf("stderr: %q", r.stderr)
			}
		})
	}
}

// decodeStrict decodes the one JSON document on stdout into v, refusing
// fields v does not have.
func decodeStrict(t *testing.T, stdout string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not one %T: %v\n%s", v, err, stdout)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document on stdout:\n%s", stdout)
	}
}

func TestJSONOutput(t *testing.T) {
	t.Parallel()
	w := newWorld(t)

	var pending []api.Enrollment
	decodeStrict(t, runCmd(t, w.OMA, "", false, "pending", "-o", "json").stdout, &pending)
	if len(pending) != 2 || pending[0].ID != w.pending1 || pending[1].ID != w.pending2 || pending[0].Status != "awaiting_approval" {
		t.Fatalf("pending -o json = %+v, want %s and %s awaiting approval", pending, w.pending1, w.pending2)
	}
	if pending[1].VMAName != hostileName {
		t.Errorf("JSON carries the name %q, want it as stored (escaped by JSON)", pending[1].VMAName)
	}
	var active []api.Connection
	decodeStrict(t, runCmd(t, w.OMA, "", false, "active", "-o", "json").stdout, &active)
	if len(active) != 2 || active[0].EnrollmentID != w.approved || active[0].ConnectionStatus != "connected" || active[1].EnrollmentID != w.ham || active[1].ConnectionStatus != "disconnected" {
		t.Fatalf("active -o json = %+v", active)
	}
	var pc api.PairingCodeResponse
	decodeStrict(t, runCmd(t, w.OMA, "", false, "-o", "json", "pairing-code").stdout, &pc)
	if pc.PairingCode == "" || pc.OMAFingerprint != w.Fingerprint() || !strings.Contains(pc.JoinCommand, "--code "+pc.PairingCode) || !pc.ExpiresAt.Equal(now.Add(enroll.Defaults().CodeTTL)) {
		t.Fatalf("pairing-code -o json = %+v", pc)
	}

	// The audit comes back oldest first although it is fetched newest first.
	all := w.Events("")
	n := int64(len(all))
	var evs []api.AuditEvent
	decodeStrict(t, runCmd(t, w.OMA, "", false, "audit", "-o", "json").stdout, &evs)
	if int64(len(evs)) != n || evs[0].ID != 1 || evs[n-1].ID != n {
		t.Fatalf("audit -o json: %d events, ids %d..%d; want %d, 1..%d", len(evs), evs[0].ID, evs[len(evs)-1].ID, n, n)
	}
	evs = nil
	decodeStrict(t, runCmd(t, w.OMA, "", false, "audit", "-o", "json", "--limit", "3").stdout, &evs)
	if len(evs) != 3 || evs[0].ID != n-2 || evs[2].ID != n {
		t.Fatalf("audit --limit 3 = %+v, want the newest three (%d..%d)", evs, n-2, n)
	}

	// An empty list is [] in JSON, not null, and nothing on stdout in a table.
	empty := omatest.Start(t, omatest.Options{})
	r := runCmd(t, empty, "", false, "active", "-o", "json")
	if r.code != 0 || r.stdout != "[]\n" {
		t.Fatalf("empty active -o json: exit %d, stdout %q", r.code, r.stdout)
	}
	r = runCmd(t, empty, "", false, "active")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "No VMA is approved.") {
		t.Fatalf("empty active table: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCmd(t, empty, "", false, "pending", "-o", "yaml")
	if r.code != 0 || r.stdout != "[]\n" {
		t.Fatalf("empty pending -o yaml: exit %d, stdout %q", r.code, r.stdout)
	}
}

// TestAuditPages pages through the trail: the server returns at most
// AuditPage events per request (here 3 of 23), and omactl follows its
// cursor until it has what was asked for.
func TestAuditPages(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	n := int64(len(w.Events("")))
	if n < 20 {
		t.Fatalf("the world has only %d events", n)
	}
	for _, tt := range []struct {
		args []string
		want int64 // the newest want events
	}{
		{[]string{"--limit", "0"}, n},
		{nil, n}, // the default limit, 100
		{[]string{"--limit", "10"}, 10},
		{[]string{"--limit", "9"}, 9},
		{[]string{"--since", "2d", "--limit", "0"}, n - 10}, // events 11 and later are at most 26h old
	} {
		var evs []api.AuditEvent
		r := runWith(t, w.OMA, "", false, func(f *Factory) { f.AuditPage = 3 }, append([]string{"audit", "-o", "json"}, tt.args...)...)
		mustOK(t, r)
		decodeStrict(t, r.stdout, &evs)
		if int64(len(evs)) != tt.want {
			t.Fatalf("audit %v: %d events, want %d", tt.args, len(evs), tt.want)
		}
		for i, ev := range evs {
			if want := n - tt.want + 1 + int64(i); ev.ID != want {
				t.Fatalf("audit %v: event %d has id %d, want %d (oldest first, no gap, no repeat)", tt.args, i, ev.ID, want)
			}
		}
	}
}

func TestYAMLOutput(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := runCmd(t, w.OMA, "", false, "pending", "-o", "yaml")
	mustOK(t, r)
	var list []map[string]any
	if err := yaml.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, r.stdout)
	}
	if len(list) != 2 || list[0]["vma_name"] != "vma-fra-01" || list[0]["id"] != w.pending1 || list[1]["vma_name"] != hostileName {
		t.Fatalf("yaml = %v", list)
	}
	if !strings.HasPrefix(r.stdout, "- id: "+w.pending1+"\n  vma_name: vma-fra-01\n") {
		t.Fatalf("yaml is not block style with JSON field order:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, `approved_by: ""`) {
		t.Fatalf("empty strings should stay strings:\n%s", r.stdout)
	}
}

func TestResolve(t *testing.T) {
	type want struct {
		changes map[string]enroll.Status // the enrollments (world fields) that change, and to what
		err     string                   // or the error; then nothing changes
	}
	to := func(kv ...string) map[string]enroll.Status {
		m := map[string]enroll.Status{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = enroll.Status(kv[i+1])
		}
		return m
	}
	tests := []struct {
		name string
		args func(t *testing.T, w *world) []string
		want want
	}{
		// vma-fra-01 has an approved and a pending enrollment: approve
		// and reject pick the pending one, revoke the approved one.
		// Approving the new one revokes the old one (superseded).
		{"approve name picks the pending one", func(*testing.T, *world) []string { return []string{"approve", "vma-fra-01"} }, want{changes: to("pending1", "approved", "approved", "revoked")}},
		{"reject name picks the pending one", func(*testing.T, *world) []string { return []string{"reject", "vma-fra-01", "--yes"} }, want{changes: to("pending1", "rejected")}},
		{"revoke name picks the approved one", func(*testing.T, *world) []string { return []string{"revoke", "vma-fra-01", "--yes"} }, want{changes: to("approved", "revoked")}},
		{"approve full id in capitals", func(t *testing.T, w *world) []string { return []string{"approve", strings.ToUpper(w.pending2)} }, want{changes: to("pending2", "approved")}},
		{"revoke 8-character prefix", func(t *testing.T, w *world) []string { return []string{"revoke", w.ham[:MinIDPrefix], "--yes"} }, want{changes: to("ham", "revoked")}},
		{"approve unique longer prefix", func(t *testing.T, w *world) []string {
			return []string{"approve", uniquePrefix(t, w.pending2, w.pending1, w.pending2)}
		}, want{changes: to("pending2", "approved")}},
		{"approve ambiguous prefix", func(t *testing.T, w *world) []string { return []string{"approve", sharedPrefix} }, want{err: `id prefix "` + sharedPrefix + `" matches 2 enrollments`}},
		{"approve short prefix", func(*testing.T, *world) []string { return []string{"approve", sharedPrefix[:4]} }, want{err: `no enrollment has the id, id prefix or VMA name "0b9d"`}},
		{"approve unknown name", func(*testing.T, *world) []string { return []string{"approve", "nobody"} }, want{err: `no enrollment has the id, id prefix or VMA name "nobody"`}},
		{"approve rejected", func(*testing.T, *world) []string { return []string{"approve", "vma-ber-03"} }, want{err: "it is rejected"}},
		{"revoke rejected", func(*testing.T, *world) []string { return []string{"revoke", "vma-ber-03", "--yes"} }, want{err: "it is rejected"}},
	}
	// The cases that must change nothing share a world.
	shared := newWorld(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := shared
			if tt.want.err == "" {
				t.Parallel()
				w = newWorld(t)
			}
			before := map[string]enroll.Status{}
			for _, e := range w.Enrollments() {
				before[e.ID] = e.Status
			}
			r := runCmd(t, w.OMA, "", false, tt.args(t, w)...)
			if tt.want.err != "" {
				if r.code != 1 || !strings.Contains(r.stderr, tt.want.err) || r.stdout != "" {
					t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and %q", r.code, r.stdout, r.stderr, tt.want.err)
				}
			} else {
				mustOK(t, r)
				ids := map[string]string{"approved": w.approved, "ham": w.ham, "rejected": w.rejected, "pending1": w.pending1, "pending2": w.pending2}
				for field, st := range tt.want.changes {
					before[ids[field]] = st
				}
			}
			for _, e := range w.Enrollments() {
				if e.Status != before[e.ID] {
					t.Errorf("%s (%s) is %s, want %s", e.ID, e.VMAName, e.Status, before[e.ID])
				}
			}
		})
	}

	// An ambiguous id prefix or name lists the candidates.
	t.Run("candidates", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		r := runCmd(t, w.OMA, "", false, "reject", sharedPrefix, "--yes")
		if r.code != 1 || !strings.Contains(r.stderr, w.pending1+"  vma-fra-01") || !strings.Contains(r.stderr, w.pending2+"  vma-muc-02?[31m?") {
			t.Fatalf("ambiguous prefix: exit %d\n%s", r.code, r.stderr)
		}
		// A second VMA enrolling as vma-fra-01: two are pending under the name.
		other := w.StartEnroll(omatest.VMA{Name: "vma-fra-01", Key: vmaKey("vma-fra-01 other")}).Verify()
		r = runCmd(t, w.OMA, "", false, "approve", "vma-fra-01")
		want := fmt.Sprintf(`VMA name "vma-fra-01" matches 2 enrollments; give the enrollment id (or at least its first 8 characters):
  %s  vma-fra-01            awaiting_approval   created 2025-06-01 11:56:00 UTC (4m ago)
  %s  vma-fra-01            awaiting_approval   created 2025-06-01 12:00:00 UTC (just now)
`, w.pending1, other)
		if r.code != 1 || !strings.HasSuffix(r.stderr, want) {
			t.Fatalf("ambiguous name: exit %d, stderr:\n%s\nwant it to end with:\n%s", r.code, r.stderr, want)
		}
		if w.status(t, w.pending1) != enroll.StatusAwaitingApproval || w.status(t, other) != enroll.StatusAwaitingApproval {
			t.Fatal("an ambiguous name changed an enrollment")
		}
	})
}

func TestConfirm(t *testing.T) {
	t.Parallel()
	// On a terminal a "no" changes nothing.
	w := newWorld(t)
	r := runCmd(t, w.OMA, "n\n", true, "revoke", "vma-fra-01")
	question := "Revoke enrollment " + w.approved + " (vma-fra-01)? Its key stops working at once. [y/N] "
	if r.code != 1 || !strings.HasPrefix(r.stderr, question) || !strings.Contains(r.stderr, "cancelled: nothing was changed") || r.stdout != "" {
		t.Fatalf("revoke answered n: exit %d, stderr %q", r.code, r.stderr)
	}
	if st := w.status(t, w.approved); st != enroll.StatusApproved {
		t.Fatalf("revoked although the answer was no: %s", st)
	}
	if evs := w.Events(enroll.EventRevocation); len(evs) != 0 {
		t.Fatalf("a revocation was audited although the answer was no: %+v", evs)
	}
	// An empty answer (Enter) is no too.
	if r := runCmd(t, w.OMA, "\n", true, "reject", "vma-fra-01"); r.code != 1 || w.status(t, w.pending1) != enroll.StatusAwaitingApproval {
		t.Fatalf("reject answered with Enter: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCmd(t, w.OMA, "yes\n", true, "revoke", "vma-fra-01")
	mustOK(t, r)
	if st := w.status(t, w.approved); st != enroll.StatusRevoked {
		t.Fatalf("answered yes, status %s", st)
	}

	// --yes does not ask; without a terminal --yes is required (exit 2,
	// nothing changed), as gh does.
	r = runCmd(t, w.OMA, "", true, "reject", "vma-fra-01", "--yes")
	mustOK(t, r)
	if strings.Contains(r.stderr, "[y/N]") || w.status(t, w.pending1) != enroll.StatusRejected {
		t.Fatalf("reject --yes on a terminal: stderr %q, status %s", r.stderr, w.status(t, w.pending1))
	}
	for _, verb := range []string{"reject", "revoke"} {
		r = runCmd(t, w.OMA, "y\n", false, verb, w.pending2)
		if r.code != 2 || !strings.Contains(r.stderr, verb+" needs --yes when there is no terminal") || r.stdout != "" {
			t.Fatalf("%s without a terminal or --yes: exit %d, stderr %q", verb, r.code, r.stderr)
		}
	}
	if w.status(t, w.pending2) != enroll.StatusAwaitingApproval {
		t.Fatalf("reject without --yes and terminal changed the enrollment: %s", w.status(t, w.pending2))
	}
	r = runCmd(t, w.OMA, "", false, "reject", w.pending2, "--yes")
	mustOK(t, r)
	if strings.Contains(r.stderr, "[y/N]") || w.status(t, w.pending2) != enroll.StatusRejected {
		t.Fatalf("reject --yes without a terminal: stderr %q, status %s", r.stderr, w.status(t, w.pending2))
	}
	// approve is not destructive: it does not ask.
	other := w.StartEnroll(omatest.VMA{Name: "vma-new"}).Verify()
	r = runCmd(t, w.OMA, "", true, "approve", "vma-new")
	mustOK(t, r)
	if strings.Contains(r.stderr, "[y/N]") || w.status(t, other) != enroll.StatusApproved {
		t.Fatalf("approve on a terminal: stderr %q, status %s", r.stderr, w.status(t, other))
	}
}

func TestErrorsAndExitCodes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)

	// Someone with write access to the database edits event #3.
	if w.Exec("UPDATE vma_connection_audit SET source_ip = '10.6.6.6' WHERE id = 3") != 1 {
		t.Fatal("the edit changed nothing")
	}
	r := runCmd(t, w.OMA, "", false, "audit", "verify")
	if r.code != 1 || !strings.HasPrefix(r.stdout, "BROKEN: the audit chain breaks at event #3: ") || !strings.Contains(r.stderr, "audit chain broken at event #3") {
		t.Fatalf("broken chain: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCmd(t, w.OMA, "", false, "audit", "verify", "-o", "json")
	var rep api.ChainReport
	if r.code != 1 {
		t.Fatalf("broken chain json: exit %d", r.code)
	}
	decodeStrict(t, r.stdout, &rep)
	if rep.OK || rep.BreakID != 3 || rep.Reason == "" {
		t.Fatalf("broken chain json = %+v", rep)
	}

	// A refused token, a missing token file, no server.
	r = runCmd(t, nil, "", false, "--server", w.AdminURL(), "--token", "oat_wrong", "pending")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "the admin token was refused (") || !strings.Contains(r.stderr, "check --token (or OMACTL_TOKEN)") {
		t.Fatalf("bad token: exit %d stderr %q", r.code, r.stderr)
	}
	tokenFile := t.TempDir() + "/admin.token"
	writeFile(t, tokenFile, "oat_wrong\n")
	r = runCmd(t, nil, "", false, "--server", w.AdminURL(), "--token-file", tokenFile, "approve", "vma-fra-01")
	if r.code != 1 || !strings.Contains(r.stderr, "the admin token was refused") || !strings.Contains(r.stderr, "check --token-file "+tokenFile) || w.status(t, w.pending1) != enroll.StatusAwaitingApproval {
		t.Fatalf("bad token file: exit %d stderr %q", r.code, r.stderr)
	}
	r = runCmd(t, nil, "", false, "--server", w.AdminURL(), "--token-file", "/nonexistent/admin.token", "pending")
	if r.code != 1 || !strings.Contains(r.stderr, "/nonexistent/admin.token does not exist") {
		t.Fatalf("missing token file: exit %d stderr %q", r.code, r.stderr)
	}

	// 404: a well-formed id the server does not know.
	r = runCmd(t, w.OMA, "", false, "approve", "00000000-0000-4000-8000-000000000000")
	if r.code != 1 || !strings.Contains(r.stderr, "no enrollment with id 00000000-0000-4000-8000-000000000000 (see 'omactl pending' and 'omactl active')") {
		t.Fatalf("unknown id: exit %d stderr %q", r.code, r.stderr)
	}
	// 409: the enrollment is not in the state the verb needs.
	for _, args := range [][]string{
		{"approve", w.approved},
		{"reject", w.approved, "--yes"},
		{"revoke", w.pending1, "--yes"},
	} {
		r = runCmd(t, w.OMA, "", false, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "cannot "+args[0]+" enrollment ") {
			t.Errorf("%v: exit %d stderr %q", args, r.code, r.stderr)
		}
	}
	if r = runCmd(t, w.OMA, "", false, "approve", w.approved); !strings.Contains(r.stderr, "it is approved") {
		t.Errorf("approve of an approved enrollment: %q", r.stderr)
	}

	for _, args := range [][]string{
		{"approve"},
		{"approve", "a", "b"},
		{"approve", " "},
		{"pending", "-o", "xml"},
		{"pending", "--bogus"},
		{"nosuchcommand"},
		{"pairing-code", "--ttl", "169h"}, // 25h is the server's to refuse (its max-code-ttl)
		{"pairing-code", "--uses", "0"},
		{"pairing-code", "--label", "bad key=x"},
		{"pending", "-l", "site in (fra"},
		{"approve", "-l", "site=fra", "x"},
		{"audit", "--since", "yesterday"},
		{"audit", "--type", "nope"},
		{"audit", "--limit", "-1"},
	} {
		r := runCmd(t, w.OMA, "", false, args...)
		if r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage); stderr %q", args, r.code, r.stderr)
		}
	}

	// The server is down.
	w.Stop()
	r = runCmd(t, w.OMA, "", false, "pending")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "cannot reach oma-server at "+w.AdminURL()) {
		t.Fatalf("no server: exit %d stderr %q", r.code, r.stderr)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
