package hardening_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/app"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// racers is how many goroutines contend in each race.
const racers = 24

// race runs fn(i) on n goroutines released at once and collects the
// answers; it fails on transport errors and on any 5xx.
func race(t *testing.T, what string, n int, fn func(i int) resp) []resp {
	t.Helper()
	out := make([]resp, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	for i, r := range out {
		if r.err != nil || r.status >= 500 {
			t.Fatalf("%s: racer %d: %s", what, i, r)
		}
	}
	return out
}

// tally counts answers as "status code" strings.
func tally(rs []resp) map[string]int {
	m := map[string]int{}
	for _, r := range rs {
		m[fmt.Sprintf("%d %s", r.status, r.code())]++
	}
	return m
}

// only fails unless every answer is one of allowed.
func only(t *testing.T, what string, got map[string]int, allowed ...string) {
	t.Helper()
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	for k := range got {
		if !ok[k] {
			t.Fatalf("%s: answers %v include %q (allowed: %v)", what, got, k, allowed)
		}
	}
}

// eventTypes lists the audit event types of one enrollment.
func eventTypes(t *testing.T, c *apiClient, id string) []string {
	t.Helper()
	var out []string
	for _, ev := range c.auditEvents(t, "&enrollment_id="+id) {
		out = append(out, ev.EventType)
	}
	return out
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

func (c *apiClient) enrollment(t *testing.T, id string) api.Enrollment {
	t.Helper()
	for _, e := range c.enrollments(t) {
		if e.ID == id {
			return e
		}
	}
	t.Fatalf("enrollment %s not found", id)
	return api.Enrollment{}
}

// runRaces races every contended transition through clients, spreading
// the racers over them (one client: one server; two: two instances on
// one database).
func runRaces(t *testing.T, clients []*apiClient) {
	pick := func(i int) *apiClient { return clients[i%len(clients)] }
	c0 := clients[0]

	t.Run("single-use code", func(t *testing.T) {
		code := c0.mustCode(t)
		keys := make([]*vmaKey, racers)
		for i := range keys {
			keys[i] = newVMAKey(t, fmt.Sprintf("code-racer-%02d", i))
		}
		// Each racer is another VMA, from its own address (named in
		// X-Forwarded-For where the server trusts loopback as a proxy), so
		// that the per-address failure budget does not decide the race.
		rs := race(t, "enroll", racers, func(i int) resp {
			r, _ := pick(i).enroll(keys[i], code, map[string]string{"X-Forwarded-For": fmt.Sprintf("198.18.0.%d", i+1)})
			return r
		})
		got := tally(rs)
		only(t, "enroll with one code", got, "201 ", "403 pairing_code_rejected")
		if got["201 "] != 1 {
			t.Fatalf("one code, %d racers: answers %v, want exactly one 201", racers, got)
		}
		used := 0
		for _, ev := range c0.auditEvents(t, "&event_type=enrollment_failed") {
			if ev.EventDetails["reason"] == "pairing_code_used" {
				used++
			}
		}
		if used != racers-1 {
			t.Fatalf("%d enrollment_failed events with pairing_code_used, want %d", used, racers-1)
		}
	})

	t.Run("challenge", func(t *testing.T) {
		v := newVMAKey(t, "challenge-racer")
		_, en := c0.enroll(v, c0.mustCode(t), nil)
		if en == nil {
			t.Fatal("enroll failed")
		}
		rs := race(t, "verify", racers, func(i int) resp {
			e := *en
			return pick(i).verify(v, &e)
		})
		got := tally(rs)
		only(t, "concurrent verifies", got, "200 ", "409 wrong_state")
		if got["200 "] != 1 {
			t.Fatalf("concurrent verifies of one enrollment: %v, want exactly one 200", got)
		}
		if ev := eventTypes(t, c0, en.id); count(ev, "verification") != 1 {
			t.Fatalf("audit %v: want one verification", ev)
		}
	})

	t.Run("approve vs reject", func(t *testing.T) {
		en := c0.enrollVerified(t, newVMAKey(t, "approve-reject"))
		rs := race(t, "approve/reject", racers, func(i int) resp {
			c := pick(i / 2)
			if i%2 == 0 {
				return c.adminDo("POST", api.PathApprove+en.id, nil)
			}
			return c.adminDo("POST", api.PathReject+en.id, api.ReasonRequest{Reason: "race"})
		})
		got := tally(rs)
		only(t, "approve vs reject", got, "200 ", "409 wrong_state")
		if got["200 "] != 1 {
			t.Fatalf("approve vs reject: %v, want exactly one 200", got)
		}
		ev := eventTypes(t, c0, en.id)
		st := c0.enrollment(t, en.id).Status
		if count(ev, "approval")+count(ev, "rejection") != 1 || (st == "approved") != (count(ev, "approval") == 1) {
			t.Fatalf("status %s with audit %v", st, ev)
		}
	})

	t.Run("revoke vs approve of a re-enrollment", func(t *testing.T) {
		old := c0.enrollVerified(t, newVMAKey(t, "reenrolled"))
		if r := c0.adminDo("POST", api.PathApprove+old.id, nil); r.status != 200 {
			t.Fatalf("approve the old enrollment: %s", r)
		}
		nw := c0.enrollVerified(t, newVMAKey(t, "reenrolled"))
		rs := race(t, "revoke/approve", racers, func(i int) resp {
			c := pick(i / 2)
			if i%2 == 0 {
				return c.adminDo("POST", api.PathApprove+nw.id, nil)
			}
			return c.adminDo("DELETE", api.PathRevoke+old.id, api.ReasonRequest{Reason: "race"})
		})
		var approves, revokes []resp
		for i, r := range rs {
			if i%2 == 0 {
				approves = append(approves, r)
			} else {
				revokes = append(revokes, r)
			}
		}
		ga, gr := tally(approves), tally(revokes)
		only(t, "approvals of the new enrollment", ga, "200 ", "409 wrong_state")
		only(t, "revocations of the old enrollment", gr, "200 ", "409 wrong_state")
		if ga["200 "] != 1 || gr["200 "] > 1 {
			t.Fatalf("approvals %v, revocations %v: want exactly one approval and at most one revocation", ga, gr)
		}
		evOld, evNew := eventTypes(t, c0, old.id), eventTypes(t, c0, nw.id)
		if count(evOld, "revocation") != 1 || count(evNew, "approval") != 1 {
			t.Fatalf("audit of the old enrollment %v, of the new %v: want one revocation and one approval", evOld, evNew)
		}
		if o, n := c0.enrollment(t, old.id), c0.enrollment(t, nw.id); o.Status != "revoked" || n.Status != "approved" || o.TunnelPort != nil {
			t.Fatalf("old %s (port %v), new %s", o.Status, o.TunnelPort, n.Status)
		}
		approved := 0
		for _, e := range c0.enrollments(t) {
			if e.VMAName == "reenrolled" && e.Status == "approved" {
				approved++
			}
		}
		if approved != 1 {
			t.Fatalf("%d approved enrollments named reenrolled, want 1", approved)
		}
	})

	t.Run("approve vs approve", func(t *testing.T) {
		// Two VMAs of one name approved at once: one supersedes the other,
		// never two approved, never a shared tunnel port.
		a := c0.enrollVerified(t, newVMAKey(t, "twin"))
		b := c0.enrollVerified(t, newVMAKey(t, "twin"))
		rs := race(t, "approve twins", racers, func(i int) resp {
			id := a.id
			if i%2 == 1 {
				id = b.id
			}
			return pick(i/2).adminDo("POST", api.PathApprove+id, nil)
		})
		got := tally(rs)
		only(t, "twin approvals", got, "200 ", "409 wrong_state")
		if got["200 "] != 2 {
			t.Fatalf("approving two enrollments of one name: %v, want one 200 each", got)
		}
		approved := 0
		for _, e := range c0.enrollments(t) {
			if e.VMAName == "twin" && e.Status == "approved" {
				approved++
			}
		}
		if approved != 1 {
			t.Fatalf("%d approved enrollments named twin, want 1 (the later supersedes the earlier)", approved)
		}
	})

	t.Cleanup(func() {
		if !t.Failed() {
			for _, c := range clients {
				c.chainOK(t)
			}
		}
	})
}

// TestRacesInProcess races every contended transition against the HTTP API
// of one server, on SQLite and on MariaDB.
func TestRacesInProcess(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		e := startEnv(t, envOpts{driver: driver})
		runRaces(t, []*apiClient{e.apiClient})
	})
}

