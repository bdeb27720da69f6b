package store

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

func portOf(t *testing.T, s *DB, id string) *int {
	t.Helper()
	return mustGet(t, s, id).TunnelPort
}

func wantPort(t *testing.T, s *DB, id string, want int) {
	t.Helper()
	if got := portOf(t, s, id); got == nil || *got != want {
		t.Fatalf("tunnel_port of %s = %s, want %d", id, fmtPort(got), want)
	}
}

// TestTunnelPorts: approvals allocate 9081, 9082, …; revoking frees the
// port for the next approval; re-enrolling a name revokes the old approved
// enrollment in the approval's transaction and frees its port; Active lists
// the approved VMAs only.
func TestTunnelPorts(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, _ := newService(t, s)
		ctx := context.Background()
		a, b := approved(t, svc, "vma-a"), approved(t, svc, "vma-b")
		wantPort(t, s, a.id, 9081)
		wantPort(t, s, b.id, 9082)

		e, err := svc.Revoke(ctx, a.id, "decommissioned", admin)
		if err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		if e.TunnelPort != nil || e.RevokedBy != "alice" || e.RevokedAt == nil || e.RevocationNote != "decommissioned" {
			t.Errorf("revoked enrollment = %+v, want no port, revoked by alice with the reason", e)
		}
		if got := portOf(t, s, a.id); got != nil {
			t.Errorf("tunnel_port of revoked %s = %d, want nil", a.id, *got)
		}
		c := approved(t, svc, "vma-c")
		wantPort(t, s, c.id, 9081) // a's port, freed

		// Re-enroll vma-b (a new key, a new code): approving it revokes
		// the old enrollment and reuses its port.
		b2 := verified(t, svc, "vma-b")
		wantStatus(t, s, b.id, enroll.StatusApproved)
		e, err = svc.Approve(ctx, b2.id, "key rotation", admin)
		if err != nil {
			t.Fatalf("Approve re-enrollment: %v", err)
		}
		if e.TunnelPort == nil || *e.TunnelPort != 9082 || e.ApprovedBy != "alice" || e.ApprovalNotes != "key rotation" {
			t.Errorf("re-enrollment = port %s, by %q, notes %q; want 9082, alice, key rotation", fmtPort(e.TunnelPort), e.ApprovedBy, e.ApprovalNotes)
		}
		old := mustGet(t, s, b.id)
		if old.Status != enroll.StatusRevoked || old.TunnelPort != nil || !strings.Contains(old.RevocationNote, b2.id) {
			t.Errorf("old enrollment = status %s, port %s, note %q; want revoked, nil, superseded by %s",
				old.Status, fmtPort(old.TunnelPort), old.RevocationNote, b2.id)
		}
		// One transaction: the revocation and the approval carry the same time.
		if old.RevokedAt == nil || e.ApprovedAt == nil || !old.RevokedAt.Equal(*e.ApprovedAt) {
			t.Errorf("revoked_at %v, approved_at %v; want equal (one transaction)", old.RevokedAt, e.ApprovedAt)
		}
		revs := auditEvents(t, s, enroll.AuditFilter{EventType: enroll.EventRevocation, EnrollmentID: b.id})
		if len(revs) != 1 || revs[0].Details()["tunnel_port"] != float64(9082) {
			t.Errorf("revocation events of %s = %+v, want one with tunnel_port 9082", b.id, revs)
		}

		active, err := svc.Active(ctx)
		if err != nil {
			t.Fatalf("Active: %v", err)
		}
		var got []string
		for _, c := range active {
			got = append(got, c.VMAName+":"+fmtPort(c.TunnelPort)+":"+c.EnrollmentID[:8]+":"+c.ConnectionStatus+":"+c.SSHUser)
		}
		want := []string{
			"vma-b:9082:" + b2.id[:8] + ":disconnected:vma_tunnel",
			"vma-c:9081:" + c.id[:8] + ":disconnected:vma_tunnel",
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("Active =\n %v\nwant\n %v", got, want)
		}
		// Revoked enrollments keep their connection row, marked revoked.
		if err := s.InTx(ctx, func(tx enroll.Tx) error {
			conn, err := tx.GetConnection(ctx, a.id)
			if err != nil {
				return err
			}
			if conn.ConnectionStatus != enroll.ConnRevoked || conn.RevokedBy != "alice" || conn.RevokedAt == nil {
				t.Errorf("connection of revoked %s = %+v, want revoked by alice", a.id, conn)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		wantChainOK(t, svc)
	})
}

// TestPortPoolExhausted: with a pool of two ports the third approval is a
// conflict and changes nothing.
func TestPortPoolExhausted(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, _ := newService(t, s)
		svc.Config.PortMin, svc.Config.PortMax = 9500, 9501
		approved(t, svc, "one")
		approved(t, svc, "two")
		v := verified(t, svc, "three")
		_, err := svc.Approve(context.Background(), v.id, "", admin)
		wantCode(t, "Approve with the pool exhausted", err, enroll.CodeConflict)
		wantStatus(t, s, v.id, enroll.StatusAwaitingApproval)
	})
}

