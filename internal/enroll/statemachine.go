package enroll

// Verb is what can happen to an enrollment (docs/design.md §4).
type Verb string

// The verbs of the state machine.
const (
	VerbEnroll  Verb = "enroll"  // the VMA sends a pairing code and its key: a new enrollment
	VerbVerify  Verb = "verify"  // the VMA proves it holds the key
	VerbApprove Verb = "approve" // the admin lets it in
	VerbReject  Verb = "reject"  // the admin turns it away
	VerbRevoke  Verb = "revoke"  // the admin takes an approval back
	VerbExpire  Verb = "expire"  // its window lapsed before a decision
)

// Verbs lists every verb, in state machine order.
func Verbs() []Verb {
	return []Verb{VerbEnroll, VerbVerify, VerbApprove, VerbReject, VerbRevoke, VerbExpire}
}

// Transition is what a verb does: the statuses it is allowed from and the
// one it leads to. Enroll is allowed from no status: it makes a new
// enrollment.
type Transition struct {
	From []Status
	To   Status
}

// Transition is the one table of the state machine: the service checks a
// verb against it, the store builds its conditional queries from it, and
// the waits (the service's long poll, vma-enroll's loop) end where it says
// nothing more is waited for. Adding a state or a verb starts here.
func (v Verb) Transition() Transition {
	switch v {
	case VerbEnroll:
		return Transition{To: StatusPendingVerification}
	case VerbVerify:
		return Transition{From: []Status{StatusPendingVerification}, To: StatusAwaitingApproval}
	case VerbApprove:
		return Transition{From: []Status{StatusAwaitingApproval}, To: StatusApproved}
	case VerbReject:
		return Transition{From: []Status{StatusPendingVerification, StatusAwaitingApproval}, To: StatusRejected}
	case VerbRevoke:
		return Transition{From: []Status{StatusApproved}, To: StatusRevoked}
	case VerbExpire:
		return Transition{From: []Status{StatusPendingVerification, StatusAwaitingApproval}, To: StatusExpired}
	}
	return Transition{}
}

// Allows reports whether verb v may happen to an enrollment in status s.
func (s Status) Allows(v Verb) bool {
	for _, f := range v.Transition().From {
		if f == s {
			return true
		}
	}
	return false
}

// Final reports whether no verb leaves s (approved may still be revoked).
func (s Status) Final() bool {
	for _, v := range Verbs() {
		if s.Allows(v) {
			return false
		}
	}
	return true
}

// Undecided reports whether s still waits for a decision (the VMA's proof,
// the admin's approval): the statuses whose window can lapse (VerbExpire).
// A wait for the outcome of an enrollment ends when its status is no
// longer undecided.
func (s Status) Undecided() bool { return s.Allows(VerbExpire) }
