package enroll

import (
	"context"
	"fmt"
	"time"
)

// The key expiry policy (docs/rotation.md, "Key expiry"): a VMA's key gets
// old from its key_since (the approval, or the last rotation). With
// oma-server --key-max-age set, it is
//
//	ok       younger than max age - rotation window
//	due      inside the rotation window: vma-enroll tunnel rotates it
//	overdue  older than max age: still accepted, and the VMA can rotate
//	expired  older than max age + grace: refused everywhere the key
//	         authenticates (one key_expired audit event); the VMA needs a
//	         new pairing code
//
// This file is pure arithmetic; the service applies it (AuthorizeTunnelKey).

// EventKeyExpired records the first refusal of a VMA key older than the
// key max age plus the expiry grace (once per key, not per attempt).
const EventKeyExpired EventType = "key_expired"

// DefaultKeyExpiryGrace is how long past the key max age a key still works
// (oma-server --key-expiry-grace).
const DefaultKeyExpiryGrace = 7 * 24 * time.Hour

// MaxDefaultRotationWindow caps the default rotation window (a third of the
// max age, at most this).
const MaxDefaultRotationWindow = 14 * 24 * time.Hour

// DefaultRotationWindow is the rotation window when none is set: a third
// of maxAge, at most 14 days.
func DefaultRotationWindow(maxAge time.Duration) time.Duration {
	return min(maxAge/3, MaxDefaultRotationWindow)
}

// KeyPolicy is the key expiry policy. A zero MaxAge turns it off: keys
// never expire and every key is ok.
type KeyPolicy struct {
	// MaxAge is the age at which a key is overdue (0: no expiry).
	MaxAge time.Duration
	// RotationWindow is how long before MaxAge a key is due for rotation.
	RotationWindow time.Duration
	// Grace is how long past MaxAge the key still works.
	Grace time.Duration
}

// Enabled reports whether keys expire.
func (p KeyPolicy) Enabled() bool { return p.MaxAge > 0 }

// Validate checks the policy's combination; the messages name the
// oma-server flags.
func (p KeyPolicy) Validate() error {
	switch {
	case p.MaxAge < 0:
		return fmt.Errorf("--key-max-age %s must not be negative (0 turns key expiry off)", p.MaxAge)
	case p.MaxAge == 0:
		return nil
	case p.MaxAge < time.Second:
		return fmt.Errorf("--key-max-age %s: use 1s or more, like 90d (0 turns key expiry off)", p.MaxAge)
	case p.RotationWindow <= 0 || p.RotationWindow >= p.MaxAge:
		return fmt.Errorf("--key-rotation-window %s: use more than 0 and less than --key-max-age %s (default: a third of it, at most 14d)", p.RotationWindow, p.MaxAge)
	case p.Grace < 0:
		return fmt.Errorf("--key-expiry-grace %s must not be negative", p.Grace)
	}
	return nil
}

// KeyStatus is where a key stands in the policy.
type KeyStatus string

// Key statuses.
const (
	KeyOK      KeyStatus = "ok"
	KeyDue     KeyStatus = "due"
	KeyOverdue KeyStatus = "overdue"
	KeyExpired KeyStatus = "expired"
)

// KeyStatuses lists the statuses in their order.
var KeyStatuses = []KeyStatus{KeyOK, KeyDue, KeyOverdue, KeyExpired}

// KeyExpiry is a key's standing at one moment. The times are nil when the
// policy is off.
type KeyExpiry struct {
	Status KeyStatus
	Since  time.Time
	Age    time.Duration
	// RotateAfter starts the rotation window (the key is due from then).
	RotateAfter *time.Time
	// ExpiresAt is since + max age (the key is overdue from then).
	ExpiresAt *time.Time
	// RefusedAfter is since + max age + grace (the key is refused from
	// then on).
	RefusedAfter *time.Time
}

// Check returns the standing at now of a key held since since. A key is
// due at RotateAfter, overdue at ExpiresAt and expired at RefusedAfter
// (each bound inclusive).
func (p KeyPolicy) Check(since, now time.Time) KeyExpiry {
	k := KeyExpiry{Status: KeyOK, Since: since, Age: max(now.Sub(since), 0)}
	if !p.Enabled() {
		return k
	}
	rotate, expires := since.Add(p.MaxAge-p.RotationWindow), since.Add(p.MaxAge)
	refused := expires.Add(p.Grace)
	k.RotateAfter, k.ExpiresAt, k.RefusedAfter = &rotate, &expires, &refused
	switch {
	case !now.Before(refused):
		k.Status = KeyExpired
	case !now.Before(expires):
		k.Status = KeyOverdue
	case !now.Before(rotate):
		k.Status = KeyDue
	}
	return k
}

// Expired reports whether a key held since since is refused at now.
func (p KeyPolicy) Expired(since, now time.Time) bool {
	return p.Enabled() && !now.Before(since.Add(p.MaxAge+p.Grace))
}

// keySince is when an enrollment's current key became its key: the last
// rotation, else the approval (nil when neither is known).
func keySince(e *Enrollment, r *KeyRotation) *time.Time {
	if r != nil {
		t := r.RotatedAt
		return &t
	}
	return e.ApprovedAt
}

// KeyExpiryStore is the persistence the key expiry policy needs, besides
// Store and RotationStore (the SQL store implements it; the service finds
// it by a type assertion).
type KeyExpiryStore interface {
	// KeyExpiryRecorded reports whether the refusal of this enrollment's
	// key fingerprint for its age was recorded (and audited).
	KeyExpiryRecorded(ctx context.Context, enrollmentID, fingerprint string) (bool, error)
	// RotatedAt returns the time of the newest rotation of each id that
	// rotated its key at least once (one query per 500 ids).
	RotatedAt(ctx context.Context, ids []string) (map[string]time.Time, error)
}

// KeyExpiryTx is what recording an expired key does inside its
// transaction.
type KeyExpiryTx interface {
	// RecordKeyExpiry records the refusal of the key fingerprint of
	// enrollmentID unless it is recorded already, and reports whether it
	// did.
	RecordKeyExpiry(ctx context.Context, enrollmentID, fingerprint string, now time.Time) (bool, error)
}
