package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// setups bring a new enrollment into each state of the state machine.
var setups = []struct {
	state enroll.Status
	setup func(t *testing.T, svc *enroll.Service, name string) *vma
}{
	{enroll.StatusPendingVerification, func(t *testing.T, svc *enroll.Service, name string) *vma { return enrolled(t, svc, name) }},
	{enroll.StatusAwaitingApproval, func(t *testing.T, svc *enroll.Service, name string) *vma { return verified(t, svc, name) }},
	{enroll.StatusApproved, func(t *testing.T, svc *enroll.Service, name string) *vma { return approved(t, svc, name) }},
	{enroll.StatusRejected, func(t *testing.T, svc *enroll.Service, name string) *vma {
		v := verified(t, svc, name)
		if _, err := svc.Reject(context.Background(), v.id, "unknown appliance", admin); err != nil {
			t.Fatalf("Reject: %v", err)
		}
		return v
	}},
	{enroll.StatusRevoked, func(t *testing.T, svc *enroll.Service, name string) *vma {
		v := approved(t, svc, name)
		if _, err := svc.Revoke(context.Background(), v.id, "decommissioned", admin); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		return v
	}},
	{enroll.StatusExpired, func(t *testing.T, svc *enroll.Service, name string) *vma {
		v := enrolled(t, svc, name)
		e := mustGet(t, svc.Store, v.id)
		// Expire just this one: move its deadline into the past.
		if _, err := svc.Store.(*DB).w.Exec(`UPDATE vma_enrollments SET expires_at = ? WHERE id = ?`,
			ts(e.CreatedAt.Add(-time.Second)), v.id); err != nil {
			t.Fatal(err)
		}
		if n, err := svc.ExpireDue(context.Background()); err != nil || n != 1 {
			t.Fatalf("ExpireDue = %d, %v; want 1, nil", n, err)
		}
		return v
	}},
}

// actions are the transitions; each returns the operation's error.
var actions = []struct {
	name string
	do   func(t *testing.T, svc *enroll.Service, clk *clock, v *vma) error
}{
	{"verify", func(t *testing.T, svc *enroll.Service, clk *clock, v *vma) error {
		_, err := svc.Verify(context.Background(), v.id, v.sign(), vmaIP)
		return err
	}},
	{"approve", func(t *testing.T, svc *enroll.Service, clk *clock, v *vma) error {
		_, err := svc.Approve(context.Background(), v.id, "", admin)
		return err
	}},
	{"reject", func(t *testing.T, svc *enroll.Service, clk *clock, v *vma) error {
		_, err := svc.Reject(context.Background(), v.id, "no", admin)
		return err
	}},
	{"revoke", func(t *testing.T, svc *enroll.Service, clk *clock, v *vma) error {
		_, err := svc.Revoke(context.Background(), v.id, "gone", admin)
		return err
	}},
	{"expire", func(t *testing.T, svc *enroll.Service, clk *clock, v *vma) error {
		// Past every window: the verification (10m) and approval (30m) ones.
		clk.Advance(time.Hour)
		_, err := svc.ExpireDue(context.Background())
		return err
	}},
}

// TestTransitions runs every action from every state through the service
// on the real stores and checks the resulting status and error code
// against the state machine's table (enroll.Verb.Transition; its legality
// is spelled out in enroll's TestStateMachine): every allowed verb commits
// its status, every other one is wrong_state and leaves the row alone,
// and expire (a sweep) simply skips what it may not expire.
func TestTransitions(t *testing.T) {
	const ok = enroll.Code("")
	type outcome struct {
		code enroll.Code
		want enroll.Status
	}
	expected := func(from enroll.Status, verb enroll.Verb) outcome {
		switch {
		case from.Allows(verb):
			return outcome{ok, verb.Transition().To}
		case verb == enroll.VerbExpire:
			return outcome{ok, from}
		}
		return outcome{enroll.CodeWrongState, from}
	}
	forEachStore(t, func(t *testing.T, s *DB) {
		for _, st := range setups {
			for _, a := range actions {
				t.Run(string(st.state)+"/"+a.name, func(t *testing.T) {
					// Each case gets its own clock and VMA name, on the shared store.
					svc, clk := newService(t, s)
					v := st.setup(t, svc, string(st.state)+"-"+a.name)
					wantStatus(t, s, v.id, st.state)
					want := expected(st.state, enroll.Verb(a.name))
					err := a.do(t, svc, clk, v)
					if want.code == ok {
						if err != nil {
							t.Fatalf("%s from %s: %v, want success", a.name, st.state, err)
						}
					} else {
						wantCode(t, a.name+" from "+string(st.state), err, want.code)
					}
					wantStatus(t, s, v.id, want.want)
				})
			}
		}
		svc, _ := newService(t, s)
		wantChainOK(t, svc)
	})
}

