// Package api holds the wire format shared by the server and the client:
// request and response bodies, the error envelope and the mapping from
// domain error codes to HTTP statuses. It has no server code, so the
// appliance-side client can import it without linking the server.
package api

import (
	"time"

	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// Paths of the public (enrollment) listener.
// HeaderListener names the listener that answered ("admin" or "public")
// on every response of oma-server, so that a client pointed at the wrong
// one can say so instead of reporting a puzzling 404.
const HeaderListener = "X-Oma-Listener"

const (
	PathEnroll = "/api/v1/vma/enroll"
	PathVerify = "/api/v1/vma/enroll/verify"
	PathResult = "/api/v1/vma/enroll/result"
	PathHealth = "/health"
)

// Paths of the admin listener.
const (
	PathPairingCode = "/api/v1/admin/vma/pairing-code"
	PathPending     = "/api/v1/admin/vma/pending"
	PathApprove     = "/api/v1/admin/vma/approve/" // + {id}
	PathReject      = "/api/v1/admin/vma/reject/"  // + {id}
	PathActive      = "/api/v1/admin/vma/active"
	PathRevoke      = "/api/v1/admin/vma/revoke/" // + {id}
	PathAudit       = "/api/v1/admin/vma/audit"
	PathAuditVerify = "/api/v1/admin/vma/audit/verify" // extension: chain check
	PathEnrollments = "/api/v1/admin/vma/enrollments"  // extension: all enrollments, for id resolution
	PathWhoami      = "/api/v1/admin/whoami"           // extension: the token's name
	// Fleet extensions (docs/fleet.md).
	PathPairingCodes      = "/api/v1/admin/vma/pairing-codes"         // GET: list (?all=true)
	PathPairingCodeRevoke = "/api/v1/admin/vma/pairing-codes/revoke/" // + {id}, POST
	PathBulk              = "/api/v1/admin/vma/bulk/"                 // + approve|reject|revoke, POST
	PathMetrics           = "/metrics"
)

// MaxBodyBytes caps every request body.
const MaxBodyBytes = contract.MaxBodyBytes

// MaxWait is the longest long poll.
const MaxWait = contract.MaxWait

// EnrollRequest is the body of POST /api/v1/vma/enroll.
type EnrollRequest struct {
	PairingCode  string `json:"pairing_code"`
	VMAPublicKey string `json:"vma_public_key"`
	VMAName      string `json:"vma_name"`
	VMAVersion   string `json:"vma_version"`
	// VMALabels are labels the VMA asks for (vma-enroll --label); they are
	// shown to the admin as the VMA's, apart from the code's labels.
	VMALabels map[string]string `json:"vma_labels,omitempty"`
}

// EnrollResponse is the 201 answer to an enroll request.
type EnrollResponse struct {
	EnrollmentID string    `json:"enrollment_id"`
	Challenge    string    `json:"challenge"` // base64 std of 32 bytes
	Status       string    `json:"status"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// VerifyRequest is the body of POST /api/v1/vma/enroll/verify.
type VerifyRequest struct {
	EnrollmentID string `json:"enrollment_id"`
	Signature    string `json:"signature"` // base64 std of 64 bytes
}

// VerifyResponse is the 200 answer to a verify request.
type VerifyResponse struct {
	EnrollmentID string `json:"enrollment_id"`
	Status       string `json:"status"`
	PollToken    string `json:"poll_token"`
	// ExpiresAt ends the approval window; ExpiresInSeconds is what is
	// left of it by the server's clock, so that a VMA whose clock is off
	// can still count down (added fields: older servers send neither).
	ExpiresAt        *time.Time `json:"expires_at,omitempty"`
	ExpiresInSeconds *int64     `json:"expires_in_seconds,omitempty"`
}

// Forward is one allowed port forward of the tunnel.
type Forward struct {
	Listen string `json:"listen"`
	Target string `json:"target"`
}

// Tunnel is what an approved VMA needs to open its tunnel.
type Tunnel struct {
	Host           string    `json:"host"`
	Port           int       `json:"port"`
	User           string    `json:"user"`
	HostKey        string    `json:"host_key"`
	LocalForwards  []Forward `json:"local_forwards"`
	RemoteForwards []Forward `json:"remote_forwards"`
}

// ResultResponse is the answer of GET /api/v1/vma/enroll/result.
type ResultResponse struct {
	EnrollmentID string     `json:"enrollment_id"`
	Status       string     `json:"status"`
	VMAName      string     `json:"vma_name"`
	ExpiresAt    *time.Time `json:"expires_at,omitempty"`
	ApprovedAt   *time.Time `json:"approved_at,omitempty"`
	Tunnel       *Tunnel    `json:"tunnel,omitempty"`
	Reason       string     `json:"reason,omitempty"`
	// ExpiresInSeconds is what is left of the approval window by the
	// server's clock while the enrollment waits (see VerifyResponse).
	ExpiresInSeconds *int64 `json:"expires_in_seconds,omitempty"`
}

// HealthResponse is the answer of GET /health.
type HealthResponse struct {
	Status   string `json:"status"`
	Database string `json:"database,omitempty"`
	// The admin listener's health also reports these.
	SchemaVersion *uint        `json:"schema_version,omitempty"`
	SchemaDirty   bool         `json:"schema_dirty,omitempty"`
	Tunnel        *TunnelState `json:"tunnel,omitempty"`
}

// TunnelState is the tunnel endpoint's part of the admin health report.
type TunnelState struct {
	Mode string `json:"mode"`
	// LiveTunnels counts the tunnels this instance holds (embedded mode).
	LiveTunnels int `json:"live_tunnels"`
}

// PairingCodeRequest is the body of POST /api/v1/admin/vma/pairing-code.
type PairingCodeRequest struct {
	TTLSeconds int    `json:"ttl_seconds,omitempty"`
	Note       string `json:"note,omitempty"`
	// Fleet fields (docs/fleet.md); all optional.
	Uses        int               `json:"uses,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	AutoApprove bool              `json:"auto_approve,omitempty"`
	FromCIDR    string            `json:"from_cidr,omitempty"`
}

// PairingCodeResponse is the 201 answer with the only copy of the code.
type PairingCodeResponse struct {
	PairingCode    string    `json:"pairing_code"`
	ExpiresAt      time.Time `json:"expires_at"`
	OMAFingerprint string    `json:"oma_fingerprint"`
	JoinCommand    string    `json:"join_command"`
	// Added with fleets: the code's id (for list and revoke) and options.
	ID          string            `json:"id,omitempty"`
	Uses        int               `json:"uses,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	AutoApprove bool              `json:"auto_approve,omitempty"`
	FromCIDR    string            `json:"from_cidr,omitempty"`
}

// PairingCodeInfo describes an issued code without the code itself.
type PairingCodeInfo struct {
	ID          string            `json:"id"`
	CodeHint    string            `json:"code_hint,omitempty"`
	Note        string            `json:"note,omitempty"`
	CreatedBy   string            `json:"created_by"`
	CreatedAt   time.Time         `json:"created_at"`
	ExpiresAt   time.Time         `json:"expires_at"`
	Uses        int               `json:"uses"`
	UsesTaken   int               `json:"uses_taken"`
	UsesLeft    int               `json:"uses_left"`
	Labels      map[string]string `json:"labels"`
	AutoApprove bool              `json:"auto_approve"`
	FromCIDR    string            `json:"from_cidr,omitempty"`
	RevokedAt   *time.Time        `json:"revoked_at,omitempty"`
	RevokedBy   string            `json:"revoked_by,omitempty"`
	// State is usable, spent, expired or revoked.
	State string `json:"state"`
}

// PairingCodeList is the answer of GET /api/v1/admin/vma/pairing-codes.
type PairingCodeList struct {
	PairingCodes []PairingCodeInfo `json:"pairing_codes"`
}

// BulkRequest is the body of POST /api/v1/admin/vma/bulk/{action}: the
// enrollment ids, and the notes (approve) or reason (reject, revoke).
type BulkRequest struct {
	IDs    []string `json:"ids"`
	Notes  string   `json:"notes,omitempty"`
	Reason string   `json:"reason,omitempty"`
}

// BulkResult is the outcome for one id: ok with the enrollment, or the
// item's error object (and the HTTP status a single request would get).
type BulkResult struct {
	ID         string       `json:"id"`
	OK         bool         `json:"ok"`
	Status     string       `json:"status,omitempty"`
	VMAName    string       `json:"vma_name,omitempty"`
	HTTPStatus int          `json:"http_status"`
	Error      *ErrorDetail `json:"error,omitempty"`
}

// BulkResponse answers a bulk decision: one result per id, in order. It is
// 200 even when items failed; Failed counts them.
type BulkResponse struct {
	Action    string       `json:"action"`
	Results   []BulkResult `json:"results"`
	Succeeded int          `json:"succeeded"`
	Failed    int          `json:"failed"`
}

// Enrollment is the admin view of an enrollment.
type Enrollment struct {
	ID               string     `json:"id"`
	VMAName          string     `json:"vma_name"`
	VMAVersion       string     `json:"vma_version"`
	VMAFingerprint   string     `json:"vma_fingerprint"`
	VMAIPAddress     string     `json:"vma_ip_address"`
	Status           string     `json:"status"`
	ApprovedBy       string     `json:"approved_by"`
	ApprovedAt       *time.Time `json:"approved_at"`
	ApprovalNotes    string     `json:"approval_notes,omitempty"`
	RejectedBy       string     `json:"rejected_by,omitempty"`
	RejectionReason  string     `json:"rejection_reason,omitempty"`
	RevokedBy        string     `json:"revoked_by,omitempty"`
	RevokedAt        *time.Time `json:"revoked_at,omitempty"`
	RevocationReason string     `json:"revocation_reason,omitempty"`
	TunnelPort       *int       `json:"tunnel_port"`
	VerifiedAt       *time.Time `json:"verified_at,omitempty"`
	ExpiresAt        *time.Time `json:"expires_at"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
	// SourceIP is VMAIPAddress under the name every admin object uses for
	// the client's address (vma_ip_address stays for existing scripts).
	SourceIP string `json:"source_ip"`
	// PairingCodeID is the code that made the enrollment; Labels are the
	// admin's (copied from the code), VMALabels the VMA's own request.
	PairingCodeID string            `json:"pairing_code_id,omitempty"`
	Labels        map[string]string `json:"labels"`
	VMALabels     map[string]string `json:"vma_labels"`
	// The key's standing under the key expiry policy, on approved
	// enrollments only (as in the active list; absent otherwise).
	KeySince        *time.Time `json:"key_since,omitempty"`
	KeyAgeSeconds   *int64     `json:"key_age_seconds,omitempty"`
	KeyStatus       string     `json:"key_status,omitempty"`
	KeyRotateAfter  *time.Time `json:"key_rotate_after,omitempty"`
	KeyExpiresAt    *time.Time `json:"key_expires_at,omitempty"`
	KeyRefusedAfter *time.Time `json:"key_refused_after,omitempty"`
	// Replaces (pending list only) names the approved VMAs that approving
	// this enrollment revokes: the same VMA name (a re-enrollment) or the
	// same public key (a renamed VMA, or a clone sharing its key).
	Replaces []Replacement `json:"replaces,omitempty"`
}

// Replacement is an approved VMA that approving a pending one supersedes.
type Replacement struct {
	EnrollmentID string `json:"enrollment_id"`
	VMAName      string `json:"vma_name"`
	SameName     bool   `json:"same_name"`
	SameKey      bool   `json:"same_key"`
}

// EnrollmentList is the answer of the pending and enrollments lists.
type EnrollmentList struct {
	Enrollments []Enrollment `json:"enrollments"`
}

// ApproveRequest is the optional body of an approval.
type ApproveRequest struct {
	Notes string `json:"notes,omitempty"`
}

// ReasonRequest is the optional body of a rejection or revocation.
type ReasonRequest struct {
	Reason string `json:"reason,omitempty"`
}

// Connection is one row of the active list.
type Connection struct {
	EnrollmentID     string     `json:"enrollment_id"`
	VMAName          string     `json:"vma_name"`
	VMAFingerprint   string     `json:"vma_fingerprint"`
	SSHUser          string     `json:"ssh_user"`
	ConnectionStatus string     `json:"connection_status"`
	TunnelPort       *int       `json:"tunnel_port"`
	RemoteAddr       string     `json:"remote_addr,omitempty"`
	LastSeenAt       *time.Time `json:"last_seen_at"`
	ConnectedAt      *time.Time `json:"connected_at"`
	// SourceIP is the address part of RemoteAddr (the tunnel's client),
	// under the name every admin object uses for the client's address.
	SourceIP string `json:"source_ip,omitempty"`
	// Labels of the VMA's enrollment (the admin's and the VMA's).
	Labels    map[string]string `json:"labels,omitempty"`
	VMALabels map[string]string `json:"vma_labels,omitempty"`
	// The VMA's key under the key expiry policy (docs/rotation.md):
	// key_since is its approval or last rotation; key_status is ok, due,
	// overdue or expired (always ok without a policy); the three times
	// are null without a policy.
	KeySince        *time.Time `json:"key_since"`
	KeyAgeSeconds   int64      `json:"key_age_seconds"`
	KeyStatus       string     `json:"key_status"`
	KeyRotateAfter  *time.Time `json:"key_rotate_after"`
	KeyExpiresAt    *time.Time `json:"key_expires_at"`
	KeyRefusedAfter *time.Time `json:"key_refused_after"`
}

// ConnectionList is the answer of the active list.
type ConnectionList struct {
	Connections []Connection `json:"connections"`
}

// AuditEvent is one audit row.
type AuditEvent struct {
	ID             int64          `json:"id"`
	EnrollmentID   *string        `json:"enrollment_id"`
	EventType      string         `json:"event_type"`
	VMAName        string         `json:"vma_name"`
	VMAFingerprint string         `json:"vma_fingerprint"`
	SourceIP       string         `json:"source_ip"`
	UserAgent      string         `json:"user_agent"`
	ApprovedBy     string         `json:"approved_by"`
	EventDetails   map[string]any `json:"event_details"`
	CreatedAt      time.Time      `json:"created_at"`
	// Actor is ApprovedBy under a name that fits every event type: the
	// admin token that acted (approved_by stays for existing scripts).
	Actor string `json:"actor"`
}

// AuditList is the answer of the audit list; NextCursor is empty on the last page.
type AuditList struct {
	Events     []AuditEvent `json:"events"`
	NextCursor string       `json:"next_cursor"`
}

// ChainReport is the answer of the audit chain check.
type ChainReport struct {
	OK      bool   `json:"ok"`
	Checked int64  `json:"checked"`
	HeadID  int64  `json:"head_id"`
	BreakID int64  `json:"break_id,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// WhoamiResponse is the answer of GET /api/v1/admin/whoami: the name of
// the admin token that made the request (the actor of what it changes).
type WhoamiResponse struct {
	TokenName string `json:"token_name"`
}

// ErrorBody is the JSON error envelope.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries the stable code and a message a person can act on.
type ErrorDetail struct {
	Code    enroll.Code `json:"code"`
	Message string      `json:"message"`
}

// Codes that exist only at the HTTP layer: the domain's code type, so the
// one enroll.Code travels from the handler to the client's exit status.
const (
	CodeBodyTooLarge     = enroll.CodeBodyTooLarge
	CodeRateLimited      = enroll.CodeRateLimited
	CodeMethodNotAllowed = enroll.CodeMethodNotAllowed
)
