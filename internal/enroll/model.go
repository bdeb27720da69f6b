package enroll

import (
	"encoding/json"
	"time"
)

// Status is the state of an enrollment (docs/design.md §4).
type Status string

// Enrollment states.
const (
	StatusPendingVerification Status = "pending_verification"
	StatusAwaitingApproval    Status = "awaiting_approval"
	StatusApproved            Status = "approved"
	StatusRejected            Status = "rejected"
	StatusRevoked             Status = "revoked"
	StatusExpired             Status = "expired"
)

// Statuses lists every status, in state machine order.
var Statuses = []Status{StatusPendingVerification, StatusAwaitingApproval, StatusApproved, StatusRejected, StatusRevoked, StatusExpired}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

// EventType is the type of an audit event.
type EventType string

// Audit event types: the seed's seven plus ours.
const (
	EventEnrollment           EventType = "enrollment"
	EventVerification         EventType = "verification"
	EventApproval             EventType = "approval"
	EventRejection            EventType = "rejection"
	EventConnection           EventType = "connection"
	EventDisconnection        EventType = "disconnection"
	EventRevocation           EventType = "revocation"
	EventEnrollmentFailed     EventType = "enrollment_failed"
	EventExpiry               EventType = "expiry"
	EventPairingCodeGenerated EventType = "pairing_code_generated"
	// EventAdminTokenCreated and EventAdminTokenRevoked record changes to
	// the admin credentials: the actor and the token's name, never the token.
	EventAdminTokenCreated EventType = "admin_token_created"
	EventAdminTokenRevoked EventType = "admin_token_revoked"
	// EventPairingCodeRevoked records an admin withdrawing a pairing code.
	EventPairingCodeRevoked EventType = "pairing_code_revoked"
)

// EventTypes lists every event type.
var EventTypes = []EventType{EventEnrollment, EventVerification, EventApproval, EventRejection,
	EventConnection, EventDisconnection, EventRevocation, EventEnrollmentFailed, EventExpiry, EventPairingCodeGenerated,
	EventForwardRefused, EventAdminTokenCreated, EventAdminTokenRevoked, EventPairingCodeRevoked, EventKeyRotation,
	EventOMAKeyRotation, EventKeyExpired}

// Valid reports whether t is a known event type.
func (t EventType) Valid() bool {
	for _, v := range EventTypes {
		if t == v {
			return true
		}
	}
	return false
}

// Enrollment is one VMA's request to be trusted, and its outcome.
type Enrollment struct {
	ID              string     `db:"id"`
	PairingCodeHash string     `db:"pairing_code_hash"`
	VMAPublicKey    string     `db:"vma_public_key"`
	VMAName         string     `db:"vma_name"`
	VMAVersion      string     `db:"vma_version"`
	VMAFingerprint  string     `db:"vma_fingerprint"`
	VMAIPAddress    string     `db:"vma_ip_address"`
	VMAUserAgent    string     `db:"vma_user_agent"`
	ChallengeNonce  string     `db:"challenge_nonce"` // hex; empty once used
	PollTokenHash   string     `db:"poll_token_hash"`
	Status          Status     `db:"status"`
	ApprovedBy      string     `db:"approved_by"`
	ApprovedAt      *time.Time `db:"approved_at"`
	ApprovalNotes   string     `db:"approval_notes"`
	RejectedBy      string     `db:"rejected_by"`
	RejectedAt      *time.Time `db:"rejected_at"`
	RejectionReason string     `db:"rejection_reason"`
	RevokedBy       string     `db:"revoked_by"`
	RevokedAt       *time.Time `db:"revoked_at"`
	RevocationNote  string     `db:"revocation_reason"`
	VerifiedAt      *time.Time `db:"verified_at"`
	TunnelPort      *int       `db:"tunnel_port"`
	ExpiresAt       *time.Time `db:"expires_at"`
	CreatedAt       time.Time  `db:"created_at"`
	UpdatedAt       time.Time  `db:"updated_at"`
	// PairingCodeID is the id of the code that made the enrollment ("" for
	// enrollments from before migration 0003 whose code row is gone).
	PairingCodeID string `db:"pairing_code_id"`
	// Labels are the admin's labels (copied from the code); VMALabels are
	// the ones the VMA asked for. Both hold labels.Set.Encode().
	Labels    string `db:"labels"`
	VMALabels string `db:"vma_labels"`
}

// Replacement is an approved enrollment that approving another would
// supersede, and why.
type Replacement struct {
	EnrollmentID string
	VMAName      string
	SameName     bool // the same VMA name (a re-enrollment)
	SameKey      bool // the same public key (a renamed VMA, or a clone sharing its key)
}