// TestUnknownEnrollment checks not_found for every transition on an id
// that does not exist, and invalid_request for one that is no id.
func TestUnknownEnrollment(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, _ := newService(t, s)
		ctx := context.Background()
		missing := "0b9d3c4e-0000-4000-8000-00000000dead"
		sig := make([]byte, 64)
		_, err := svc.Verify(ctx, missing, sig, vmaIP)
		wantCode(t, "Verify(missing)", err, enroll.CodeNotFound)
		_, err = svc.Approve(ctx, missing, "", admin)
		wantCode(t, "Approve(missing)", err, enroll.CodeNotFound)
		_, err = svc.Reject(ctx, missing, "", admin)
		wantCode(t, "Reject(missing)", err, enroll.CodeNotFound)
		_, err = svc.Revoke(ctx, missing, "", admin)
		wantCode(t, "Revoke(missing)", err, enroll.CodeNotFound)
		_, err = svc.Result(ctx, missing, "vpt_x", 0)
		wantCode(t, "Result(missing)", err, enroll.CodeNotFound)
		_, err = svc.Approve(ctx, "'; DROP TABLE vma_enrollments; --", "", admin)
		wantCode(t, "Approve(garbage id)", err, enroll.CodeInvalidRequest)
	})
}

// TestEnrollCodes covers the enroll transition: a fresh code works once;
// used, unknown and expired codes get the one answer pairing_code_rejected,
// and the audit records why.
func TestEnrollCodes(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, clk := newService(t, s)
		ctx := context.Background()
		code := newCode(t, svc)
		v := newVMA(t, "vma-a")
		res, err := svc.Enroll(ctx, v.request(code), vmaIP)
		if err != nil {
			t.Fatalf("Enroll: %v", err)
		}
		if res.Status != enroll.StatusPendingVerification {
			t.Errorf("status = %q, want %q", res.Status, enroll.StatusPendingVerification)
		}
		if want := clk.Now().Add(10 * time.Minute).Truncate(time.Microsecond); !res.ExpiresAt.Equal(want) {
			t.Errorf("expires_at = %v, want %v", res.ExpiresAt, want)
		}
		e := mustGet(t, s, res.EnrollmentID)
		if e.PairingCodeHash != enroll.PairingCodeHash(testAuditKey, mustNormalize(t, code)) || e.VMAName != "vma-a" || e.VMAIPAddress != vmaIP.SourceIP {
			t.Errorf("stored enrollment = %+v", e)
		}
		// The code is marked used and linked to the enrollment.
		var pc *enroll.PairingCode
		if err := s.InTx(ctx, func(tx enroll.Tx) (err error) {
			pc, err = tx.PairingCodeByHash(ctx, e.PairingCodeHash)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if pc.UsedAt == nil || pc.UsedByEnrollmentID == nil || *pc.UsedByEnrollmentID != e.ID {
			t.Errorf("pairing code after use: used_at %v, used_by %v; want set, %s", pc.UsedAt, pc.UsedByEnrollmentID, e.ID)
		}

		expired := newCode(t, svc)
		clk.Advance(10 * time.Minute) // exactly the lifetime: expired
		cases := []struct {
			name, code, reason string
		}{
			{"used", code, "pairing_code_used"},
			{"used, other spelling", "  " + lowerNoDashes(code), "pairing_code_used"},
			{"unknown", "0000-0000-0000", "pairing_code_unknown"},
			{"expired", expired, "pairing_code_expired"},
		}
		for _, c := range cases {
			before := auditEvents(t, s, enroll.AuditFilter{Descending: true, Limit: 1})
			_, err := svc.Enroll(ctx, newVMA(t, "vma-b").request(c.code), vmaIP)
			wantCode(t, "Enroll with "+c.name+" code", err, enroll.CodePairingCodeRejected)
			if enroll.ErrorMessage(err) != enroll.ErrPairingCodeRejected.Message {
				t.Errorf("%s: message = %q, want the one rejection message", c.name, enroll.ErrorMessage(err))
			}
			evs := auditEvents(t, s, enroll.AuditFilter{After: before[0].ID})
			if len(evs) != 1 {
				t.Fatalf("%s: %d new audit events, want 1", c.name, len(evs))
			}
			ev := evs[0]
			if ev.EventType != enroll.EventEnrollmentFailed || ev.Details()["reason"] != c.reason ||
				ev.SourceIP != vmaIP.SourceIP || ev.VMAName != "vma-b" || ev.EnrollmentID != nil {
				t.Errorf("%s: audit event = %+v (details %v), want enrollment_failed with reason %s from %s",
					c.name, ev, ev.Details(), c.reason, vmaIP.SourceIP)
			}
		}
		if n := count(t, s, "SELECT COUNT(*) FROM vma_enrollments"); n != 1 {
			t.Errorf("enrollments = %d, want 1", n)
		}
		// Bad input never reaches the store.
		_, err = svc.Enroll(ctx, enroll.EnrollRequest{PairingCode: "ABCD", PublicKey: v.request("").PublicKey, Name: "x"}, vmaIP)
		// A malformed code is refused like any other (docs/design.md §5).
		wantCode(t, "Enroll with a short code", err, enroll.CodePairingCodeRejected)
		if msg := enroll.ErrorMessage(err); !strings.Contains(msg, "12") {
			t.Errorf("short code message %q does not say what is wrong", msg)
		}
		_, err = svc.Enroll(ctx, enroll.EnrollRequest{PairingCode: newCode(t, svc), PublicKey: "ssh-rsa AAAA", Name: "x"}, vmaIP)
		wantCode(t, "Enroll with an RSA key", err, enroll.CodeInvalidPublicKey)
		wantChainOK(t, svc)
	})
}

