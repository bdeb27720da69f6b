package store

import (
	"context"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// TestTunnelLookups: the SSH endpoint's key lookup finds approved
// enrollments only, and the status re-check reports every existing id.
func TestTunnelLookups(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, _ := newService(t, s)
		ctx := context.Background()
		a, waiting := approved(t, svc, "vma-a"), verified(t, svc, "vma-w")
		got, err := s.ApprovedByFingerprint(ctx, sshkey.Fingerprint(a.pub))
		if err != nil || len(got) != 1 || got[0].ID != a.id || got[0].TunnelPort == nil || *got[0].TunnelPort != 9081 {
			t.Fatalf("ApprovedByFingerprint(a) = %+v, %v; want %s with port 9081", got, err, a.id)
		}
		if got, err := s.ApprovedByFingerprint(ctx, sshkey.Fingerprint(waiting.pub)); err != nil || len(got) != 0 {
			t.Errorf("ApprovedByFingerprint(awaiting approval) = %d rows, %v; want none", len(got), err)
		}
		if _, err := svc.Revoke(ctx, a.id, "", admin); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ApprovedByFingerprint(ctx, sshkey.Fingerprint(a.pub)); err != nil || len(got) != 0 {
			t.Errorf("ApprovedByFingerprint(revoked) = %d rows, %v; want none", len(got), err)
		}

		ids := []string{a.id, waiting.id, "0b9d3c4e-0000-4000-8000-00000000dead"}
		for range 1200 { // more than one batch
			ids = append(ids, waiting.id)
		}
		st, err := s.EnrollmentStatuses(ctx, ids)
		if err != nil {
			t.Fatalf("EnrollmentStatuses: %v", err)
		}
		want := map[string]enroll.Status{a.id: enroll.StatusRevoked, waiting.id: enroll.StatusAwaitingApproval}
		if len(st) != len(want) || st[a.id] != want[a.id] || st[waiting.id] != want[waiting.id] {
			t.Errorf("EnrollmentStatuses = %v, want %v", st, want)
		}
		if st, err := s.EnrollmentStatuses(ctx, nil); err != nil || len(st) != 0 {
			t.Errorf("EnrollmentStatuses(nil) = %v, %v; want empty", st, err)
		}
	})
}
