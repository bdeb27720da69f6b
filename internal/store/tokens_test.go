package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// TestAdminTokens: create, authenticate, touch, list, revoke.
func TestAdminTokens(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, clk := newService(t, s)
		ctx := context.Background()
		if n, err := s.CountAdminTokens(ctx); err != nil || n != 0 {
			t.Fatalf("CountAdminTokens on a fresh store = %d, %v; want 0", n, err)
		}
		alice, err := svc.CreateAdminToken(ctx, "alice")
		if err != nil {
			t.Fatalf("CreateAdminToken(alice): %v", err)
		}
		bob, err := svc.CreateAdminToken(ctx, "bob@ops")
		if err != nil {
			t.Fatalf("CreateAdminToken(bob@ops): %v", err)
		}
		if !strings.HasPrefix(alice.Reveal(), "oma_") || alice.Reveal() == bob.Reveal() {
			t.Errorf("tokens %q, %q: want distinct oma_ tokens", alice.Reveal(), bob.Reveal())
		}
		_, err = svc.CreateAdminToken(ctx, "alice")
		wantCode(t, "CreateAdminToken(alice) again", err, enroll.CodeConflict)
		_, err = svc.CreateAdminToken(ctx, "bad name!")
		wantCode(t, "CreateAdminToken(bad name)", err, enroll.CodeInvalidRequest)

		for _, c := range []struct{ tok, want string }{{alice.Reveal(), "alice"}, {bob.Reveal(), "bob@ops"}} {
			if got, err := svc.AuthenticateAdmin(ctx, c.tok); err != nil || got != c.want {
				t.Errorf("AuthenticateAdmin = %q, %v; want %q", got, err, c.want)
			}
		}
		_, err = svc.AuthenticateAdmin(ctx, "oma_wrong")
		wantCode(t, "AuthenticateAdmin(wrong)", err, enroll.CodeUnauthorized)
		_, err = svc.AuthenticateAdmin(ctx, "")
		wantCode(t, "AuthenticateAdmin(empty)", err, enroll.CodeUnauthorized)

		// The plain token is nowhere in the database.
		if n := count(t, s, "SELECT COUNT(*) FROM admin_tokens WHERE token_hash = ? OR name = ?", alice.Reveal(), alice.Reveal()); n != 0 {
			t.Errorf("plain token found in admin_tokens")
		}
		clk.Advance(time.Minute)
		if err := s.TouchAdminToken(ctx, "alice", clk.Now()); err != nil {
			t.Fatalf("TouchAdminToken: %v", err)
		}
		tok, err := s.AdminTokenByHash(ctx, enroll.HashSecret(alice.Reveal()))
		if err != nil || tok.Name != "alice" || tok.LastUsedAt == nil || !tok.LastUsedAt.Equal(clk.Now()) || tok.RevokedAt != nil {
			t.Errorf("AdminTokenByHash = %+v, %v; want alice, last used %v, not revoked", tok, err, clk.Now())
		}

		if err := svc.RevokeAdminToken(ctx, "alice"); err != nil {
			t.Fatalf("RevokeAdminToken(alice): %v", err)
		}
		_, err = svc.AuthenticateAdmin(ctx, alice.Reveal())
		wantCode(t, "AuthenticateAdmin(revoked)", err, enroll.CodeUnauthorized)
		wantCode(t, "RevokeAdminToken(alice) again", svc.RevokeAdminToken(ctx, "alice"), enroll.CodeNotFound)
		wantCode(t, "RevokeAdminToken(unknown)", svc.RevokeAdminToken(ctx, "carol"), enroll.CodeNotFound)
		if got, err := svc.AuthenticateAdmin(ctx, bob.Reveal()); err != nil || got != "bob@ops" {
			t.Errorf("AuthenticateAdmin(bob) after revoking alice = %q, %v", got, err)
		}

		list, err := s.ListAdminTokens(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "alice" || list[0].RevokedAt == nil || list[1].Name != "bob@ops" || list[1].RevokedAt != nil {
			t.Errorf("ListAdminTokens = %+v, %v; want alice (revoked), bob@ops", list, err)
		}
		if n, err := s.CountAdminTokens(ctx); err != nil || n != 2 {
			t.Errorf("CountAdminTokens = %d, %v; want 2 (revoked ones count)", n, err)
		}
	})
}

// TestAdminTokenChangesAreAudited: creating and revoking an admin token
// each write an audit event with the actor and the token's name (never the
// token or its hash), in the chain (issue 13, finding 11).
func TestAdminTokenChangesAreAudited(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, _ := newService(t, s)
		ctx := context.Background()
		tok, err := svc.CreateAdminTokenBy(ctx, "carol", enroll.Meta{Actor: "local:root", SourceIP: "127.0.0.1"})
		if err != nil {
			t.Fatalf("CreateAdminTokenBy: %v", err)
		}
		if err := svc.RevokeAdminTokenBy(ctx, "carol", enroll.Meta{Actor: "alice"}); err != nil {
			t.Fatalf("RevokeAdminTokenBy: %v", err)
		}
		// A refused revoke changes nothing and audits nothing.
		wantCode(t, "RevokeAdminTokenBy(carol) again", svc.RevokeAdminTokenBy(ctx, "carol", enroll.Meta{Actor: "alice"}), enroll.CodeNotFound)
		for _, c := range []struct {
			typ   enroll.EventType
			actor string
		}{{enroll.EventAdminTokenCreated, "local:root"}, {enroll.EventAdminTokenRevoked, "alice"}} {
			evs := auditEvents(t, s, enroll.AuditFilter{EventType: c.typ})
			if len(evs) != 1 {
				t.Fatalf("%s events: %d, want 1", c.typ, len(evs))
			}
			ev := evs[0]
			if ev.ApprovedBy != c.actor || ev.Details()["token_name"] != "carol" || ev.EnrollmentID != nil {
				t.Errorf("%s event = %+v (details %v), want actor %q and token_name carol", c.typ, ev, ev.Details(), c.actor)
			}
		}
		for _, secret := range []string{tok.Reveal(), enroll.HashSecret(tok.Reveal())} {
			if n := count(t, s, "SELECT COUNT(*) FROM vma_connection_audit WHERE event_details LIKE ?", "%"+secret+"%"); n != 0 {
				t.Errorf("the token (or its hash) is in the audit trail")
			}
		}
		wantChainOK(t, svc)
	})
}
