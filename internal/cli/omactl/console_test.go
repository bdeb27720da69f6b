package omactl

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/omatest"
)

// widest is the width of the widest line of s, in characters.
func widest(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		n = max(n, utf8.RuneCountInString(l))
	}
	return n
}

// TestTablesFitTheTerminal: without a terminal (and without COLUMNS)
// every table fits 80 columns; a wider terminal gets the long cells
// whole; -o wide cuts nothing.
func TestTablesFitTheTerminal(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	cmds := [][]string{
		{"pending"}, {"active"}, {"audit"}, {"list", "--status", "all"},
		{"get", "vma-fra-01"}, {"describe", "vma-ham-04"}, {"config", "view"},
	}
	for _, args := range cmds {
		r := runCmd(t, w.OMA, "", false, args...)
		mustOK(t, r)
		if n := widest(r.stdout); n > DefaultWidth {
			t.Errorf("omactl %s is %d columns wide, want at most %d:\n%s", strings.Join(args, " "), n, DefaultWidth, r.stdout)
		}
	}
	// At 200 columns, the audit's DETAILS are no longer cut.
	wideTerm := func(f *Factory) { f.Width = 200 }
	r := runWith(t, w.OMA, "", false, wideTerm, "audit")
	mustOK(t, r)
	if !strings.Contains(r.stdout, "first_connection=true remote_addr=192.0.2.44:50122 since_approval_seconds=0\n") || strings.Contains(r.stdout, "...") {
		t.Errorf("audit at 200 columns cut DETAILS:\n%s", r.stdout)
	}
	if n := widest(r.stdout); n > 200 || n <= DefaultWidth {
		t.Errorf("audit at 200 columns is %d wide", n)
	}
	// -o wide shows every column whole, at any width.
	r = runCmd(t, w.OMA, "", false, "pending", "-o", "wide")
	mustOK(t, r)
	for _, want := range []string{"VERSION", "VERIFIED", "SHA256:FW2CxeR/IFX9QXTfQe2A5DXBxCU7dDieRsbhRnp+I0Q"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("pending -o wide lacks %q:\n%s", want, r.stdout)
		}
	}
	// COLUMNS is honoured when stdout is no terminal.
	t.Run("COLUMNS", func(t *testing.T) {
		env := func(f *Factory) {
			f.Getenv = func(k string) string {
				if k == "COLUMNS" {
					return "120"
				}
				return ""
			}
		}
		r := runWith(t, w.OMA, "", false, env, "audit")
		if n := widest(r.stdout); n <= DefaultWidth || n > 120 {
			t.Errorf("audit with COLUMNS=120 is %d wide", n)
		}
	})
}

// TestOutputSpellings: vma-enroll's -o text is accepted as table, and an
// unknown format names the known ones.
func TestOutputSpellings(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	table := runCmd(t, w.OMA, "", false, "pending")
	text := runCmd(t, w.OMA, "", false, "pending", "-o", "text")
	mustOK(t, text)
	if text.stdout != table.stdout {
		t.Errorf("-o text differs from -o table:\n%s", text.stdout)
	}
	r := runCmd(t, w.OMA, "", false, "pending", "-o", "xml")
	if r.code != 2 || !strings.Contains(r.stderr, "table, wide, json, yaml, name") {
		t.Errorf("-o xml: exit %d, stderr %q", r.code, r.stderr)
	}
	// approve --notes is the old spelling of --note.
	r = runCmd(t, w.OMA, "", false, "approve", "--help")
	if strings.Contains(r.stdout, "--notes") || !strings.Contains(r.stdout, "--note ") {
		t.Errorf("approve --help shows --notes or lacks --note:\n%s", r.stdout)
	}
	var e api.Enrollment
	decodeStrict(t, runCmd(t, w.OMA, "", false, "approve", w.pending2, "--notes", "old spelling", "-o", "json").stdout, &e)
	if e.ApprovalNotes != "old spelling" || e.SourceIP != e.VMAIPAddress || e.SourceIP == "" {
		t.Errorf("approve --notes: %+v", e)
	}
	// Audit events name their actor "actor" too; connections their
	// client's address "source_ip".
	var evs []api.AuditEvent
	decodeStrict(t, runCmd(t, w.OMA, "", false, "audit", "--type", "approval", "-o", "json").stdout, &evs)
	if len(evs) == 0 || evs[0].Actor != "admin" || evs[0].ApprovedBy != "admin" {
		t.Errorf("approval events: %+v", evs)
	}
	var conns []api.Connection
	decodeStrict(t, runCmd(t, w.OMA, "", false, "active", "-o", "json").stdout, &conns)
	if len(conns) == 0 || conns[0].SourceIP != "203.0.113.7" || conns[0].RemoteAddr != "203.0.113.7:41022" {
		t.Errorf("connections: %+v", conns)
	}
}

