package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// history writes a normal history of ten audit events: a pairing code,
// two enrollments through approval, a rejection, a revocation.
func history(t *testing.T, svc *enroll.Service, clk *clock) {
	t.Helper()
	ctx := context.Background()
	a := approved(t, svc, "vma-a") // code, enrollment, verification, approval: 4
	clk.Advance(time.Second)
	b := verified(t, svc, "vma-b") // 3
	clk.Advance(time.Second)
	if _, err := svc.Reject(ctx, b.id, "not ours", admin); err != nil { // 1
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := svc.Revoke(ctx, a.id, "retired", admin); err != nil { // 1
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := svc.CreatePairingCode(ctx, 0, "spare", admin); err != nil { // 1
		t.Fatal(err)
	}
}

// TestAuditChain: a normal history verifies, ids are 1…n, every row links
// to its predecessor, and the head records the newest row.
func TestAuditChain(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, clk := newService(t, s)
		ctx := context.Background()
		rep := wantChainOK(t, svc)
		if rep.Checked != 0 || rep.HeadID != 0 {
			t.Errorf("empty chain: checked %d, head %d; want 0, 0", rep.Checked, rep.HeadID)
		}
		history(t, svc, clk)
		rep = wantChainOK(t, svc)
		if rep.Checked != 10 || rep.HeadID != 10 {
			t.Errorf("chain: checked %d, head %d; want 10, 10", rep.Checked, rep.HeadID)
		}
		evs := auditEvents(t, s, enroll.AuditFilter{})
		prev := ""
		for i, ev := range evs {
			if ev.ID != int64(i+1) || ev.PrevMAC != prev || len(ev.MAC) != 64 {
				t.Errorf("row %d: id %d, prev_mac %q, mac %q; want id %d linked to %q", i, ev.ID, ev.PrevMAC, ev.MAC, i+1, prev)
			}
			if ev.MAC != enroll.AuditMAC(testAuditKey, &ev) {
				t.Errorf("row %d: stored MAC does not match its content as read back", ev.ID)
			}
			prev = ev.MAC
		}
		headID, headMAC, err := s.AuditHead(ctx)
		if err != nil || headID != 10 || headMAC != prev {
			t.Errorf("AuditHead = %d, %q, %v; want 10, %q", headID, headMAC, err, prev)
		}
		want := []enroll.EventType{"pairing_code_generated", "enrollment", "verification", "approval",
			"pairing_code_generated", "enrollment", "verification", "rejection", "revocation", "pairing_code_generated"}
		for i, ev := range evs {
			if ev.EventType != want[i] {
				t.Errorf("event %d = %s, want %s", ev.ID, ev.EventType, want[i])
			}
		}
		// The actor and details are recorded.
		if evs[3].ApprovedBy != "alice" || evs[3].Details()["tunnel_port"] != float64(9081) {
			t.Errorf("approval event = %+v, want actor alice and tunnel_port 9081", evs[3])
		}
	})
}

