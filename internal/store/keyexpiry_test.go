package store

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// TestKeyExpiry: a key's standing moves ok → due → overdue → expired with
// the clock; an overdue key still authenticates and rotates (which makes
// it new); an expired one is refused by the one check behind every
// VMA-authenticated service, the tunnel re-check flags it and the openssh
// mode drops it; its first refusal is audited once, however many peers
// try it at once.
func TestKeyExpiry(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, clk := newService(t, s)
		svc.Config.KeyPolicy = enroll.KeyPolicy{MaxAge: time.Hour, RotationWindow: 20 * time.Minute, Grace: 10 * time.Minute}
		ctx := context.Background()
		a, b := approved(t, svc, "vma-a"), approved(t, svc, "vma-b")
		t0 := clk.Now().UTC().Truncate(time.Microsecond)

		standing := func(id string) *enroll.KeyExpiry {
			t.Helper()
			list, err := svc.Active(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range list {
				if c.EnrollmentID == id {
					if c.Key == nil {
						t.Fatalf("%s: no key standing in the active list", id)
					}
					return c.Key
				}
			}
			t.Fatalf("%s is not in the active list", id)
			return nil
		}
		if k := standing(a.id); k.Status != enroll.KeyOK || !k.Since.Equal(t0) || !k.ExpiresAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("fresh key: %+v (since %v, want %v)", k, k.Since, t0)
		}
		clk.Advance(45 * time.Minute)
		if k := standing(a.id); k.Status != enroll.KeyDue || k.Age != 45*time.Minute {
			t.Fatalf("after 45m: %+v", k)
		}
		info, err := svc.Self(ctx, a.id)
		if err != nil || info.Key == nil || info.Key.Status != enroll.KeyDue || !info.Key.RefusedAfter.Equal(t0.Add(70*time.Minute)) {
			t.Fatalf("Self after 45m: %+v, %v", info, err)
		}

		// Overdue: still accepted, and the VMA can still rotate.
		clk.Advance(20 * time.Minute)
		if k := standing(a.id); k.Status != enroll.KeyOverdue {
			t.Fatalf("after 65m: %+v", k)
		}
		if _, err := svc.AuthorizeTunnelKey(ctx, authKey(a.priv)); err != nil {
			t.Fatalf("overdue key: %v", err)
		}
		_, kb, _ := sshkey.Generate(nil)
		if _, err := svc.RotateKey(ctx, rotateReq(b, sshkey.Fingerprint(b.pub), kb), vmaIP); err != nil {
			t.Fatalf("rotation of an overdue key: %v", err)
		}
		t1 := clk.Now().UTC().Truncate(time.Microsecond)
		if k := standing(b.id); k.Status != enroll.KeyOK || !k.Since.Equal(t1) {
			t.Fatalf("rotated key: %+v, want ok since %v", k, t1)
		}

		// Expired: refused, audited once for any number of attempts.
		clk.Advance(5*time.Minute + time.Second)
		if k := standing(a.id); k.Status != enroll.KeyExpired {
			t.Fatalf("after 70m: %+v", k)
		}
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = svc.AuthorizeTunnelKey(ctx, authKey(a.priv))
			}()
		}
		wg.Wait()
		for _, err := range errs {
			wantCode(t, "expired key", err, enroll.CodeUnauthorized)
			if !strings.Contains(err.Error(), "pairing code") {
				t.Fatalf("the refusal does not say what to do: %v", err)
			}
		}
		st, err := svc.TunnelKeyStates(ctx, []string{a.id, b.id})
		if err != nil || !st[a.id].Expired || st[b.id].Expired || st[a.id].Status != enroll.StatusApproved {
			t.Fatalf("TunnelKeyStates: %+v, %v", st, err)
		}
		if st[b.id].KeySince == nil || !st[b.id].KeySince.Equal(t1) {
			t.Fatalf("key_since of the rotated key = %v, want %v", st[b.id].KeySince, t1)
		}
		approvedList, err := s.ListEnrollments(ctx, enroll.EnrollmentFilter{Statuses: []enroll.Status{enroll.StatusApproved}})
		if err != nil {
			t.Fatal(err)
		}
		kept, expired, err := svc.UnexpiredKeys(ctx, approvedList, enroll.Meta{})
		if err != nil || len(kept) != 1 || kept[0].ID != b.id || len(expired) != 1 || expired[0].ID != a.id {
			t.Fatalf("UnexpiredKeys: kept %v, expired %v, %v", kept, expired, err)
		}
		stand, err := svc.KeyStandings(ctx, approvedList)
		if err != nil || stand[a.id].Status != enroll.KeyExpired || stand[b.id].Status != enroll.KeyOK {
			t.Fatalf("KeyStandings: %+v, %v", stand, err)
		}
		evs := auditEvents(t, s, enroll.AuditFilter{EventType: enroll.EventKeyExpired})
		if len(evs) != 1 || *evs[0].EnrollmentID != a.id || evs[0].Details()["fingerprint"] != sshkey.Fingerprint(a.pub) {
			t.Fatalf("key_expired events: %+v", evs)
		}
		if got := mustGet(t, s, a.id); got.Status != enroll.StatusApproved {
			t.Fatalf("the enrollment of an expired key is %s, want approved (only its key is refused)", got.Status)
		}
		wantChainOK(t, svc)

		// A longer policy lets the key in again (the refusal is the
		// policy's arithmetic); the event is not written twice.
		svc.Config.KeyPolicy.Grace = 24 * time.Hour
		if _, err := svc.AuthorizeTunnelKey(ctx, authKey(a.priv)); err != nil {
			t.Fatalf("key under a longer grace: %v", err)
		}
		svc.Config.KeyPolicy = enroll.KeyPolicy{}
		if k := standing(a.id); k.Status != enroll.KeyOK || k.ExpiresAt != nil {
			t.Fatalf("policy off: %+v", k)
		}
	})
}
