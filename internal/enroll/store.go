package enroll

import (
	"context"
	"time"
)

// Store is the persistence the service needs. Implementations must make each
// InTx call one database transaction, retried as a whole on transient
// conflicts (deadlocks, lock waits, busy databases, unique-key races), so fn
// must not keep state between attempts.
type Store interface {
	InTx(ctx context.Context, fn func(Tx) error) error

	GetEnrollment(ctx context.Context, id string) (*Enrollment, error)
	ListEnrollments(ctx context.Context, f EnrollmentFilter) ([]Enrollment, error)
	ListConnections(ctx context.Context) ([]Connection, error)
	// ListPairingCodes lists pairing codes, newest first: all of them, or
	// only the usable ones (uses left, not expired, not revoked) at now.
	ListPairingCodes(ctx context.Context, all bool, now time.Time, limit int) ([]PairingCode, error)
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
	// AuditHead returns the id and MAC of the newest audit row as recorded
	// in the chain head (zero values when there is none).
	AuditHead(ctx context.Context) (int64, string, error)
	// ExpirableEnrollments lists ids of unfinished enrollments whose
	// expires_at is at or before now.
	ExpirableEnrollments(ctx context.Context, now time.Time, limit int) ([]string, error)
	// ApprovedByFingerprint lists approved enrollments with this key fingerprint.
	ApprovedByFingerprint(ctx context.Context, fingerprint string) ([]Enrollment, error)
	// EnrollmentStatuses returns the status of each existing id (one query).
	EnrollmentStatuses(ctx context.Context, ids []string) (map[string]Status, error)

	AdminTokenByHash(ctx context.Context, hash string) (*AdminToken, error)
	ListAdminTokens(ctx context.Context) ([]AdminToken, error)
	CountAdminTokens(ctx context.Context) (int, error)
	TouchAdminToken(ctx context.Context, name string, now time.Time) error

	Ping(ctx context.Context) error
	Close() error
}

// Tx is the set of operations available inside one transaction.
type Tx interface {
	CreatePairingCode(ctx context.Context, pc *PairingCode) error
	// ConsumePairingCode takes one use of the unexpired, unrevoked code with
	// this hash that has uses left (marking it used when that was the last),
	// and reports whether it did: of concurrent callers exactly as many win
	// as there were uses left, across instances (one conditional UPDATE).
	ConsumePairingCode(ctx context.Context, hash string, now time.Time) (bool, error)
	// PairingCodeByID returns the code with this id, locked for the rest of
	// the transaction.
	PairingCodeByID(ctx context.Context, id string) (*PairingCode, error)
	// RevokePairingCode marks the code revoked unless it already is, and
	// reports whether it did.
	RevokePairingCode(ctx context.Context, id, by string, now time.Time) (bool, error)
	// LinkPairingCode records which enrollment used the code.
	LinkPairingCode(ctx context.Context, hash, enrollmentID string) error
	PairingCodeByHash(ctx context.Context, hash string) (*PairingCode, error)

	CreateEnrollment(ctx context.Context, e *Enrollment) error
	GetEnrollment(ctx context.Context, id string) (*Enrollment, error)
	// UpdateEnrollment writes every mutable column of e, which verb v has
	// brought to v.Transition().To, where the row still has one of the
	// statuses v is allowed from, and reports whether it did.
	UpdateEnrollment(ctx context.Context, e *Enrollment, v Verb) (bool, error)
	ApprovedByName(ctx context.Context, name string) ([]Enrollment, error)
	// ApprovedByFingerprint lists approved enrollments of this key
	// fingerprint, locked for the rest of the transaction. The store
	// guarantees at most one (a unique constraint over approved keys).
	ApprovedByFingerprint(ctx context.Context, fingerprint string) ([]Enrollment, error)
	UsedTunnelPorts(ctx context.Context) ([]int, error)

	// UpsertConnection inserts or replaces the connection row of c.EnrollmentID.
	UpsertConnection(ctx context.Context, c *Connection) error
	GetConnection(ctx context.Context, enrollmentID string) (*Connection, error)

	// LockAuditHead locks the audit chain head for the rest of the
	// transaction and returns the newest id and MAC.
	LockAuditHead(ctx context.Context) (int64, string, error)
	// InsertAudit appends ev (ID and MAC set by the caller) and moves the head.
	InsertAudit(ctx context.Context, ev *AuditEvent) error

	CreateAdminToken(ctx context.Context, t *AdminToken) error
	RevokeAdminToken(ctx context.Context, name string, now time.Time) (bool, error)
}
