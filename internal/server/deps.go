package server

import (
	"context"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/vmaauth"
)

// Service is what the handlers call: the enrollment operations of
// internal/enroll (*enroll.Service implements it), one call per request.
type Service interface {
	// Clock is the service's time, which lifetimes are measured against.
	Clock() time.Time

	// The public side: enrollment, and the VMA-authenticated endpoints
	// (vmaauth.Authorizer checks their client certificate's key).
	vmaauth.Authorizer
	Enroll(ctx context.Context, req enroll.EnrollRequest, m enroll.Meta) (*enroll.EnrollResult, error)
	Verify(ctx context.Context, id string, signature []byte, m enroll.Meta) (*enroll.Verified, error)
	Result(ctx context.Context, id, pollToken string, wait time.Duration) (*enroll.Enrollment, error)
	Self(ctx context.Context, id string) (*enroll.KeyInfo, error)
	RotateKey(ctx context.Context, req enroll.RotateKeyRequest, m enroll.Meta) (*enroll.Enrollment, error)

	// The admin side.
	AuthenticateAdmin(ctx context.Context, token string) (string, error)
	CreatePairingCode(ctx context.Context, ttl time.Duration, note string, m enroll.Meta) (*enroll.IssuedCode, error)
	CreatePairingCodeWith(ctx context.Context, opts enroll.CodeOptions, m enroll.Meta) (*enroll.IssuedCode, error)
	PairingCodes(ctx context.Context, all bool) ([]enroll.PairingCode, error)
	RevokePairingCode(ctx context.Context, id string, m enroll.Meta) (*enroll.PairingCode, error)
	Approve(ctx context.Context, id, notes string, m enroll.Meta) (*enroll.Enrollment, error)
	Reject(ctx context.Context, id, reason string, m enroll.Meta) (*enroll.Enrollment, error)
	Revoke(ctx context.Context, id, reason string, m enroll.Meta) (*enroll.Enrollment, error)
	PendingWithReplacements(ctx context.Context) ([]enroll.Enrollment, map[string][]enroll.Replacement, error)
	Enrollments(ctx context.Context, f enroll.EnrollmentFilter) ([]enroll.Enrollment, error)
	Active(ctx context.Context) ([]enroll.Connection, error)
	// KeyStandings is the key expiry standing of approved enrollments.
	KeyStandings(ctx context.Context, list []enroll.Enrollment) (map[string]enroll.KeyExpiry, error)
	Audit(ctx context.Context, f enroll.AuditFilter) ([]enroll.AuditEvent, error)
	VerifyAudit(ctx context.Context) (*enroll.ChainReport, error)
}

// Store is the part of the store the server reads itself (health checks).
// A store that also has
// SchemaVersion(ctx) (uint, bool, error) reports it in the admin health.
type Store interface {
	Ping(ctx context.Context) error
}

// Reactions are told of each approval and revocation once its transaction
// has committed, through the JSON API, the web UI or a bulk decision, and
// of approvals a pre-approving pairing code made at verification: the
// tunnel driver authorizes or de-authorizes the VMA's key there.
type Reactions interface {
	OnApprove(e *enroll.Enrollment)
	OnRevoke(e *enroll.Enrollment)
}

var _ Service = (*enroll.Service)(nil)
