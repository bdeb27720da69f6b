package store

import (
	"context"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// TestCodeExpiry: a code works until just before its expiry and is
// rejected from the expiry instant on, with the reason in the audit.
func TestCodeExpiry(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, clk := newService(t, s)
		ctx := context.Background()
		live, expired := newCode(t, svc), newCode(t, svc)
		custom, err := svc.CreatePairingCode(ctx, 2*time.Hour, "long", admin)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(10*time.Minute - time.Microsecond)
		if _, err := svc.Enroll(ctx, newVMA(t, "just-in-time").request(live), vmaIP); err != nil {
			t.Fatalf("Enroll 1µs before expiry: %v", err)
		}
		clk.Advance(time.Microsecond)
		_, err = svc.Enroll(ctx, newVMA(t, "too-late").request(expired), vmaIP)
		wantCode(t, "Enroll at expiry", err, enroll.CodePairingCodeRejected)
		evs := auditEvents(t, s, enroll.AuditFilter{EventType: enroll.EventEnrollmentFailed})
		if len(evs) != 1 || evs[0].Details()["reason"] != "pairing_code_expired" || evs[0].VMAName != "too-late" {
			t.Fatalf("enrollment_failed events = %+v, want one with reason pairing_code_expired", evs)
		}
		// A code with a longer lifetime still works.
		clk.Advance(time.Hour)
		if _, err := svc.Enroll(ctx, newVMA(t, "long-ttl").request(custom.Code.Reveal()), vmaIP); err != nil {
			t.Fatalf("Enroll with a 2h code after 70m: %v", err)
		}
	})
}

// TestVerificationWindow: an enrollment not verified within 10 minutes
// expires, and verifying it then fails with wrong_state.
func TestVerificationWindow(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, clk := newService(t, s)
		ctx := context.Background()
		onTime, late := enrolled(t, svc, "on-time"), enrolled(t, svc, "late")
		clk.Advance(10*time.Minute - time.Microsecond)
		if _, err := svc.Verify(ctx, onTime.id, onTime.sign(), vmaIP); err != nil {
			t.Fatalf("Verify just before the window closes: %v", err)
		}
		clk.Advance(time.Microsecond)
		_, err := svc.Verify(ctx, late.id, late.sign(), vmaIP)
		wantCode(t, "Verify after the window", err, enroll.CodeWrongState)
		wantStatus(t, s, late.id, enroll.StatusExpired)
		evs := auditEvents(t, s, enroll.AuditFilter{EventType: enroll.EventExpiry})
		if len(evs) != 1 || evs[0].EnrollmentID == nil || *evs[0].EnrollmentID != late.id ||
			evs[0].Details()["from_status"] != string(enroll.StatusPendingVerification) || evs[0].ApprovedBy != "system" {
			t.Errorf("expiry events = %+v, want one for %s from pending_verification by system", evs, late.id)
		}
		// The verified one now has the approval window.
		e := mustGet(t, s, onTime.id)
		if want := clk.Now().Add(-time.Microsecond).Add(30 * time.Minute); e.ExpiresAt == nil || !e.ExpiresAt.Equal(want) {
			t.Errorf("expires_at after verify = %v, want %v", e.ExpiresAt, want)
		}
	})
}