func mustNormalize(t *testing.T, code string) string {
	t.Helper()
	c, err := enroll.NormalizePairingCode(code)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func lowerNoDashes(code string) string {
	out := make([]byte, 0, len(code))
	for i := 0; i < len(code); i++ {
		c := code[i]
		if c == '-' {
			continue
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out = append(out, c)
	}
	return string(out)
}

// UpdateEnrollment allows exactly the prior statuses the state machine's
// table gives each verb (enroll.Verb.Transition), and refuses a row whose
// new status is not where the verb leads.
func TestUpdateEnrollmentFollowsTheTable(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, _ := newService(t, s)
		ctx := context.Background()
		errRollback := errors.New("roll back")
		for i, st := range setups {
			v := st.setup(t, svc, fmt.Sprintf("vma-table-%d", i))
			for _, verb := range enroll.Verbs() {
				tr := verb.Transition()
				if len(tr.From) == 0 {
					continue // enroll makes a row; it updates none
				}
				var ok bool
				err := s.InTx(ctx, func(tx enroll.Tx) error {
					e, err := tx.GetEnrollment(ctx, v.id)
					if err != nil {
						return err
					}
					e.Status = tr.To
					if ok, err = tx.UpdateEnrollment(ctx, e, verb); err != nil {
						return err
					}
					return errRollback
				})
				if !errors.Is(err, errRollback) {
					t.Fatalf("%s from %s: %v", verb, st.state, err)
				}
				if want := st.state.Allows(verb); ok != want {
					t.Errorf("%s from %s: updated %v, want %v", verb, st.state, ok, want)
				}
			}
			if got := mustGet(t, s, v.id).Status; got != st.state {
				t.Fatalf("status %s after rolled-back updates, want %s", got, st.state)
			}
		}
		// A row the verb does not lead to is a programming error, not a
		// lost race.
		v := setups[0].setup(t, svc, "vma-table-wrong")
		err := s.InTx(ctx, func(tx enroll.Tx) error {
			e, err := tx.GetEnrollment(ctx, v.id)
			if err != nil {
				return err
			}
			e.Status = enroll.StatusApproved
			_, err = tx.UpdateEnrollment(ctx, e, enroll.VerbReject)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), `"reject" leads to "rejected", not "approved"`) {
			t.Fatalf("reject writing approved: %v", err)
		}
	})
}
