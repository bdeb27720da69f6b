package omactl

import (
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// now is the fixed clock of the tests.
var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func at(d time.Duration) time.Time { return now.Add(d) }

// fakeAPI is an in-memory admin listener answering like oma-server.
type fakeAPI struct {
	mu          sync.Mutex
	enrollments []api.Enrollment
	connections []api.Connection
	events      []api.AuditEvent
	chain       api.ChainReport
	requests    []string
	token       string
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{
		token: "admintok",
		enrollments: []api.Enrollment{
			{ID: "0b9d3c4e-1111-4aaa-8bbb-000000000001", VMAName: "vma-fra-01", VMAVersion: "2.4.1", VMAFingerprint: "SHA256:q0vZ0pYkS6ZJ2d2g1b2u0Yl8cYl0x9wX0l8c4m3s7dA", VMAIPAddress: "203.0.113.7", Status: "awaiting_approval", VerifiedAt: ptr(at(-3 * time.Minute)), ExpiresAt: ptr(at(27 * time.Minute)), CreatedAt: at(-4 * time.Minute), UpdatedAt: at(-3 * time.Minute)},
			{ID: "0b9d3c4e-2222-4aaa-8bbb-000000000002", VMAName: "vma-muc-02\x1b[31m", VMAVersion: "2.4.0", VMAFingerprint: "SHA256:Zk3nQ4p8mU1tY7cR2eW9aS5dF6gH0jK1lZ2xC3vB4nM", VMAIPAddress: "198.51.100.23", Status: "awaiting_approval", VerifiedAt: ptr(at(-50 * time.Second)), ExpiresAt: ptr(at(29 * time.Minute)), CreatedAt: at(-time.Minute), UpdatedAt: at(-50 * time.Second)},
			{ID: "7e6f5a4b-3333-4ccc-9ddd-000000000003", VMAName: "vma-fra-01", VMAVersion: "2.3.9", VMAFingerprint: "SHA256:oldoldoldoldoldoldoldoldoldoldoldoldoldold0", VMAIPAddress: "203.0.113.7", Status: "approved", ApprovedBy: "admin", ApprovedAt: ptr(at(-72 * time.Hour)), TunnelPort: ptr(9081), CreatedAt: at(-73 * time.Hour), UpdatedAt: at(-72 * time.Hour)},
			{ID: "9a8b7c6d-4444-4eee-afff-000000000004", VMAName: "vma-ber-03", VMAVersion: "2.4.1", VMAFingerprint: "SHA256:ber3ber3ber3ber3ber3ber3ber3ber3ber3ber3ber", VMAIPAddress: "192.0.2.10", Status: "rejected", RejectedBy: "admin", RejectionReason: "unknown site", CreatedAt: at(-26 * time.Hour), UpdatedAt: at(-25 * time.Hour)},
		},
		connections: []api.Connection{
			{EnrollmentID: "7e6f5a4b-3333-4ccc-9ddd-000000000003", VMAName: "vma-fra-01", VMAFingerprint: "SHA256:oldoldoldoldoldoldoldoldoldoldoldoldoldold0", SSHUser: "vma_tunnel", ConnectionStatus: "connected", TunnelPort: ptr(9081), LastSeenAt: ptr(at(-10 * time.Second)), ConnectedAt: ptr(at(-5 * time.Hour))},
			{EnrollmentID: "5c5c5c5c-5555-4555-8555-000000000005", VMAName: "vma-ham-04", VMAFingerprint: "SHA256:hamhamhamhamhamhamhamhamhamhamhamhamhamham0", SSHUser: "vma_tunnel", ConnectionStatus: "disconnected", TunnelPort: ptr(9082), LastSeenAt: ptr(at(-50 * time.Hour))},
		},
		events: []api.AuditEvent{
			{ID: 1, EventType: "pairing_code_generated", ApprovedBy: "admin", EventDetails: map[string]any{"note": "ticket 4711", "expires_at": "2025-06-01T11:57:00Z"}, CreatedAt: at(-13 * time.Minute)},
			{ID: 2, EnrollmentID: ptr("0b9d3c4e-1111-4aaa-8bbb-000000000001"), EventType: "enrollment", VMAName: "vma-fra-01", VMAFingerprint: "SHA256:q0v", SourceIP: "203.0.113.7", UserAgent: "vma-enroll/dev", EventDetails: map[string]any{"vma_version": "2.4.1"}, CreatedAt: at(-4 * time.Minute)},
			{ID: 3, EnrollmentID: ptr("0b9d3c4e-1111-4aaa-8bbb-000000000001"), EventType: "verification", VMAName: "vma-fra-01", SourceIP: "203.0.113.7", CreatedAt: at(-3 * time.Minute)},
			{ID: 4, EventType: "enrollment_failed", SourceIP: "198.51.100.99", EventDetails: map[string]any{"reason": "used\x1b]0;pwned\x07"}, CreatedAt: at(-2 * time.Minute)},
		},
		chain: api.ChainReport{OK: true, Checked: 4, HeadID: 4},
	}
}

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests = append(a.requests, r.Method+" "+r.URL.RequestURI())
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		writeTestJSON(w, 401, api.ErrorBody{Error: api.ErrorDetail{Code: "unauthorized", Message: "admin token not recognised or revoked"}})
		return
	}
	q := r.URL.Query()
	find := func(id string) *api.Enrollment {
		for i := range a.enrollments {
			if a.enrollments[i].ID == id {
				return &a.enrollments[i]
			}
		}
		return nil
	}
	transition := func(prefix, from, to string, apply func(e *api.Enrollment)) {
		e := find(strings.TrimPrefix(r.URL.Path, prefix))
		if e == nil {
			writeTestJSON(w, 404, api.ErrorBody{Error: api.ErrorDetail{Code: "not_found", Message: "enrollment not found"}})
			return
		}
		if e.Status != from {
			writeTestJSON(w, 409, api.ErrorBody{Error: api.ErrorDetail{Code: "wrong_state", Message: "cannot change enrollment " + e.ID + ": it is " + e.Status}})
			return
		}
		e.Status = to
		e.UpdatedAt = now
		apply(e)
		writeTestJSON(w, 200, e)
	}
	switch {
	case r.Method == "POST" && r.URL.Path == api.PathPairingCode:
		var in api.PairingCodeRequest
		json.NewDecoder(r.Body).Decode(&in)
		writeTestJSON(w, 201, api.PairingCodeResponse{
			PairingCode:    "7KQ2-M9XD-4RTB",
			ExpiresAt:      at(time.Duration(in.TTLSeconds) * time.Second),
			OMAFingerprint: "sha256:5f1c0e9a4b7d2c8e3f6a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e",
			JoinCommand:    "vma-enroll --oma oma.example.com:443 --code 7KQ2-M9XD-4RTB --fingerprint sha256:5f1c0e9a4b7d2c8e3f6a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e",
		})
	case r.URL.Path == api.PathPending:
		out := []api.Enrollment{}
		for _, e := range a.enrollments {
			if e.Status == "awaiting_approval" {
				out = append(out, e)
			}
		}
		writeTestJSON(w, 200, api.EnrollmentList{Enrollments: out})
	case r.URL.Path == api.PathEnrollments:
		out := []api.Enrollment{}
		for _, e := range a.enrollments {
			if (q.Get("vma_name") == "" || e.VMAName == q.Get("vma_name")) &&
				(q.Get("id_prefix") == "" || strings.HasPrefix(e.ID, q.Get("id_prefix"))) &&
				(q.Get("status") == "" || e.Status == q.Get("status")) {
				out = append(out, e)
			}
		}
		writeTestJSON(w, 200, api.EnrollmentList{Enrollments: out})
	case r.URL.Path == api.PathActive:
		writeTestJSON(w, 200, api.ConnectionList{Connections: a.connections})
	case strings.HasPrefix(r.URL.Path, api.PathApprove):
		var in api.ApproveRequest
		json.NewDecoder(r.Body).Decode(&in)
		transition(api.PathApprove, "awaiting_approval", "approved", func(e *api.Enrollment) {
			e.ApprovedBy, e.ApprovedAt, e.ApprovalNotes, e.TunnelPort = "admin", ptr(now), in.Notes, ptr(9083)
		})
	case strings.HasPrefix(r.URL.Path, api.PathReject):
		var in api.ReasonRequest
		json.NewDecoder(r.Body).Decode(&in)
		transition(api.PathReject, "awaiting_approval", "rejected", func(e *api.Enrollment) {
			e.RejectedBy, e.RejectionReason = "admin", in.Reason
		})
	case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, api.PathRevoke):
		var in api.ReasonRequest
		json.NewDecoder(r.Body).Decode(&in)
		transition(api.PathRevoke, "approved", "revoked", func(e *api.Enrollment) {
			e.RevokedBy, e.RevokedAt, e.RevocationReason = "admin", ptr(now), in.Reason
		})
	case r.URL.Path == api.PathAuditVerify:
		writeTestJSON(w, 200, a.chain)
	case r.URL.Path == api.PathAudit:
		evs := append([]api.AuditEvent(nil), a.events...)
		if q.Get("order") == "desc" {
			for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
				evs[i], evs[j] = evs[j], evs[i]
			}
		}
		// two events per page, to exercise the cursor
		start := 0
		if c := q.Get("cursor"); c != "" {
			start = int(c[0] - '0')
		}
		end := min(start+2, len(evs))
		next := ""
		if end < len(evs) {
			next = string(rune('0' + end))
		}
		writeTestJSON(w, 200, api.AuditList{Events: evs[start:end], NextCursor: next})
	default:
		writeTestJSON(w, 404, api.ErrorBody{Error: api.ErrorDetail{Code: "not_found", Message: "no such path"}})
	}
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

type result struct {
	stdout, stderr string
	code           int
}

// runCmd runs omactl with args against srv (nil: no server flag).
func runCmd(t *testing.T, srv *httptest.Server, stdin string, tty bool, args ...string) result {
	t.Helper()
	ios, in, out, errOut := cmdutil.Test()
	in.WriteString(stdin)
	ios.InTTY, ios.ErrTTY, ios.OutTTY = tty, tty, tty
	f := NewFactory(ios)
	f.Now = func() time.Time { return now }
	f.Loc = time.UTC
	f.ConfigFile = ""
	root := NewRootCmd(f)
	if srv != nil {
		args = append([]string{"--server", srv.URL, "--token", "admintok"}, args...)
	}
	root.SetArgs(args)
	code := cmdutil.Run(root, ios)
	return result{out.String(), errOut.String(), code}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got ---\n%s--- want ---\n%s", name, path, got, want)
	}
}

func TestMain(m *testing.M) {
	// Config tests set OMACTL_* themselves; clear what the environment brings.
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, EnvPrefix) {
			os.Unsetenv(strings.SplitN(kv, "=", 2)[0])
		}
	}
	os.Exit(m.Run())
}
