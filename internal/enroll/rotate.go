package enroll

import (
	"context"
	"crypto/ed25519"
	"errors"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// EventKeyRotation records a VMA's key rotation: the enrollment row holds
// the new key, the details both fingerprints.
const EventKeyRotation EventType = "key_rotation"

// DefaultRotationGrace is how long the OMA still accepts a VMA's previous
// key after a rotation, unless the VMA authenticates with the new one
// first (oma-server --rotation-grace).
const DefaultRotationGrace = 10 * time.Minute

// RotationPrefix starts the message a VMA signs with its new key to prove
// possession of it.
const RotationPrefix = "vma-key-rotation-v1\n"

// RotationExporterLabel is the TLS exporter label (RFC 8446 §7.5) of the
// rotation's channel binding: the 32 bytes the VMA signs are unique to the
// mTLS connection the request arrives on, so a recorded request proves
// nothing on any other connection (a replay gains nothing).
const RotationExporterLabel = "EXPORTER-oma-enroll-key-rotation"

// maxRotationKeyLen bounds the new key's line before it is parsed.
const maxRotationKeyLen = 1024

// RotationBindingSize is the length of the channel binding.
const RotationBindingSize = 32

// RotationMessage is the exact byte string the new key signs: the prefix,
// the enrollment id, the current key's fingerprint, the new key (its
// authorized_keys form without comment) and the connection's channel
// binding, one per line.
func RotationMessage(enrollmentID, oldFingerprint, newKey string, binding []byte) []byte {
	msg := make([]byte, 0, len(RotationPrefix)+len(enrollmentID)+len(oldFingerprint)+len(newKey)+3+len(binding))
	msg = append(msg, RotationPrefix...)
	msg = append(msg, enrollmentID...)
	msg = append(msg, '\n')
	msg = append(msg, oldFingerprint...)
	msg = append(msg, '\n')
	msg = append(msg, newKey...)
	msg = append(msg, '\n')
	return append(msg, binding...)
}

// KeyRotation is the newest key rotation of an enrollment.
type KeyRotation struct {
	EnrollmentID        string `db:"enrollment_id"`
	PreviousPublicKey   string `db:"previous_public_key"`
	PreviousFingerprint string `db:"previous_fingerprint"`
	// PreviousUntil is the end of the previous key's grace; nil once the
	// VMA authenticated with the new key.
	PreviousUntil *time.Time `db:"previous_until"`
	Rotations     int        `db:"rotations"`
	RotatedAt     time.Time  `db:"rotated_at"`
}

// RotationStore is the persistence key rotation needs, besides Store. The
// SQL store implements it; the service finds it by a type assertion, so
// that Store stays as it is.
type RotationStore interface {
	// KeyRotation returns the rotation record of an enrollment, or
	// ErrNotFound.
	KeyRotation(ctx context.Context, enrollmentID string) (*KeyRotation, error)
	// RotationsByPreviousFingerprint lists the records whose previous key
	// has this fingerprint and is still in its grace at now.
	RotationsByPreviousFingerprint(ctx context.Context, fingerprint string, now time.Time) ([]KeyRotation, error)
	// EndKeyGrace ends the previous key's grace of an enrollment.
	EndKeyGrace(ctx context.Context, enrollmentID string) error
	// EnrollmentKeys returns the status and key fingerprint of each
	// existing id (one query).
	EnrollmentKeys(ctx context.Context, ids []string) (map[string]KeyState, error)
}

// KeyState is an enrollment's status and current key.
type KeyState struct {
	Status      Status
	Fingerprint string
	// KeySince is when the key became the enrollment's (nil: unknown).
	KeySince *time.Time
	// Expired: the key expiry policy refuses the key now (TunnelKeyStates
	// sets it; the tunnel endpoint then closes the VMA's tunnels).
	Expired bool
}

// TunnelKeyStates returns the status and current key fingerprint of each
// existing id, for the tunnel endpoint's re-check (an empty Fingerprint
// when the store cannot tell: then only the status is checked).
func (s *Service) TunnelKeyStates(ctx context.Context, ids []string) (map[string]KeyState, error) {
	if len(ids) == 0 {
		return map[string]KeyState{}, nil
	}
	if rs, ok := s.Store.(RotationStore); ok {
		st, err := rs.EnrollmentKeys(ctx, ids)
		if err != nil || !s.Config.KeyPolicy.Enabled() {
			return st, err
		}
		now := s.now()
		for id, ks := range st {
			if ks.Status != StatusApproved || ks.KeySince == nil {
				continue
			}
			if k := s.Config.KeyPolicy.Check(*ks.KeySince, now); k.Status == KeyExpired {
				ks.Expired = true
				st[id] = ks
				if err := s.recordKeyExpired(ctx, id, ks.Fingerprint, k, Meta{}); err != nil {
					s.Log.Warn("could not record an expired VMA key", "enrollment_id", id, "err", err)
				}
			}
		}
		return st, nil
	}
	st, err := s.Store.EnrollmentStatuses(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]KeyState, len(st))
	for id, v := range st {
		out[id] = KeyState{Status: v}
	}
	return out, nil
}