// steppingClock is a fake clock that advances by step on every reading.
type steppingClock struct {
	now  atomic.Int64 // unix nanoseconds
	step time.Duration
}

func (c *steppingClock) read() time.Time {
	return time.Unix(0, c.now.Add(int64(c.step))-int64(c.step)).UTC()
}

func (c *steppingClock) set(t time.Time) { c.now.Store(t.UnixNano()) }

// TestApprovalAtTheDeadline: the approval window is decided by the
// server's clock inside the approving transaction. With a clock that
// moves from just before the deadline (the pre-check) to the deadline (the
// transaction), the approval must lose to the expiry, and the same holds
// for the verify window.
func TestApprovalAtTheDeadline(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		clock := &steppingClock{}
		clock.set(time.Now())
		const window = 30 * time.Minute
		e := startEnv(t, envOpts{driver: driver, now: clock.read,
			svc: enroll.Config{ApprovalWindow: window, VerifyWindow: window},
			cfg: func(c *app.Config) { c.ExpireEvery = time.Hour }})

		// Approval: one reading of the clock before the transaction, one in it.
		en := e.enrollVerified(t, newVMAKey(t, "late-approval"))
		verified := e.enrollment(t, en.id).VerifiedAt
		deadline := verified.Add(window)
		clock.step = time.Microsecond
		clock.set(deadline.Add(-clock.step))
		r := e.adminDo("POST", api.PathApprove+en.id, nil)
		clock.step = 0
		if r.status == 200 {
			ap := decodeAs[api.Enrollment](t, r)
			t.Fatalf("approved at %s, its approval window ended at %s", ap.ApprovedAt.Format(time.RFC3339Nano), deadline.Format(time.RFC3339Nano))
		}
		if r.status != 409 || r.code() != "wrong_state" {
			t.Fatalf("approval at the deadline: %s, want 409 wrong_state", r)
		}
		clock.set(deadline.Add(time.Second))
		if st := e.enrollment(t, en.id).Status; st != "awaiting_approval" && st != "expired" {
			t.Fatalf("after the refused approval the enrollment is %s", st)
		}
		e.adminDo("GET", api.PathPending, nil) // runs the expiry
		if st := e.enrollment(t, en.id).Status; st != "expired" {
			t.Fatalf("after the deadline the enrollment is %s, want expired", st)
		}

		// Verify: the same at the end of the verify window.
		clock.set(time.Now())
		v := newVMAKey(t, "late-verify")
		_, en2 := e.enroll(v, e.mustCode(t), nil)
		if en2 == nil {
			t.Fatal("enroll failed")
		}
		created := e.enrollment(t, en2.id).CreatedAt
		deadline = created.Add(window)
		clock.step = time.Microsecond
		clock.set(deadline.Add(-clock.step))
		r = e.verify(v, en2)
		clock.step = 0
		if r.status != 409 || r.code() != "wrong_state" {
			t.Fatalf("verify at the end of the verify window: %s, want 409 wrong_state", r)
		}
		e.chainOK(t)
	})
}

