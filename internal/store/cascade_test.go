package store

import (
	"context"
	"testing"
)

// TestCascade: deleting an enrollment row (by hand, in SQL) removes its
// connection and audit rows and unlinks its pairing code.
func TestCascade(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, _ := newService(t, s)
		v := approved(t, svc, "doomed")
		keep := approved(t, svc, "kept")
		countFor := func(table, col, id string) int {
			return count(t, s, "SELECT COUNT(*) FROM "+table+" WHERE "+col+" = ?", id)
		}
		if n := countFor("vma_active_connections", "enrollment_id", v.id); n != 1 {
			t.Fatalf("connections of %s = %d, want 1", v.id, n)
		}
		if n := countFor("vma_connection_audit", "enrollment_id", v.id); n != 3 {
			t.Fatalf("audit rows of %s = %d, want 3 (enrollment, verification, approval)", v.id, n)
		}
		if n := countFor("vma_pairing_codes", "used_by_enrollment_id", v.id); n != 1 {
			t.Fatalf("pairing codes used by %s = %d, want 1", v.id, n)
		}
		codes := count(t, s, "SELECT COUNT(*) FROM vma_pairing_codes")

		if n := exec(t, s, "DELETE FROM vma_enrollments WHERE id = ?", v.id); n != 1 {
			t.Fatalf("deleted %d enrollments, want 1", n)
		}
		if n := countFor("vma_active_connections", "enrollment_id", v.id); n != 0 {
			t.Errorf("connections of the deleted enrollment = %d, want 0", n)
		}
		if n := countFor("vma_connection_audit", "enrollment_id", v.id); n != 0 {
			t.Errorf("audit rows of the deleted enrollment = %d, want 0", n)
		}
		if n := countFor("vma_pairing_codes", "used_by_enrollment_id", v.id); n != 0 {
			t.Errorf("pairing codes still linked to the deleted enrollment = %d, want 0", n)
		}
		if n := count(t, s, "SELECT COUNT(*) FROM vma_pairing_codes"); n != codes {
			t.Errorf("pairing codes = %d, want %d (kept, unlinked)", n, codes)
		}
		if n := count(t, s, "SELECT COUNT(*) FROM vma_pairing_codes WHERE used_by_enrollment_id IS NULL AND used_at IS NOT NULL"); n != 1 {
			t.Errorf("used, unlinked pairing codes = %d, want 1", n)
		}
		// Other rows are untouched.
		if n := countFor("vma_active_connections", "enrollment_id", keep.id); n != 1 {
			t.Errorf("connections of the other enrollment = %d, want 1", n)
		}
		// Deleting audit rows this way breaks the chain, and it shows.
		rep, err := svc.VerifyAudit(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK {
			t.Errorf("VerifyAudit after deleting an enrollment's audit rows: ok, want a break")
		}
	})
}
