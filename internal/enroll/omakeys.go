package enroll

import (
	"context"
	"time"
)

// EventOMAKeyRotation records a step of the rotation of the OMA's own SSH
// host key or TLS certificate (oma-server rotate, docs/rotation.md).
const EventOMAKeyRotation EventType = "oma_key_rotation"

// OMA keys that rotate, and the steps of a rotation.
const (
	OMAKeySSHHost = "ssh_host_key"
	OMAKeyTLSCert = "tls_cert"

	OMARotationStarted   = "started"   // the next key is staged and announced
	OMARotationCompleted = "completed" // the next key is the current one
	OMARotationAborted   = "aborted"   // the next key was dropped
)

// OMAKeyRotation is one step of a rotation of the OMA's keys.
type OMAKeyRotation struct {
	Key   string // OMAKeySSHHost or OMAKeyTLSCert
	Phase string // OMARotationStarted, …
	// CurrentFingerprint is the key in use before the step; NextFingerprint
	// the staged one.
	CurrentFingerprint, NextFingerprint string
	// OverlapUntil is the earliest completion the rotation asked for.
	OverlapUntil *time.Time
}

// RecordOMAKeyRotation audits one step of a rotation of the OMA's keys and
// runs apply (the change to the key files) in the same transaction: when
// apply fails nothing is recorded, and the caller undoes apply when the
// commit fails.
func (s *Service) RecordOMAKeyRotation(ctx context.Context, r OMAKeyRotation, meta Meta, apply func() error) error {
	return s.do(ctx, func(o *op) error {
		details := map[string]any{"key": r.Key, "phase": r.Phase,
			"current_fingerprint": r.CurrentFingerprint, "next_fingerprint": r.NextFingerprint}
		if r.OverlapUntil != nil {
			details["overlap_until"] = r.OverlapUntil.UTC().Format(time.RFC3339)
		}
		if err := o.audit(tokenAudit(EventOMAKeyRotation, meta), details); err != nil {
			return err
		}
		if apply != nil {
			return apply()
		}
		return nil
	})
}
