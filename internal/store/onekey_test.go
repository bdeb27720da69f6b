package store

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// withKeyOf returns a VMA called name holding v's key pair (a renamed VMA,
// 'vma-enroll --force --name', or a clone of an appliance template).
func withKeyOf(v *vma, name string) *vma {
	return &vma{name: name, pub: v.pub, priv: v.priv}
}

// verify enrolls and verifies v with a new code: it then awaits approval.
func (v *vma) verify(t testing.TB, svc *enroll.Service) *vma {
	t.Helper()
	ctx := context.Background()
	res, err := svc.Enroll(ctx, v.request(newCode(t, svc)), vmaIP)
	if err != nil {
		t.Fatalf("Enroll(%s): %v", v.name, err)
	}
	v.id, v.challenge = res.EnrollmentID, res.Challenge
	out, err := svc.Verify(ctx, v.id, v.sign(), vmaIP)
	if err != nil {
		t.Fatalf("Verify(%s): %v", v.name, err)
	}
	v.token = out.PollToken.Reveal()
	return v
}

func holders(t testing.TB, s enroll.Store, v *vma) []enroll.Enrollment {
	t.Helper()
	fp := mustGet(t, s, v.id).VMAFingerprint
	list, err := s.ApprovedByFingerprint(context.Background(), fp)
	if err != nil {
		t.Fatalf("ApprovedByFingerprint: %v", err)
	}
	return list
}

// TestOneKeyOneApprovedVMA: a key approved under vma-a and enrolled again
// as vma-clone shows in the pending list as replacing vma-a; approving the
// clone revokes vma-a (the key is never approved twice), and revoking the
// clone leaves the key approved nowhere (issue 13, finding 3: the SSH
// endpoint found the second holder after the first was revoked).
func TestOneKeyOneApprovedVMA(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, _ := newService(t, s)
		ctx := context.Background()
		a := approved(t, svc, "vma-a")
		clone := withKeyOf(a, "vma-clone").verify(t, svc)
		other := verified(t, svc, "vma-a") // same name, new key: a re-enrollment

		list, repl, err := svc.PendingWithReplacements(ctx)
		if err != nil || len(list) != 2 {
			t.Fatalf("PendingWithReplacements = %d, %v; want 2 pending", len(list), err)
		}
		if r := repl[clone.id]; len(r) != 1 || r[0].EnrollmentID != a.id || !r[0].SameKey || r[0].SameName {
			t.Errorf("vma-clone replaces %+v, want vma-a by the same key", r)
		}
		if r := repl[other.id]; len(r) != 1 || r[0].EnrollmentID != a.id || r[0].SameKey || !r[0].SameName {
			t.Errorf("the new vma-a replaces %+v, want vma-a by name", r)
		}

		if _, err := svc.Approve(ctx, clone.id, "", admin); err != nil {
			t.Fatalf("Approve(vma-clone): %v", err)
		}
		old := mustGet(t, s, a.id)
		if old.Status != enroll.StatusRevoked || !strings.Contains(old.RevocationNote, "same key") || old.TunnelPort != nil {
			t.Fatalf("vma-a after approving its clone: %s (%q), want revoked for the same key", old.Status, old.RevocationNote)
		}
		if h := holders(t, s, a); len(h) != 1 || h[0].ID != clone.id {
			t.Fatalf("approved holders of the key = %d, want only vma-clone", len(h))
		}
		revs := auditEvents(t, s, enroll.AuditFilter{EventType: enroll.EventRevocation, EnrollmentID: a.id})
		if len(revs) != 1 || revs[0].ApprovedBy != admin.Actor {
			t.Errorf("revocation audit of vma-a = %+v, want one by %s", revs, admin.Actor)
		}
		// The clone's own pending replacement by name is gone with vma-a.
		if _, repl, _ := svc.PendingWithReplacements(ctx); len(repl[other.id]) != 0 {
			t.Errorf("the new vma-a still replaces %+v after vma-a was revoked", repl[other.id])
		}

		if _, err := svc.Revoke(ctx, clone.id, "gone", admin); err != nil {
			t.Fatalf("Revoke(vma-clone): %v", err)
		}
		if h := holders(t, s, a); len(h) != 0 {
			t.Fatalf("after revoking vma-clone the key is still approved under %s", h[0].VMAName)
		}
		wantChainOK(t, svc)

		// The database itself refuses a second approved holder.
		exec(t, s, "UPDATE vma_enrollments SET status = 'approved', tunnel_port = 9900 WHERE id = ?", a.id)
		if _, err := s.w.ExecContext(ctx, "UPDATE vma_enrollments SET status = 'approved', tunnel_port = 9901 WHERE id = ?", clone.id); err == nil || classify(err) != kindDuplicate {
			t.Fatalf("a second approved holder of one key: %v, want a unique-key violation", err)
		}
	})
}