// PairingCode is an issued pairing code; only its hash is stored.
type PairingCode struct {
	ID                 string    `db:"id"`
	CodeHash           string    `db:"pairing_code_hash"`
	CodeHint           string    `db:"code_hint"`
	GeneratedBy        string    `db:"generated_by"`
	Note               string    `db:"note"`
	UsedByEnrollmentID *string   `db:"used_by_enrollment_id"`
	ExpiresAt          time.Time `db:"expires_at"`
	// UsedAt is set when the last use is taken (all uses spent).
	UsedAt    *time.Time `db:"used_at"`
	CreatedAt time.Time  `db:"created_at"`
	// MaxUses is how many enrollments the code allows; UseCount how many
	// it made.
	MaxUses  int `db:"max_uses"`
	UseCount int `db:"use_count"`
	// Labels (labels.Set.Encode()) are copied onto every enrollment.
	Labels string `db:"labels"`
	// AutoApprove approves each verified enrollment of the code at once,
	// when the VMA's address is inside FromCIDR (comma-separated; empty:
	// any address).
	AutoApprove bool       `db:"auto_approve"`
	FromCIDR    string     `db:"from_cidr"`
	RevokedAt   *time.Time `db:"revoked_at"`
	RevokedBy   string     `db:"revoked_by"`
}

// UsesLeft is how many more enrollments the code allows (0 once revoked).
func (pc *PairingCode) UsesLeft() int {
	if pc.RevokedAt != nil || pc.UsedAt != nil {
		return 0
	}
	return max(pc.MaxUses-pc.UseCount, 0)
}

// Connection status values of vma_active_connections.
const (
	ConnConnected    = "connected"
	ConnDisconnected = "disconnected"
	ConnRevoked      = "revoked"
)

// Connection is the tunnel state of an approved VMA.
type Connection struct {
	ID               string     `db:"id"`
	EnrollmentID     string     `db:"enrollment_id"`
	VMAName          string     `db:"vma_name"`
	VMAFingerprint   string     `db:"vma_fingerprint"`
	SSHUser          string     `db:"ssh_user"`
	ConnectionStatus string     `db:"connection_status"`
	TunnelPort       *int       `db:"tunnel_port"`
	RemoteAddr       string     `db:"remote_addr"`
	LastSeenAt       *time.Time `db:"last_seen_at"`
	ConnectedAt      *time.Time `db:"connected_at"`
	RevokedAt        *time.Time `db:"revoked_at"`
	RevokedBy        string     `db:"revoked_by"`
	CreatedAt        time.Time  `db:"created_at"`
	UpdatedAt        time.Time  `db:"updated_at"`
	// Labels and VMALabels are the enrollment's (read with the list of
	// connections, not stored with them).
	Labels    string `db:"-"`
	VMALabels string `db:"-"`
	// KeySince is when the VMA's key became its key (the approval or the
	// last rotation; read with the list). Key is its standing under the
	// key expiry policy (Service.Active sets it).
	KeySince *time.Time `db:"-"`
	Key      *KeyExpiry `db:"-"`
}

// AuditEvent is one row of the append-only, HMAC-chained audit trail.
type AuditEvent struct {
	ID             int64     `db:"id"`
	EnrollmentID   *string   `db:"enrollment_id"`
	EventType      EventType `db:"event_type"`
	VMAName        string    `db:"vma_name"`
	VMAFingerprint string    `db:"vma_fingerprint"`
	SourceIP       string    `db:"source_ip"`
	UserAgent      string    `db:"user_agent"`
	ApprovedBy     string    `db:"approved_by"` // the actor
	EventDetails   string    `db:"event_details"`
	CreatedAt      time.Time `db:"created_at"`
	PrevMAC        string    `db:"prev_mac"`
	MAC            string    `db:"mac"`
}

// Details decodes EventDetails into a map (empty map for none).
func (ev *AuditEvent) Details() map[string]any {
	m := map[string]any{}
	if ev.EventDetails != "" {
		_ = json.Unmarshal([]byte(ev.EventDetails), &m)
	}
	return m
}

// AuditFilter selects audit events. Zero values mean "any".
type AuditFilter struct {
	Since, Until *time.Time
	EventType    EventType
	EnrollmentID string
	VMAName      string
	// After and Before bound the id (exclusive), for paging.
	After, Before int64
	// Descending returns the newest first.
	Descending bool
	Limit      int
}

// EnrollmentFilter selects enrollments for lists.
type EnrollmentFilter struct {
	Statuses []Status
	VMAName  string
	IDPrefix string
	Limit    int
}

// AdminToken is an admin API credential; only its hash is stored.
type AdminToken struct {
	Name       string     `db:"name"`
	TokenHash  string     `db:"token_hash"`
	CreatedAt  time.Time  `db:"created_at"`
	LastUsedAt *time.Time `db:"last_used_at"`
	RevokedAt  *time.Time `db:"revoked_at"`
}

// Meta describes who asked: the source IP, user agent and the actor (admin
// token name) where there is one.
type Meta struct {
	SourceIP  string
	UserAgent string
	Actor     string
}
