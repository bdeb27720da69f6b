package enroll

import "testing"

// TestStateMachine is the state machine of docs/design.md §4, written out:
// which verb is legal from which status and where it leads. The table in
// statemachine.go must say the same.
func TestStateMachine(t *testing.T) {
	const no = Status("")
	pv, aa, ap, rj, rv, ex := StatusPendingVerification, StatusAwaitingApproval, StatusApproved, StatusRejected, StatusRevoked, StatusExpired
	// want[from][verb] is the status the verb leads to, or no when the
	// verb is not allowed from there (wrong_state).
	want := map[Status]map[Verb]Status{
		pv: {VerbVerify: aa, VerbApprove: no, VerbReject: rj, VerbRevoke: no, VerbExpire: ex},
		aa: {VerbVerify: no, VerbApprove: ap, VerbReject: rj, VerbRevoke: no, VerbExpire: ex},
		ap: {VerbVerify: no, VerbApprove: no, VerbReject: no, VerbRevoke: rv, VerbExpire: no},
		rj: {VerbVerify: no, VerbApprove: no, VerbReject: no, VerbRevoke: no, VerbExpire: no},
		rv: {VerbVerify: no, VerbApprove: no, VerbReject: no, VerbRevoke: no, VerbExpire: no},
		ex: {VerbVerify: no, VerbApprove: no, VerbReject: no, VerbRevoke: no, VerbExpire: no},
	}
	for _, from := range Statuses {
		for _, v := range Verbs() {
			if v == VerbEnroll {
				if from.Allows(v) {
					t.Errorf("enroll is allowed from %s; it only makes new enrollments", from)
				}
				continue
			}
			w := want[from][v]
			if got := from.Allows(v); got != (w != no) {
				t.Errorf("%s allows %s = %v, want %v", from, v, got, w != no)
			}
			if w != no {
				if got := v.Transition().To; got != w {
					t.Errorf("%s from %s leads to %s, want %s", v, from, got, w)
				}
			}
		}
	}
	if got := VerbEnroll.Transition().To; got != pv {
		t.Errorf("enroll leads to %s, want %s", got, pv)
	}
}

// TestFinalAndUndecided: final statuses have no way out; the undecided
// ones are those a wait for the outcome keeps waiting on.
func TestFinalAndUndecided(t *testing.T) {
	final := map[Status]bool{StatusRejected: true, StatusRevoked: true, StatusExpired: true}
	undecided := map[Status]bool{StatusPendingVerification: true, StatusAwaitingApproval: true}
	for _, s := range Statuses {
		if s.Final() != final[s] {
			t.Errorf("%s.Final() = %v, want %v", s, s.Final(), final[s])
		}
		if s.Undecided() != undecided[s] {
			t.Errorf("%s.Undecided() = %v, want %v", s, s.Undecided(), undecided[s])
		}
	}
	if Status("bogus").Undecided() || !Status("bogus").Final() {
		t.Error("an unknown status is undecided or has a way out")
	}
}

// TestEveryVerbHasATransition: a verb added to Verbs without a row in the
// table would be allowed from nowhere and lead nowhere.
func TestEveryVerbHasATransition(t *testing.T) {
	for _, v := range Verbs() {
		tr := v.Transition()
		if !tr.To.Valid() || (v != VerbEnroll && len(tr.From) == 0) {
			t.Errorf("%s: transition %+v", v, tr)
		}
	}
}