// TestConcurrentApprovalsOneKey: two enrollments holding one key, approved
// at once through two store instances (two pools, as two oma-server
// processes), leave the key approved under exactly one of them.
func TestConcurrentApprovalsOneKey(t *testing.T) {
	forEachDriver(t, true, func(t *testing.T, driver, dsn string) {
		s1, s2 := mustOpenDSN(t, driver, dsn), mustOpenDSN(t, driver, dsn)
		svc1, _ := newService(t, s1)
		svc2, _ := newService(t, s2)
		for round := range 6 {
			base := newVMA(t, "key-owner")
			var pair [2]*vma
			if round%2 == 1 {
				// An approved holder exists that both approvals supersede.
				approvedOld := withKeyOf(base, "vma-old-"+string(rune('a'+round))).verify(t, svc1)
				if _, err := svc1.Approve(context.Background(), approvedOld.id, "", admin); err != nil {
					t.Fatal(err)
				}
			}
			for i := range pair {
				pair[i] = withKeyOf(base, "vma-"+string(rune('a'+round))+string(rune('0'+i))).verify(t, svc1)
			}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, svc := range []*enroll.Service{svc1, svc2} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = svc.Approve(context.Background(), pair[i].id, "", admin)
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil && enroll.ErrorCode(err) != enroll.CodeWrongState && enroll.ErrorCode(err) != enroll.CodeConflict {
					t.Fatalf("round %d: Approve(%s): %v (code %s), want success or a 409", round, pair[i].name, err, enroll.ErrorCode(err))
				}
			}
			if errs[0] != nil && errs[1] != nil {
				t.Fatalf("round %d: both approvals failed: %v; %v", round, errs[0], errs[1])
			}
			if h := holders(t, s2, pair[0]); len(h) != 1 {
				t.Fatalf("round %d: the key is approved under %d enrollments, want 1", round, len(h))
			}
			t.Logf("round %d (earlier holder: %v): approvals answered %v, %v", round, round%2 == 1, errs[0], errs[1])
		}
		wantChainOK(t, svc2)
	})
}

// TestMigration0002KeepsNewestHolder: a database where one key was approved
// twice (possible before migration 0002) migrates: the newest approval keeps
// the key, the older one is revoked with its connection, and the unique
// index is in place; down and up again work. Pairing-code hints of codes
// hashed before the keyed hash are cleared.
func TestMigration0002KeepsNewestHolder(t *testing.T) {
	forEachDriver(t, false, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		if err := MigrateUp(ctx, driver, dsn); err != nil {
			t.Fatal(err)
		}
		// The rows are made by today's service, then the schema goes
		// back to version 1 (the later migrations' down files) to play
		// an older server.
		s := mustOpenDSN(t, driver, dsn)
		svc, clk := newService(t, s)
		a := approved(t, svc, "vma-a")
		clk.Advance(time.Minute)
		clone := withKeyOf(a, "vma-clone").verify(t, svc)
		if _, err := svc.Approve(ctx, clone.id, "", admin); err != nil {
			t.Fatal(err)
		}
		m, err := newMigrate(ctx, driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Migrate(1); err != nil {
			t.Fatalf("migrate to 1: %v", err)
		}
		m.Close()
		// As an older server could leave it: vma-a approved as well.
		exec(t, s, "UPDATE vma_enrollments SET status = 'approved', tunnel_port = 9500, revoked_at = NULL WHERE id = ?", a.id)
		exec(t, s, "UPDATE vma_active_connections SET connection_status = 'connected' WHERE enrollment_id = ?", a.id)
		exec(t, s, "UPDATE vma_pairing_codes SET code_hint = 'ABCD-…'")
		if err := MigrateUp(ctx, driver, dsn); err != nil {
			t.Fatalf("MigrateUp over a key approved twice: %v", err)
		}
		old := mustGet(t, s, a.id)
		if old.Status != enroll.StatusRevoked || old.RevokedBy != "migration 0002" || old.TunnelPort != nil || old.RevokedAt == nil {
			t.Errorf("older holder after 0002: %s by %q, port %v; want revoked by migration 0002, no port", old.Status, old.RevokedBy, old.TunnelPort)
		}
		if c := count(t, s, "SELECT COUNT(*) FROM vma_active_connections WHERE enrollment_id = ? AND connection_status = 'revoked'", a.id); c != 1 {
			t.Errorf("older holder's connection not marked revoked")
		}
		wantStatus(t, s, clone.id, enroll.StatusApproved)
		if n := count(t, s, "SELECT COUNT(*) FROM vma_pairing_codes WHERE code_hint <> ''"); n != 0 {
			t.Errorf("%d pairing codes kept their hint", n)
		}
		if _, err := s.w.ExecContext(ctx, "UPDATE vma_enrollments SET status = 'approved', tunnel_port = 9501 WHERE id = ?", a.id); classify(err) != kindDuplicate {
			t.Errorf("second approved holder after 0002: %v, want a unique-key violation", err)
		}
		if err := MigrateDown(ctx, driver, dsn); err != nil {
			t.Fatalf("MigrateDown: %v", err)
		}
		if err := MigrateUp(ctx, driver, dsn); err != nil {
			t.Fatalf("MigrateUp again: %v", err)
		}
	})
}