// RotationTx is what a rotation does inside its transaction.
type RotationTx interface {
	// SetEnrollmentKey replaces the key of the approved enrollment id whose
	// key still has oldFingerprint, and reports whether it did.
	SetEnrollmentKey(ctx context.Context, id, oldFingerprint, newKey, newFingerprint string, now time.Time) (bool, error)
	// KeyRotation returns the (locked) record of id, or ErrNotFound.
	KeyRotation(ctx context.Context, enrollmentID string) (*KeyRotation, error)
	// PutKeyRotation inserts or replaces the record of r.EnrollmentID.
	PutKeyRotation(ctx context.Context, r *KeyRotation) error
}

func (s *Service) rotationGrace() time.Duration {
	if s.Config.RotationGrace > 0 {
		return s.Config.RotationGrace
	}
	return DefaultRotationGrace
}

// authorizePreviousKey finds the approved enrollment whose previous key
// (rotated away, still in its grace) is canon.
func (s *Service) authorizePreviousKey(ctx context.Context, fp, canon string) (*TunnelIdentity, error) {
	rs, ok := s.Store.(RotationStore)
	if !ok {
		return nil, nil
	}
	list, err := rs.RotationsByPreviousFingerprint(ctx, fp, s.now())
	if err != nil {
		return nil, err
	}
	for _, r := range list {
		if r.PreviousPublicKey != canon {
			continue
		}
		e, err := s.Store.GetEnrollment(ctx, r.EnrollmentID)
		if errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		if e.Status == StatusApproved && e.TunnelPort != nil {
			return &TunnelIdentity{EnrollmentID: e.ID, VMAName: e.VMAName, Fingerprint: fp, TunnelPort: *e.TunnelPort, PreviousKey: true}, nil
		}
	}
	return nil, nil
}

// endGraceOnNewKey ends the previous key's grace once the VMA
// authenticated with its current key (the rotated one): from then on only
// the new key works.
// r is the enrollment's rotation record (nil: none).
func (s *Service) endGraceOnNewKey(ctx context.Context, r *KeyRotation) error {
	rs, ok := s.Store.(RotationStore)
	if !ok || r == nil || r.PreviousUntil == nil {
		return nil
	}
	return rs.EndKeyGrace(ctx, r.EnrollmentID)
}

// KeyInfo is what a VMA learns about itself (GET /api/v1/vma/self).
type KeyInfo struct {
	Enrollment *Enrollment
	Connection *Connection // nil: never connected
	Rotation   *KeyRotation
	// KeySince is when the current key became this VMA's: its approval or
	// its last rotation.
	KeySince *time.Time
	// Key is the current key's standing under the key expiry policy (nil
	// when KeySince is).
	Key *KeyExpiry
}