// TestUpsertConnection: the row of an enrollment is inserted once and then
// updated in place, keeping its id and created_at.
func TestUpsertConnection(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, clk := newService(t, s)
		ctx := context.Background()
		v := approved(t, svc, "vma-a")
		var first *enroll.Connection
		if err := s.InTx(ctx, func(tx enroll.Tx) (err error) {
			first, err = tx.GetConnection(ctx, v.id)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if first.ID == "" || first.EnrollmentID != v.id || first.TunnelPort == nil || *first.TunnelPort != 9081 {
			t.Fatalf("connection after approval = %+v", first)
		}
		clk.Advance(time.Second)
		now := clk.Now()
		upd := *first
		upd.ID = ""
		upd.ConnectionStatus = enroll.ConnConnected
		upd.RemoteAddr = "198.51.100.7:50123"
		upd.ConnectedAt, upd.LastSeenAt, upd.UpdatedAt = &now, &now, now
		if err := s.InTx(ctx, func(tx enroll.Tx) error { return tx.UpsertConnection(ctx, &upd) }); err != nil {
			t.Fatalf("UpsertConnection: %v", err)
		}
		if n := count(t, s, "SELECT COUNT(*) FROM vma_active_connections"); n != 1 {
			t.Fatalf("connection rows = %d, want 1", n)
		}
		active, err := s.ListConnections(ctx)
		if err != nil || len(active) != 1 {
			t.Fatalf("ListConnections = %v, %v", active, err)
		}
		got := active[0]
		if got.ID != first.ID || !got.CreatedAt.Equal(first.CreatedAt) || got.ConnectionStatus != enroll.ConnConnected ||
			got.RemoteAddr != upd.RemoteAddr || got.ConnectedAt == nil || !got.ConnectedAt.Equal(now) || !got.UpdatedAt.Equal(now) {
			t.Errorf("after upsert = %+v, want id %s and created_at kept, status connected at %v", got, first.ID, now)
		}
		// The list (scanned by hand, SQLite times as text) reads what
		// the transaction's reader (sqlx, the driver's times) reads.
		var one *enroll.Connection
		if err := s.InTx(ctx, func(tx enroll.Tx) (err error) {
			one, err = tx.GetConnection(ctx, v.id)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// key_since is read with the list only (like the labels).
		if got.KeySince == nil || !got.KeySince.Equal(*mustGet(t, s, v.id).ApprovedAt) {
			t.Errorf("ListConnections key_since = %v, want the approval", got.KeySince)
		}
		got.KeySince = nil
		if !reflect.DeepEqual(got, *one) || got.UpdatedAt.Location() != time.UTC || got.RevokedAt != nil {
			t.Errorf("ListConnections row %+v\nGetConnection      %+v", got, *one)
		}
	})
}
