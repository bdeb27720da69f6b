package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // test only: to dump the server's database

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

func jsonDecode(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// Fleet tests (issue 17, docs/fleet.md): multi-use codes, labels,
// selectors, pre-approval and bulk decisions, with the real binaries.

// fleetCode makes a pairing code with omactl and the given flags.
func (s *server) fleetCode(flags ...string) api.PairingCodeResponse {
	s.t.Helper()
	var pc api.PairingCodeResponse
	s.omactlJSON(&pc, append([]string{"pairing-code"}, flags...)...)
	if pc.PairingCode == "" || pc.ID == "" {
		s.t.Fatalf("pairing-code answer %+v", pc)
	}
	return pc
}

// second starts another oma-server on s's MariaDB database, with s's
// audit key, admin token, TLS certificate and embedded SSH host key: a
// second instance behind a load balancer.
func (s *server) second() *server {
	t := s.t
	t.Helper()
	dataDir := t.TempDir()
	tok, err := os.ReadFile(s.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "admin.token"), tok, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"} {
		if hk, err := os.ReadFile(filepath.Join(s.dataDir, f)); err == nil {
			if err := os.WriteFile(filepath.Join(dataDir, f), hk, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	args := append([]string{"--audit-key-file", filepath.Join(s.dataDir, "audit.key"),
		"--tls-cert", filepath.Join(s.dataDir, "tls.crt"), "--tls-key", filepath.Join(s.dataDir, "tls.key")}, s.Opts.Args...)
	ts := testbin.StartServer(t, testbin.ServerOptions{Binary: bin("oma-server"), Driver: s.backend.name, DSN: s.dsn,
		DataDir: dataDir, Args: args})
	return &server{Server: ts, t: t, backend: s.backend, dataDir: dataDir, dsn: s.dsn,
		admin: ts.Admin, adminTLS: ts.AdminTLS, public: ts.Public, tokenFile: ts.Opts.TokenFile, log: ts.Log}
}

// dump returns every row of every table of the server's database, sorted:
// two dumps are equal when nothing changed.
func (s *server) dump() string {
	s.t.Helper()
	q := "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
	if s.backend.name == "mysql" {
		q = "SHOW TABLES"
	}
	db := s.openDB()
	defer db.Close()
	rows, err := db.Query(q)
	if err != nil {
		s.t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			s.t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	sort.Strings(tables)
	var b strings.Builder
	for _, tb := range tables {
		rows, err := db.Query("SELECT * FROM " + tb) // names from the catalogue
		if err != nil {
			s.t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				s.t.Fatal(err)
			}
			parts := make([]string, len(cols))
			for i, v := range vals {
				parts[i] = cols[i] + "=" + string(v)
			}
			lines = append(lines, strings.Join(parts, " "))
		}
		rows.Close()
		sort.Strings(lines)
		fmt.Fprintf(&b, "== %s (%d rows)\n%s\n", tb, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

func labelsOf(e api.Enrollment) string {
	return fmt.Sprintf("%v %v", e.Labels, e.VMALabels)
}

// TestFleetCodeAcrossInstances: a pre-approved code of N uses, used by N+1
// vma-enroll processes at once through two oma-server instances on one
// MariaDB database: exactly N are approved (each with the code's labels
// and its own), one is refused with exit 5.
func TestFleetCodeAcrossInstances(t *testing.T) {
	const uses = 4
	a := startServer(t, backend{"mysql"})
	b := a.second()
	pc := a.fleetCode("--uses", fmt.Sprint(uses), "--ttl", "30m", "--label", "site=fra", "--auto-approve", "--from", "127.0.0.0/8")
	var wg sync.WaitGroup
	results := make([]res, uses+1)
	for i := range uses + 1 {
		srv := []*server{a, b}[i%2]
		v := startVMA(t, filepath.Join(t.TempDir(), "vma"), srv.enrollArgs(pc, fmt.Sprintf("vma-fleet-%02d", i), "--label", fmt.Sprintf("rack=r%d", i), "--timeout", "90s")...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = v.wait(150 * time.Second)
		}()
	}
	wg.Wait()
	ok, refused := 0, 0
	for i, r := range results {
		switch r.code {
		case 0:
			ok++
		case 5:
			refused++
		default:
			t.Errorf("vma %d: %s", i, r)
		}
	}
	if ok != uses || refused != 1 {
		t.Fatalf("%d vma-enroll with a code of %d uses over two instances: %d approved, %d refused; want exactly %d and 1", uses+1, uses, ok, refused, uses)
	}
	var list []api.Enrollment
	b.omactlJSON(&list, "list", "--status", "approved", "-l", "site=fra")
	if len(list) != uses {
		t.Fatalf("list -l site=fra: %d, want %d", len(list), uses)
	}
	for _, e := range list {
		if e.Labels["site"] != "fra" || !strings.HasPrefix(e.VMALabels["rack"], "r") || e.ApprovedBy != "code:"+pc.ID {
			t.Errorf("%s: labels %s approved by %q", e.VMAName, labelsOf(e), e.ApprovedBy)
		}
	}
	var codes []api.PairingCodeInfo
	a.omactlJSON(&codes, "pairing-code", "list", "--all")
	if len(codes) != 1 || codes[0].UsesLeft != 0 || codes[0].UsesTaken != uses || !codes[0].AutoApprove {
		t.Errorf("pairing-code list: %+v", codes)
	}
}

// TestFleetSelectorsBulkAndRevoke: labels from code and VMA, selectors, a
// revoked code refusing further uses, --dry-run changing nothing (database
// dump compared) and a bulk approve where one item is in the wrong state
// (409 for it, the others approved).
func TestFleetSelectorsBulkAndRevoke(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startServer(t, b)
		fra := s.fleetCode("--uses", "3", "--label", "site=fra")
		muc := s.fleetCode("--label", "site=muc")
		vmas := map[string]*vma{}
		start := func(pc api.PairingCodeResponse, name string, extra ...string) {
			vmas[name] = startVMA(t, filepath.Join(t.TempDir(), name), s.enrollArgs(pc, name, append(extra, "--timeout", "120s")...)...)
		}
		start(fra, "vma-fra-1", "--label", "rack=a1")
		start(fra, "vma-fra-2")
		start(muc, "vma-muc-1")
		for _, n := range []string{"vma-fra-1", "vma-fra-2", "vma-muc-1"} {
			s.waitPending(n)
		}

		// Revoke the fra code: its third use is refused (exit 5).
		if r := s.omactl("pairing-code", "revoke", fra.ID[:8]); r.code != 0 || !strings.Contains(r.stdout, "Revoked pairing code") {
			t.Fatalf("pairing-code revoke: %s", r)
		}
		late := startVMA(t, filepath.Join(t.TempDir(), "late"), s.enrollArgs(fra, "vma-fra-3", "--timeout", "30s")...)
		if r := late.wait(60 * time.Second); r.code != 5 {
			t.Errorf("enroll with a revoked code: %s, want exit 5", r)
		}

		// Selectors.
		sel := func(selector string) []string {
			var list []api.Enrollment
			s.omactlJSON(&list, "pending", "-l", selector)
			var names []string
			for _, e := range list {
				names = append(names, e.VMAName)
			}
			sort.Strings(names)
			return names
		}
		for selector, want := range map[string]string{
			"site=fra":          "vma-fra-1 vma-fra-2",
			"site!=fra":         "vma-muc-1",
			"site in (fra,muc)": "vma-fra-1 vma-fra-2 vma-muc-1",
			"rack=a1":           "vma-fra-1",
			"site=fra,!rack":    "vma-fra-2",
		} {
			if got := strings.Join(sel(selector), " "); got != want {
				t.Errorf("pending -l %q = %q, want %q", selector, got, want)
			}
		}
		if r := s.omactl("pending", "-l", "site in (fra"); r.code != 2 {
			t.Errorf("malformed selector: %s, want exit 2", r)
		}
		var one api.Enrollment
		for _, e := range func() []api.Enrollment {
			var l []api.Enrollment
			s.omactlJSON(&l, "pending", "-l", "rack=a1")
			return l
		}() {
			one = e
		}
		if one.Labels["site"] != "fra" || one.VMALabels["rack"] != "a1" || one.PairingCodeID != fra.ID {
			t.Errorf("labels of vma-fra-1: %s code %s", labelsOf(one), one.PairingCodeID)
		}
		if r := s.omactl("get", "vma-fra-1"); !strings.Contains(r.stdout, "site=fra") || !strings.Contains(r.stdout, "rack=a1") {
			t.Errorf("get shows no labels: %s", r)
		}

		// --dry-run changes nothing.
		before := s.dump()
		if r := s.omactl("approve", "-l", "site=fra", "--dry-run"); r.code != 0 || !strings.Contains(r.stdout, "vma-fra-1") {
			t.Errorf("approve -l --dry-run: %s", r)
		}
		if r := s.omactl("reject", "vma-fra-1", "vma-muc-1", "--dry-run"); r.code != 0 {
			t.Errorf("reject several --dry-run: %s", r)
		}
		if after := s.dump(); after != before {
			t.Errorf("--dry-run changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		// On a terminal it lists what will change and asks once; "n"
		// changes nothing.
		out, code := onTerminalInput(t, 80, 24, "n\n", bin("omactl"), "--server", s.adminURL(), "--token-file", s.tokenFile, "approve", "-l", "site=fra")
		if code != 1 || !strings.Contains(out, "This will approve 2 VMA(s)") || !strings.Contains(out, "vma-fra-1") ||
			!strings.Contains(out, "vma-fra-2") || !strings.Contains(out, "[y/N]") || !strings.Contains(out, "cancelled") {
			t.Errorf("approve -l on a terminal, answered n: exit %d\n%s", code, out)
		}
		if after := s.dump(); after != before {
			t.Errorf("a cancelled bulk approve changed the database")
		}
		// Several without a terminal need --yes.
		if r := s.omactl("approve", "vma-fra-1", "vma-fra-2"); r.code != 2 || !strings.Contains(r.stderr, "--yes") {
			t.Errorf("approve of several without --yes: %s, want exit 2", r)
		}

		// One item in the wrong state: the others are approved, it is 409.
		if r := s.omactl("reject", "vma-muc-1", "--yes", "--reason", "wrong site"); r.code != 0 {
			t.Fatalf("reject: %s", r)
		}
		r := s.omactl("approve", "vma-fra-1", "vma-fra-2", "vma-muc-1", "--yes", "-o", "json")
		if r.code != 1 {
			t.Errorf("bulk approve with a rejected item: exit %d, want 1\n%s", r.code, r)
		}
		var br api.BulkResponse
		if err := jsonDecode(r.stdout, &br); err != nil {
			t.Fatalf("bulk approve -o json: %v\n%s", err, r)
		}
		if br.Succeeded != 2 || br.Failed != 1 || len(br.Results) != 3 {
			t.Fatalf("bulk results: %+v", br)
		}
		for _, it := range br.Results {
			switch it.VMAName {
			case "vma-muc-1":
				if it.OK || it.HTTPStatus != 409 || it.Error == nil || it.Error.Code != "wrong_state" {
					t.Errorf("rejected item: %+v, want 409 wrong_state", it)
				}
			default:
				if !it.OK || it.Status != "approved" {
					t.Errorf("item %s: %+v", it.VMAName, it)
				}
			}
		}
		for name, want := range map[string]int{"vma-fra-1": 0, "vma-fra-2": 0, "vma-muc-1": 3} {
			if r := vmas[name].wait(60 * time.Second); r.code != want {
				t.Errorf("%s: %s, want exit %d", name, r, want)
			}
		}
		// Revoke by selector.
		if r := s.omactl("revoke", "-l", "site=fra", "--yes"); r.code != 0 || !strings.Contains(r.stdout, "Revoked 2 of 2") {
			t.Errorf("revoke -l site=fra: %s", r)
		}
	})
}

// TestFleetPreApprovalCIDR: a pre-approved code approves a VMA inside its
// --from CIDR without an admin (actor code:<id>); outside it the VMA waits
// for an admin.
func TestFleetPreApprovalCIDR(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startServer(t, b)
		inside := s.fleetCode("--uses", "2", "--auto-approve", "--from", "127.0.0.0/8", "--label", "site=lab")
		r := startVMA(t, filepath.Join(t.TempDir(), "in"), s.enrollArgs(inside, "vma-in", "--timeout", "60s")...).wait(90 * time.Second)
		if r.code != 0 || r.result(t).Status != "approved" {
			t.Fatalf("inside the CIDR: %s, want approved without an admin", r)
		}
		var list []api.Enrollment
		s.omactlJSON(&list, "list", "--status", "approved", "-l", "site=lab")
		if len(list) != 1 || list[0].ApprovedBy != "code:"+inside.ID {
			t.Errorf("approved list: %+v", list)
		}
		outside := s.fleetCode("--auto-approve", "--from", "10.99.0.0/16")
		v := startVMA(t, filepath.Join(t.TempDir(), "out"), s.enrollArgs(outside, "vma-out", "--timeout", "60s")...)
		e := s.waitPending("vma-out")
		if e.Status != "awaiting_approval" {
			t.Errorf("outside the CIDR: %+v", e)
		}
		if r := s.omactl("pairing-code", "list"); r.code != 0 || !strings.Contains(r.stdout, "AUTO") {
			t.Errorf("pairing-code list does not mark pre-approved codes: %s", r)
		}
		if r := s.omactl("reject", "--all-pending", "--yes", "--reason", "not from the lab"); r.code != 0 || !strings.Contains(r.stdout, "Rejected 1 of 1") {
			t.Fatalf("reject --all-pending: %s", r)
		}
		if r := v.wait(60 * time.Second); r.code != 3 {
			t.Errorf("vma-out: %s, want exit 3 (rejected)", r)
		}
	})
}
