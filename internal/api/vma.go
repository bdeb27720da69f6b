package api

import "time"

// VMA-authenticated paths of the public listener: the VMA presents its
// enrolled Ed25519 key as a self-signed TLS client certificate (TLS 1.3;
// internal/vmaauth). See docs/rotation.md.
const (
	PathVMASelf   = "/api/v1/vma/self"
	PathVMARotate = "/api/v1/vma/rotate"
)

// VMASelf is GET /api/v1/vma/self: what the OMA knows of the VMA that asks.
type VMASelf struct {
	EnrollmentID string `json:"enrollment_id"`
	VMAName      string `json:"vma_name"`
	Status       string `json:"status"`
	// KeyFingerprint is the fingerprint of the VMA's current key.
	KeyFingerprint string `json:"key_fingerprint"`
	// AuthenticatedWith is "current" or "previous" (the key the VMA rotated
	// away from, accepted until previous_key_until).
	AuthenticatedWith string     `json:"authenticated_with"`
	KeySince          *time.Time `json:"key_since,omitempty"`
	KeyAgeSeconds     int64      `json:"key_age_seconds"`
	// KeyExpiresAt is when the current key reaches the OMA's key max age
	// (it is overdue from then); null: the OMA has no key expiry policy.
	KeyExpiresAt *time.Time `json:"key_expires_at"`
	// KeyRotateAfter starts the rotation window (vma-enroll tunnel rotates
	// from then on); KeyRefusedAfter is when the key stops being accepted
	// (max age + grace). Both null without a key expiry policy.
	KeyRotateAfter  *time.Time `json:"key_rotate_after"`
	KeyRefusedAfter *time.Time `json:"key_refused_after"`
	// KeyStatus is ok, due (inside the rotation window) or overdue (past
	// the max age, inside the grace); always ok without a policy.
	KeyStatus string `json:"key_status"`
	Rotations int    `json:"rotations"`
	// PreviousKeyFingerprint and PreviousKeyUntil are set while the
	// previous key is still accepted after a rotation.
	PreviousKeyFingerprint string     `json:"previous_key_fingerprint,omitempty"`
	PreviousKeyUntil       *time.Time `json:"previous_key_until,omitempty"`
	TunnelPort             *int       `json:"tunnel_port"`
	// ConnectionStatus is connected, disconnected, revoked or never.
	ConnectionStatus string     `json:"connection_status"`
	ConnectedAt      *time.Time `json:"connected_at,omitempty"`
	LastSeenAt       *time.Time `json:"last_seen_at,omitempty"`
	// OMAFingerprint is the SPKI pin of the OMA's current TLS certificate.
	OMAFingerprint string `json:"oma_fingerprint"`
	// OMANextFingerprint is the pin of the certificate the OMA switches to
	// at the end of a rotation's overlap (oma-server rotate tls-cert), set
	// only during the overlap: VMAs trust it beside OMAFingerprint.
	OMANextFingerprint string `json:"oma_next_fingerprint,omitempty"`
}

// VMARotateRequest is POST /api/v1/vma/rotate's body.
type VMARotateRequest struct {
	// PublicKey is the new key, an ssh-ed25519 authorized_keys line.
	PublicKey string `json:"public_key"`
	// Signature is the new key's Ed25519 signature (standard base64) of
	// "vma-key-rotation-v1\n" + enrollment_id + "\n" + current key
	// fingerprint + "\n" + new key (type and base64, no comment) + "\n" +
	// 32 bytes of the TLS exporter "EXPORTER-oma-enroll-key-rotation"
	// (no context) of this very connection.
	Signature string `json:"signature"`
}

// VMARotateResponse is POST /api/v1/vma/rotate's answer: the key swapped.
type VMARotateResponse struct {
	EnrollmentID           string    `json:"enrollment_id"`
	KeyFingerprint         string    `json:"key_fingerprint"`
	PreviousKeyFingerprint string    `json:"previous_key_fingerprint"`
	PreviousKeyUntil       time.Time `json:"previous_key_until"`
}