// TestApproveVsExpire races approvals against the expiry at the deadline
// (a fake clock jumping past it while the approvals run): exactly one of
// them wins, and an approval never carries a time at or after the
// deadline.
func TestApproveVsExpire(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		clock := &steppingClock{}
		clock.set(time.Now())
		const window = 30 * time.Minute
		e := startEnv(t, envOpts{driver: driver, now: clock.read, svc: enroll.Config{ApprovalWindow: window},
			cfg: func(c *app.Config) { c.ExpireEvery = time.Hour }})
		for round := 0; round < 6; round++ {
			clock.set(time.Now())
			en := e.enrollVerified(t, newVMAKey(t, fmt.Sprintf("expiring-%d", round)))
			deadline := e.enrollment(t, en.id).VerifiedAt.Add(window)
			clock.set(deadline.Add(-time.Duration(round) * 300 * time.Microsecond))
			clock.step = 100 * time.Microsecond
			rs := race(t, "approve/expire", racers, func(i int) resp {
				if i%3 == 2 {
					return e.adminDo("GET", api.PathPending, nil) // expires what is due
				}
				return e.adminDo("POST", api.PathApprove+en.id, nil)
			})
			clock.step = 0
			var approvals []resp
			for i, r := range rs {
				if i%3 != 2 {
					approvals = append(approvals, r)
				}
			}
			got := tally(approvals)
			only(t, "approve vs expire", got, "200 ", "409 wrong_state")
			clock.set(deadline.Add(time.Minute))
			e.adminDo("GET", api.PathPending, nil)
			final := e.enrollment(t, en.id)
			ev := eventTypes(t, e.apiClient, en.id)
			switch final.Status {
			case "approved":
				if got["200 "] != 1 || count(ev, "approval") != 1 || count(ev, "expiry") != 0 {
					t.Fatalf("round %d: approved with answers %v, audit %v", round, got, ev)
				}
				if !final.ApprovedAt.Before(deadline) {
					t.Fatalf("round %d: approved at %s, at or after the deadline %s", round, final.ApprovedAt, deadline)
				}
			case "expired":
				if got["200 "] != 0 || count(ev, "expiry") != 1 || count(ev, "approval") != 0 {
					t.Fatalf("round %d: expired with answers %v, audit %v", round, got, ev)
				}
			default:
				t.Fatalf("round %d: status %s", round, final.Status)
			}
			t.Logf("round %d: %s (%v)", round, final.Status, got)
		}
		e.chainOK(t)
	})
}