// Self returns what an authenticated VMA may know about its enrollment.
func (s *Service) Self(ctx context.Context, id string) (*KeyInfo, error) {
	e, err := s.Store.GetEnrollment(ctx, id)
	if err != nil {
		return nil, err
	}
	info := &KeyInfo{Enrollment: e, KeySince: e.ApprovedAt}
	conns, err := s.Store.ListConnections(ctx)
	if err != nil {
		return nil, err
	}
	for i := range conns {
		if conns[i].EnrollmentID == id {
			info.Connection = &conns[i]
			break
		}
	}
	if rs, ok := s.Store.(RotationStore); ok {
		r, err := rs.KeyRotation(ctx, id)
		if err == nil {
			info.Rotation = r
			t := r.RotatedAt
			info.KeySince = &t
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	info.Key = s.KeyStanding(info.KeySince, s.now())
	return info, nil
}

// RotateKeyRequest is a VMA's request to replace its key.
type RotateKeyRequest struct {
	EnrollmentID string
	// CurrentFingerprint is the fingerprint of the key the request was
	// authenticated with (the TLS client certificate).
	CurrentFingerprint string
	// NewPublicKey is the new key, an ssh-ed25519 authorized_keys line.
	NewPublicKey string
	// Signature is the new key's signature of RotationMessage.
	Signature []byte
	// Binding is the connection's channel binding (the TLS exporter).
	Binding []byte
}

// RotateKey replaces an approved VMA's key with a new one it proved to
// hold, in one transaction with a key_rotation audit event. The request
// must be authenticated with the current key (not the previous one in its
// grace): of two concurrent rotations from one key exactly one wins, the
// other gets wrong_state. A key approved under another enrollment is
// refused (conflict: one key, one VMA); a revoked enrollment gets
// unauthorized.
func (s *Service) RotateKey(ctx context.Context, req RotateKeyRequest, meta Meta) (*Enrollment, error) {
	if len(req.Binding) != RotationBindingSize {
		return nil, Errorf(CodeInvalidRequest, "key rotation needs a TLS 1.3 connection (no channel binding)")
	}
	if len(req.NewPublicKey) > maxRotationKeyLen {
		return nil, Errorf(CodeInvalidPublicKey, "public_key is longer than %d bytes", maxRotationKeyLen)
	}
	pub, canon, err := sshkey.ParseAuthorizedKey(req.NewPublicKey)
	if err != nil {
		return nil, Errorf(CodeInvalidPublicKey, "public_key: %v", err)
	}
	if len(req.Signature) != ed25519.SignatureSize ||
		!ed25519.Verify(pub, RotationMessage(req.EnrollmentID, req.CurrentFingerprint, canon, req.Binding), req.Signature) {
		return nil, Errorf(CodeInvalidSignature, "the signature does not verify with the new key: sign the rotation message of this connection with the new key")
	}
	newFP := sshkey.Fingerprint(pub)
	if newFP == req.CurrentFingerprint {
		return nil, Errorf(CodeInvalidRequest, "the new key is the current key: make a new key to rotate to")
	}
	grace := s.rotationGrace()
	var out *Enrollment
	err = s.do(ctx, func(o *op) error {
		rtx, ok := o.tx.(RotationTx)
		if !ok {
			return Errorf(CodeInternal, "this store does not support key rotation")
		}
		e, err := o.tx.GetEnrollment(ctx, req.EnrollmentID)
		if err != nil {
			return err
		}
		if e.Status != StatusApproved {
			return Errorf(CodeUnauthorized, "enrollment %s is %s: a key is rotated only while approved", e.ID, e.Status)
		}
		if e.VMAFingerprint != req.CurrentFingerprint {
			return Errorf(CodeWrongState, "the key %s is no longer this VMA's current key (it was rotated meanwhile): use the current key", req.CurrentFingerprint)
		}
		holders, err := o.tx.ApprovedByFingerprint(ctx, newFP)
		if err != nil {
			return err
		}
		if len(holders) > 0 {
			return Errorf(CodeConflict, "the key %s is approved under another enrollment (one key, one VMA): make a new key", newFP)
		}
		oldKey, oldFP := e.VMAPublicKey, e.VMAFingerprint
		done, err := rtx.SetEnrollmentKey(ctx, e.ID, oldFP, canon, newFP, o.now)
		if err != nil {
			return err
		}
		if !done {
			return Errorf(CodeWrongState, "the key of enrollment %s changed meanwhile: use the current key", e.ID)
		}
		n := 0
		if prev, err := rtx.KeyRotation(ctx, e.ID); err == nil {
			n = prev.Rotations
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		until := o.now.Add(grace)
		if err := rtx.PutKeyRotation(ctx, &KeyRotation{EnrollmentID: e.ID, PreviousPublicKey: oldKey, PreviousFingerprint: oldFP,
			PreviousUntil: &until, Rotations: n + 1, RotatedAt: o.now}); err != nil {
			return err
		}
		if c, err := o.tx.GetConnection(ctx, e.ID); err == nil {
			c.VMAFingerprint = newFP
			c.UpdatedAt = o.now
			if err := o.tx.UpsertConnection(ctx, c); err != nil {
				return err
			}
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		e.VMAPublicKey, e.VMAFingerprint, e.UpdatedAt = canon, newFP, o.now
		out = e
		return o.audit(enrollmentAudit(e, EventKeyRotation, meta), map[string]any{
			"old_fingerprint": oldFP, "new_fingerprint": newFP,
			"previous_key_grace_seconds": grace.Seconds(), "rotation": n + 1})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
