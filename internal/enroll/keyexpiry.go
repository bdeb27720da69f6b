package enroll

import (
	"context"
	"errors"
	"time"
)

// The service's side of the key expiry policy (expiry.go has the
// arithmetic): AuthorizeTunnelKey refuses an expired key, the one check
// behind the embedded SSH endpoint, the TLS data path and the VMA
// endpoints; the openssh mode filters its authorized_keys with
// SplitExpiredKeys.

// KeyPolicy is the service's key expiry policy.
func (s *Service) KeyPolicy() KeyPolicy { return s.Config.KeyPolicy }

// KeyStanding is the standing at now of a key held since since, or nil
// when since is unknown.
func (s *Service) KeyStanding(since *time.Time, now time.Time) *KeyExpiry {
	if since == nil {
		return nil
	}
	k := s.Config.KeyPolicy.Check(*since, now)
	return &k
}

// keyRotation returns the rotation record of id, nil when it has none or
// the store keeps none.
func (s *Service) keyRotation(ctx context.Context, id string) (*KeyRotation, error) {
	rs, ok := s.Store.(RotationStore)
	if !ok {
		return nil, nil
	}
	r, err := rs.KeyRotation(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return r, err
}

// keyExpiredError is the refusal of an expired key. Only the VMA holding
// the key can see it (the TLS endpoints need the private key), and it says
// what to do.
func keyExpiredError(fp string, k KeyExpiry) error {
	return Errorf(CodeUnauthorized, "this VMA's key %s expired: it is older than the OMA's key max age plus grace (key since %s, refused from %s) and was not rotated in time; enroll again with a new pairing code (vma-enroll --force --code …)",
		fp, k.Since.Format(time.RFC3339), k.RefusedAfter.Format(time.RFC3339))
}

// recordKeyExpired audits the first refusal of the expired key fp of the
// enrollment id, once per key: a peer retrying with it reads one row and
// writes nothing. The record and its key_expired event commit together.
func (s *Service) recordKeyExpired(ctx context.Context, id, fp string, k KeyExpiry, meta Meta) error {
	es, ok := s.Store.(KeyExpiryStore)
	if !ok {
		return nil
	}
	if done, err := es.KeyExpiryRecorded(ctx, id, fp); err != nil || done {
		return err
	}
	p := s.Config.KeyPolicy
	return s.do(ctx, func(o *op) error {
		xtx, ok := o.tx.(KeyExpiryTx)
		if !ok {
			return nil
		}
		e, err := o.tx.GetEnrollment(ctx, id)
		if err != nil {
			return err
		}
		if e.Status != StatusApproved || e.VMAFingerprint != fp {
			return nil // revoked or rotated meanwhile: not this key's expiry
		}
		added, err := xtx.RecordKeyExpiry(ctx, id, fp, o.now)
		if err != nil || !added {
			return err
		}
		return o.audit(enrollmentAudit(e, EventKeyExpired, meta), map[string]any{
			"fingerprint": fp, "key_since": k.Since.Format(time.RFC3339Nano),
			"key_age_seconds": o.now.Sub(k.Since).Seconds(), "key_max_age_seconds": p.MaxAge.Seconds(),
			"key_expiry_grace_seconds": p.Grace.Seconds(), "refused_after": k.RefusedAfter.Format(time.RFC3339Nano)})
	})
}

// KeyStandings returns the standing now of the key of each approved
// enrollment in list (one query for their rotations).
func (s *Service) KeyStandings(ctx context.Context, list []Enrollment) (map[string]KeyExpiry, error) {
	since, err := keySinces(ctx, s.Store, list)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make(map[string]KeyExpiry, len(since))
	for id, t := range since {
		out[id] = s.Config.KeyPolicy.Check(t, now)
	}
	return out, nil
}

// keySinces returns the key_since of each approved enrollment of list.
func keySinces(ctx context.Context, st Store, list []Enrollment) (map[string]time.Time, error) {
	ids := make([]string, 0, len(list))
	for i := range list {
		if list[i].Status == StatusApproved {
			ids = append(ids, list[i].ID)
		}
	}
	out := make(map[string]time.Time, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rotated := map[string]time.Time{}
	if es, ok := st.(KeyExpiryStore); ok {
		var err error
		if rotated, err = es.RotatedAt(ctx, ids); err != nil {
			return nil, err
		}
	}
	for i := range list {
		e := &list[i]
		if e.Status != StatusApproved {
			continue
		}
		if t, ok := rotated[e.ID]; ok {
			out[e.ID] = t
		} else if e.ApprovedAt != nil {
			out[e.ID] = *e.ApprovedAt
		}
	}
	return out, nil
}

// SplitExpiredKeys splits approved enrollments into those whose key the
// policy p accepts at now and those it refuses (one query; none when p is
// off). It writes nothing: the openssh mode's AuthorizedKeysCommand reads
// a read-only database.
func SplitExpiredKeys(ctx context.Context, st Store, p KeyPolicy, list []Enrollment, now time.Time) (kept, expired []Enrollment, err error) {
	kept, expired, _, err = splitExpired(ctx, st, p, list, now)
	return kept, expired, err
}

func splitExpired(ctx context.Context, st Store, p KeyPolicy, list []Enrollment, now time.Time) (kept, expired []Enrollment, since map[string]time.Time, err error) {
	if !p.Enabled() {
		return list, nil, nil, nil
	}
	if since, err = keySinces(ctx, st, list); err != nil {
		return nil, nil, nil, err
	}
	kept = make([]Enrollment, 0, len(list))
	for i := range list {
		if t, ok := since[list[i].ID]; ok && p.Expired(t, now) {
			expired = append(expired, list[i])
			continue
		}
		kept = append(kept, list[i])
	}
	return kept, expired, since, nil
}

// UnexpiredKeys returns the enrollments of approved whose key the policy
// accepts now, and those it refuses, which it audits (once per key): the
// openssh mode's authorized_keys sync, which then drops their lines.
func (s *Service) UnexpiredKeys(ctx context.Context, approved []Enrollment, meta Meta) (kept, expired []Enrollment, err error) {
	now := s.now()
	kept, expired, since, err := splitExpired(ctx, s.Store, s.Config.KeyPolicy, approved, now)
	if err != nil {
		return nil, nil, err
	}
	for i := range expired {
		e := &expired[i]
		if err := s.recordKeyExpired(ctx, e.ID, e.VMAFingerprint, s.Config.KeyPolicy.Check(since[e.ID], now), meta); err != nil {
			return nil, nil, err
		}
	}
	return kept, expired, nil
}