// TestAuditTampering: each way of rewriting history is detected at the
// right row.
func TestAuditTampering(t *testing.T) {
	type tamper struct {
		name   string
		do     func(t *testing.T, s *DB, evs []enroll.AuditEvent)
		wantID int64
		reason string
	}
	update := func(col string, val any) func(t *testing.T, s *DB, evs []enroll.AuditEvent) {
		return func(t *testing.T, s *DB, evs []enroll.AuditEvent) {
			if n := exec(t, s, "UPDATE vma_connection_audit SET "+col+" = ? WHERE id = 4", val); n != 1 {
				t.Fatalf("updated %d rows, want 1", n)
			}
		}
	}
	cases := []tamper{
		{"alter actor", update("approved_by", "mallory"), 4, "altered"},
		{"alter source ip", update("source_ip", "6.6.6.6"), 4, "altered"},
		{"alter details", update("event_details", `{"tunnel_port":22}`), 4, "altered"},
		{"alter type", update("event_type", "rejection"), 4, "altered"},
		{"alter time", update("created_at", ts(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))), 4, "altered"},
		{"alter vma name", update("vma_name", "other"), 4, "altered"},
		{"alter fingerprint", update("vma_fingerprint", "SHA256:forged"), 4, "altered"},
		{"alter user agent", update("user_agent", "curl"), 4, "altered"},
		{"unlink enrollment", update("enrollment_id", nil), 4, "altered"},
		{"alter mac", update("mac", strings.Repeat("0", 64)), 4, "altered"},
		{"delete middle row", func(t *testing.T, s *DB, evs []enroll.AuditEvent) {
			exec(t, s, "DELETE FROM vma_connection_audit WHERE id = 5")
		}, 6, "missing"},
		{"swap two rows", func(t *testing.T, s *DB, evs []enroll.AuditEvent) {
			// Rows 3 and 7 exchange their whole content, ids stay.
			for _, p := range [][2]enroll.AuditEvent{{evs[2], evs[6]}, {evs[6], evs[2]}} {
				dst, src := p[0], p[1]
				exec(t, s, `UPDATE vma_connection_audit SET enrollment_id = ?, event_type = ?, vma_name = ?,
					vma_fingerprint = ?, source_ip = ?, user_agent = ?, approved_by = ?, event_details = ?,
					created_at = ?, prev_mac = ?, mac = ? WHERE id = ?`,
					src.EnrollmentID, string(src.EventType), src.VMAName, src.VMAFingerprint, src.SourceIP,
					src.UserAgent, src.ApprovedBy, src.EventDetails, ts(src.CreatedAt), src.PrevMAC, src.MAC, dst.ID)
			}
		}, 3, "link"},
		{"delete newest row", func(t *testing.T, s *DB, evs []enroll.AuditEvent) {
			exec(t, s, "DELETE FROM vma_connection_audit WHERE id = 10")
		}, 10, "removed"},
		{"delete newest rows and rewind head", func(t *testing.T, s *DB, evs []enroll.AuditEvent) {
			// Not detectable from the database alone: the head is consistent.
			// The server logs every new head MAC for this case (§8).
			exec(t, s, "DELETE FROM vma_connection_audit WHERE id >= 9")
			exec(t, s, "UPDATE vma_audit_head SET last_id = 8, last_mac = ? WHERE id = 1", evs[7].MAC)
		}, 0, ""},
		{"recompute with a wrong key", func(t *testing.T, s *DB, evs []enroll.AuditEvent) {
			ev := evs[4]
			ev.SourceIP = "6.6.6.6"
			ev.MAC = enroll.AuditMAC([]byte("not the key"), &ev)
			exec(t, s, "UPDATE vma_connection_audit SET source_ip = ?, mac = ? WHERE id = 5", ev.SourceIP, ev.MAC)
		}, 5, "altered"},
	}
	forEachStore(t, func(t *testing.T, s *DB) {
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				wipe(t, s) // a fresh history per case
				svc, clk := newService(t, s)
				clk.Advance(time.Duration(i) * time.Hour)
				history(t, svc, clk)
				evs := auditEvents(t, s, enroll.AuditFilter{})
				if len(evs) != 10 {
					t.Fatalf("history wrote %d events, want 10", len(evs))
				}
				wantChainOK(t, svc)
				c.do(t, s, evs)
				rep, err := svc.VerifyAudit(context.Background())
				if err != nil {
					t.Fatalf("VerifyAudit: %v", err)
				}
				if c.wantID == 0 {
					if !rep.OK {
						t.Fatalf("VerifyAudit broke at %d (%s), want ok", rep.Break.ID, rep.Break.Reason)
					}
					return
				}
				if rep.OK {
					t.Fatalf("VerifyAudit = ok, want a break at row %d", c.wantID)
				}
				if rep.Break.ID != c.wantID || !strings.Contains(rep.Break.Reason, c.reason) {
					t.Errorf("break at %d (%q), want at %d with %q", rep.Break.ID, rep.Break.Reason, c.wantID, c.reason)
				}
			})
		}
	})
}