// TestList finds enrollments in every status, revoked ones included.
func TestList(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	mustOK(t, runCmd(t, w.OMA, "", false, "revoke", "vma-ham-04", "--yes"))
	ids := func(args ...string) string {
		r := runCmd(t, w.OMA, "", false, append([]string{"list", "-o", "name"}, args...)...)
		mustOK(t, r)
		return strings.TrimSpace(r.stdout)
	}
	if got := ids("--status", "revoked"); got != w.ham {
		t.Errorf("--status revoked: %q, want %s", got, w.ham)
	}
	if got := ids("--name", "ham"); got != "" {
		t.Errorf("default statuses list the revoked vma-ham-04: %q", got)
	}
	if got := ids("--status", "rejected,revoked", "--sort", "name"); got != w.rejected+"\n"+w.ham {
		t.Errorf("--status rejected,revoked: %q", got)
	}
	if got := ids("--status", "all", "--name", "vma-*-0?", "--sort", "created"); len(strings.Fields(got)) != 4 {
		t.Errorf("--name with wildcards: %q", got)
	}
	if got := ids("--status", "pending", "-q"); got != w.pending1+"\n"+w.pending2 {
		t.Errorf("--status pending -q: %q", got)
	}
	for _, bad := range [][]string{{"--status", "gone"}, {"--sort", "size"}, {"--name", "[x"}} {
		if r := runCmd(t, w.OMA, "", false, append([]string{"list"}, bad...)...); r.code != 2 {
			t.Errorf("list %v: exit %d, want 2; stderr %q", bad, r.code, r.stderr)
		}
	}
	// get -o json is the list's item; describe adds the tunnel and events.
	var list []api.Enrollment
	decodeStrict(t, runCmd(t, w.OMA, "", false, "list", "--status", "revoked", "-o", "json").stdout, &list)
	var one api.Enrollment
	decodeStrict(t, runCmd(t, w.OMA, "", false, "get", w.ham[:8], "-o", "json").stdout, &one)
	a, _ := json.Marshal(list[0])
	b, _ := json.Marshal(one)
	if string(a) != string(b) {
		t.Errorf("get -o json differs from the list's item:\n%s\n%s", b, a)
	}
	var page enrollmentPage
	decodeStrict(t, runCmd(t, w.OMA, "", false, "describe", w.ham, "-o", "json").stdout, &page)
	if page.ID != w.ham || page.Connection != nil || len(page.Events) != 6 || page.Events[5].EventType != "revocation" {
		t.Errorf("describe -o json: %+v", page)
	}
	r := runCmd(t, w.OMA, "", false, "get", "nobody")
	if r.code != 1 || !strings.Contains(r.stderr, `no enrollment has the id, id prefix or VMA name "nobody"`) {
		t.Errorf("get nobody: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestDryRunAndIgnoreNotFound: --dry-run changes nothing; revoke
// --ignore-not-found is idempotent.
func TestDryRunAndIgnoreNotFound(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, args := range [][]string{
		{"approve", w.pending2, "--dry-run"},
		{"reject", w.pending2, "--dry-run"},
		{"revoke", "vma-fra-01", "--dry-run"},
	} {
		r := runCmd(t, w.OMA, "", false, args...)
		mustOK(t, r)
		if !strings.HasPrefix(r.stdout, "Would "+args[0]+" VMA ") {
			t.Errorf("%v: stdout %q", args, r.stdout)
		}
	}
	if w.status(t, w.pending2) != enroll.StatusAwaitingApproval || w.status(t, w.approved) != enroll.StatusApproved {
		t.Fatal("a dry run changed an enrollment")
	}
	if r := runCmd(t, w.OMA, "", false, "revoke", w.rejected, "--dry-run"); r.code != 1 || !strings.Contains(r.stderr, "is rejected, so revoke would fail") {
		t.Errorf("dry run of a revoke that would fail: exit %d, stderr %q", r.code, r.stderr)
	}

	// Not found: exit 0, nothing on stdout ([] with -o json).
	r := runCmd(t, w.OMA, "", false, "revoke", "nobody", "--yes", "--ignore-not-found")
	mustOK(t, r)
	if r.stdout != "" || !strings.Contains(r.stderr, "Nothing to revoke") {
		t.Errorf("revoke nobody --ignore-not-found: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	r = runCmd(t, w.OMA, "", false, "revoke", "nobody", "--yes", "--ignore-not-found", "-o", "json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("revoke nobody --ignore-not-found -o json: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := runCmd(t, w.OMA, "", false, "revoke", "nobody", "--yes"); r.code != 1 {
		t.Errorf("revoke nobody without --ignore-not-found: exit %d", r.code)
	}
	// Twice: the second finds it revoked and says so, exit 0.
	mustOK(t, runCmd(t, w.OMA, "", false, "revoke", w.ham, "--yes", "--ignore-not-found"))
	var e api.Enrollment
	r = runCmd(t, w.OMA, "", false, "revoke", w.ham, "--yes", "--ignore-not-found", "-o", "json")
	decodeStrict(t, r.stdout, &e)
	if r.code != 0 || e.Status != "revoked" || !strings.Contains(r.stderr, "is already revoked") {
		t.Errorf("second revoke: exit %d, status %s, stderr %q", r.code, e.Status, r.stderr)
	}
	if n := len(w.Events(enroll.EventRevocation)); n != 1 {
		t.Errorf("%d revocation events, want 1", n)
	}
}

// TestApproveWait: approve --wait waits for the VMA to enroll, approves
// it and, with the embedded tunnel, waits for its tunnel.
func TestApproveWait(t *testing.T) {
	t.Parallel()
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		oma := omatest.Start(t, omatest.Options{TunnelMode: "embedded"})
		run := startCmd(t, oma, false, "approve", "vma-auto", "--wait", "--interval", "100ms", "--note", "automation")
		run.waitErr(t, "Waiting for vma-auto to await approval")
		id := oma.Enroll("vma-auto")
		run.waitErr(t, "Waiting for its tunnel to connect")
		if e, err := oma.Svc.Get(context.Background(), id); err != nil || e.Status != enroll.StatusApproved {
			t.Fatalf("after the approval: %+v, %v", e, err)
		}
		if run.out.String() != "" {
			t.Fatalf("stdout before the tunnel is up: %q", run.out.String())
		}
		if err := oma.Svc.TunnelConnected(context.Background(), id, "192.0.2.9:4000", enroll.Meta{SourceIP: "192.0.2.9"}); err != nil {
			t.Fatal(err)
		}
		run.waitFor(t, "the approved enrollment", func(s string) bool { return strings.Contains(s, "Approved VMA vma-auto.") })
		if code := run.stop(); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, run.errOut.String())
		}
		if !strings.Contains(run.errOut.String(), "Tunnel of vma-auto is connected.") {
			t.Errorf("stderr:\n%s", run.errOut.String())
		}
	})
	t.Run("no tunnel to see", func(t *testing.T) {
		t.Parallel()
		oma := omatest.Start(t, omatest.Options{})
		id := oma.Enroll("vma-auto")
		var e api.Enrollment
		r := runReal(t, oma, "approve", "vma-auto", "--wait", "-o", "json")
		decodeStrict(t, r.stdout, &e)
		if r.code != 0 || e.ID != id || e.Status != "approved" || !strings.Contains(r.stderr, "cannot see the VMA's tunnel") {
			t.Fatalf("exit %d, %+v, stderr:\n%s", r.code, e, r.stderr)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		oma := omatest.Start(t, omatest.Options{})
		r := runReal(t, oma, "approve", "vma-never", "--wait", "--timeout", "300ms", "--interval", "100ms")
		if r.code != 1 || !strings.Contains(r.stderr, "timed out after 300ms waiting for vma-never to await approval") {
			t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
		}
	})
}

// TestAuthStatusAndConfigView names the server, the token's origin and
// its name, and never prints the token.
func TestAuthStatusAndConfigView(t *testing.T) {
	oma := omatest.Start(t, omatest.Options{})
	r := runReal(t, oma, "auth", "status")
	mustOK(t, r)
	for _, want := range []string{"Logged in to " + oma.AdminURL() + " as admin.", "Server:       " + oma.AdminURL() + " (from --server)", "Token:        from --token", "Token name:   admin"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("auth status lacks %q:\n%s", want, r.stdout)
		}
	}
	var st authStatus
	decodeStrict(t, runReal(t, oma, "auth", "status", "-o", "json").stdout, &st)
	if !st.OK || st.TokenName != "admin" || st.TokenSource != "--token" || st.ServerSource != "--server" {
		t.Errorf("auth status -o json: %+v", st)
	}
	r = runReal(t, oma, "--token", "wrong", "auth", "status")
	if r.code != 1 || !strings.Contains(r.stdout, "Not logged in to ") || !strings.Contains(r.stderr, "the admin token was refused") {
		t.Errorf("wrong token: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// The token file and where its name came from.
	dir := t.TempDir()
	writeFile(t, dir+"/admin.token", oma.Token+"\n")
	t.Run("env", func(t *testing.T) {
		t.Setenv("OMACTL_TOKEN_FILE", dir+"/admin.token")
		t.Setenv("OMACTL_SERVER", oma.AdminURL())
		ios, _, out, _ := cmdutil.Test()
		f := NewFactory(ios)
		f.ConfigFile = ""
		root := NewRootCmd(f)
		root.SetArgs([]string{"auth", "status", "-o", "json"})
		if code := cmdutil.Run(root, ios); code != 0 {
			t.Fatalf("exit %d", code)
		}
		var st authStatus
		decodeStrict(t, out.String(), &st)
		if st.TokenSource != "token file" || st.TokenFile != dir+"/admin.token" || st.TokenFileSource != "OMACTL_TOKEN_FILE" || st.ServerSource != "OMACTL_SERVER" || st.TokenName != "admin" {
			t.Errorf("%+v", st)
		}
	})
	r = runReal(t, oma, "config", "view")
	mustOK(t, r)
	if strings.Contains(r.stdout, oma.Token) || !strings.Contains(r.stdout, "(set, hidden)") || !strings.Contains(r.stdout, "output       table                            default") {
		t.Errorf("config view:\n%s", r.stdout)
	}
}

// TestCompleteFlags completes the values of -o, audit --type, --vma and
// --enrollment, list --status.
func TestCompleteFlags(t *testing.T) {
	t.Parallel()
	oma := omatest.Start(t, omatest.Options{})
	id := oma.Enroll("vma-one")
	complete := func(args ...string) string {
		t.Helper()
		ios, _, out, _ := cmdutil.Test()
		f := NewFactory(ios)
		f.ConfigFile = ""
		root := NewRootCmd(f)
		root.SetArgs(append([]string{"__complete", "--server", oma.AdminURL(), "--token", oma.Token}, args...))
		if code := cmdutil.Run(root, ios); code != 0 {
			t.Fatalf("exit %d", code)
		}
		var vals []string
		for _, l := range lines(out.String()) {
			if !strings.HasPrefix(l, ":") {
				v, _, _ := strings.Cut(l, "\t")
				vals = append(vals, v)
			}
		}
		return strings.Join(vals, " ")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"pending", "-o", ""}, "table wide json yaml name"},
		{[]string{"audit", "--type", ""}, eventTypeList()},
		{[]string{"audit", "--vma", "vma-"}, "vma-one"},
		{[]string{"audit", "--enrollment", id[:4]}, id},
		{[]string{"list", "--status", ""}, "pending approved revoked rejected expired all"},
		{[]string{"list", "--name", ""}, "vma-one"},
	} {
		if got := complete(c.args...); got != strings.ReplaceAll(c.want, ",", "") {
			t.Errorf("complete %v = %q, want %q", c.args, got, c.want)
		}
	}
}