// TestApprovalWindow: a verified enrollment not approved within 30 minutes
// expires; approving or rejecting it then fails with wrong_state.
func TestApprovalWindow(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, clk := newService(t, s)
		ctx := context.Background()
		onTime, late, lateReject := verified(t, svc, "on-time"), verified(t, svc, "late"), verified(t, svc, "late-reject")
		clk.Advance(30*time.Minute - time.Microsecond)
		e, err := svc.Approve(ctx, onTime.id, "", admin)
		if err != nil {
			t.Fatalf("Approve just before the window closes: %v", err)
		}
		if e.ExpiresAt != nil {
			t.Errorf("expires_at of an approved enrollment = %v, want nil", e.ExpiresAt)
		}
		clk.Advance(time.Microsecond)
		_, err = svc.Approve(ctx, late.id, "", admin)
		wantCode(t, "Approve after the window", err, enroll.CodeWrongState)
		wantStatus(t, s, late.id, enroll.StatusExpired)
		_, err = svc.Reject(ctx, lateReject.id, "", admin)
		wantCode(t, "Reject after the window", err, enroll.CodeWrongState)
		wantStatus(t, s, lateReject.id, enroll.StatusExpired)
		// The poll shows the expiry.
		got, err := svc.Result(ctx, late.id, late.token, 0)
		if err != nil || got.Status != enroll.StatusExpired {
			t.Errorf("Result = %v, %v; want expired", got, err)
		}
		wantStatus(t, s, onTime.id, enroll.StatusApproved)
	})
}

// TestExpireDue: ExpireDue expires exactly the overdue enrollments, counts
// them, and is idempotent.
func TestExpireDue(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, clk := newService(t, s)
		ctx := context.Background()
		var pending, awaiting []*vma
		for _, n := range []string{"p1", "p2", "p3"} {
			pending = append(pending, enrolled(t, svc, n))
		}
		for _, n := range []string{"a1", "a2"} {
			awaiting = append(awaiting, verified(t, svc, n))
		}
		approvedVMA := approved(t, svc, "ok")
		expire := func(want int) {
			t.Helper()
			got, err := svc.ExpireDue(ctx)
			if err != nil {
				t.Fatalf("ExpireDue: %v", err)
			}
			if got != want {
				t.Fatalf("ExpireDue at +%s = %d, want %d", clk.Now().Sub(time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)), got, want)
			}
		}
		expire(0)
		clk.Advance(10*time.Minute - time.Microsecond)
		expire(0)
		clk.Advance(time.Microsecond) // the pending ones are due
		ids, err := s.ExpirableEnrollments(ctx, clk.Now(), 0)
		if err != nil || len(ids) != 3 {
			t.Fatalf("ExpirableEnrollments = %v, %v; want the 3 pending", ids, err)
		}
		if ids, err := s.ExpirableEnrollments(ctx, clk.Now(), 2); err != nil || len(ids) != 2 {
			t.Fatalf("ExpirableEnrollments(limit 2) = %v, %v; want 2", ids, err)
		}
		expire(3)
		expire(0)
		for _, v := range pending {
			wantStatus(t, s, v.id, enroll.StatusExpired)
		}
		for _, v := range awaiting {
			wantStatus(t, s, v.id, enroll.StatusAwaitingApproval)
		}
		clk.Advance(20 * time.Minute) // 30m after verification
		expire(2)
		expire(0)
		for _, v := range awaiting {
			wantStatus(t, s, v.id, enroll.StatusExpired)
		}
		wantStatus(t, s, approvedVMA.id, enroll.StatusApproved)
		if n := len(auditEvents(t, s, enroll.AuditFilter{EventType: enroll.EventExpiry})); n != 5 {
			t.Errorf("expiry audit events = %d, want 5", n)
		}
		// Two services (two server instances) expiring at once expire each
		// enrollment once.
		for _, n := range []string{"r1", "r2", "r3", "r4"} {
			enrolled(t, svc, n)
		}
		clk.Advance(time.Hour)
		other, _ := newService(t, s)
		other.Now = clk.Now
		counts := make(chan int, 2)
		for _, sv := range []*enroll.Service{svc, other} {
			go func() {
				n, err := sv.ExpireDue(ctx)
				if err != nil {
					t.Errorf("ExpireDue: %v", err)
				}
				counts <- n
			}()
		}
		if total := <-counts + <-counts; total != 4 {
			t.Errorf("concurrent ExpireDue expired %d in total, want 4", total)
		}
		if n := len(auditEvents(t, s, enroll.AuditFilter{EventType: enroll.EventExpiry})); n != 9 {
			t.Errorf("expiry audit events = %d, want 9", n)
		}
		wantChainOK(t, svc)
	})
}