// TestListAudit: every filter field.
func TestListAudit(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, clk := newService(t, s)
		start := clk.Now()
		history(t, svc, clk)
		all := auditEvents(t, s, enroll.AuditFilter{})
		ids := func(evs []enroll.AuditEvent) []int64 {
			out := []int64{}
			for _, ev := range evs {
				out = append(out, ev.ID)
			}
			return out
		}
		a := *all[1].EnrollmentID
		cases := []struct {
			name string
			f    enroll.AuditFilter
			want []int64
		}{
			{"all", enroll.AuditFilter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
			{"limit", enroll.AuditFilter{Limit: 3}, []int64{1, 2, 3}},
			{"descending", enroll.AuditFilter{Descending: true, Limit: 3}, []int64{10, 9, 8}},
			{"after", enroll.AuditFilter{After: 7}, []int64{8, 9, 10}},
			{"before", enroll.AuditFilter{Before: 3}, []int64{1, 2}},
			{"after and before", enroll.AuditFilter{After: 3, Before: 6}, []int64{4, 5}},
			{"page back", enroll.AuditFilter{Before: 8, Descending: true, Limit: 2}, []int64{7, 6}},
			{"type", enroll.AuditFilter{EventType: enroll.EventPairingCodeGenerated}, []int64{1, 5, 10}},
			{"enrollment", enroll.AuditFilter{EnrollmentID: a}, []int64{2, 3, 4, 9}},
			{"vma name", enroll.AuditFilter{VMAName: "vma-b"}, []int64{6, 7, 8}},
			{"vma name, no match", enroll.AuditFilter{VMAName: "VMA-B"}, []int64{}},
			{"since (inclusive)", enroll.AuditFilter{Since: ptr(start.Add(2 * time.Second))}, []int64{8, 9, 10}},
			{"until (exclusive)", enroll.AuditFilter{Until: ptr(start.Add(time.Second))}, []int64{1, 2, 3, 4}},
			{"since and until", enroll.AuditFilter{Since: ptr(start.Add(time.Second)), Until: ptr(start.Add(3 * time.Second))}, []int64{5, 6, 7, 8}},
			{"since, other zone", enroll.AuditFilter{Since: ptr(start.Add(4 * time.Second).In(time.FixedZone("Y", -7*3600)))}, []int64{10}},
			{"combined", enroll.AuditFilter{EventType: enroll.EventVerification, Since: ptr(start), Descending: true, Limit: 1}, []int64{7}},
		}
		for _, c := range cases {
			if got := ids(auditEvents(t, s, c.f)); !equalInts(got, c.want) {
				t.Errorf("%s: ids = %v, want %v", c.name, got, c.want)
			}
		}
		// Through the service: unknown types and oversized pages are refused.
		_, err := svc.Audit(context.Background(), enroll.AuditFilter{EventType: "nope"})
		wantCode(t, "Audit(unknown type)", err, enroll.CodeInvalidRequest)
		_, err = svc.Audit(context.Background(), enroll.AuditFilter{Limit: enroll.MaxAuditLimit + 1})
		wantCode(t, "Audit(limit too big)", err, enroll.CodeInvalidRequest)
	})
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// wipe empties every table and resets the chain head.
func wipe(t *testing.T, s *DB) {
	t.Helper()
	for _, table := range []string{"vma_connection_audit", "vma_active_connections", "vma_pairing_codes", "vma_enrollments", "admin_tokens"} {
		exec(t, s, "DELETE FROM "+table)
	}
	exec(t, s, "UPDATE vma_audit_head SET last_id = 0, last_mac = '' WHERE id = 1")
}
