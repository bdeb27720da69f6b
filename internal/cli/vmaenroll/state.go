package vmaenroll

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/atomicfile"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// StateFile is the name of the enrollment state in the config directory.
const StateFile = "enrollment.json"

// State is what enrollment.json holds: enough to resume waiting after an
// interruption, and the outcome once there is one.
type State struct {
	// OMA is the host:port the VMA enrolled through.
	OMA string `json:"oma"`
	// OMAFingerprint pins the OMA's TLS key ("sha256:<hex>").
	OMAFingerprint string `json:"oma_fingerprint,omitempty"`
	// OMANextFingerprint is the pin of the OMA's next TLS certificate,
	// announced by GET /api/v1/vma/self during a rotation (omapins.go):
	// trusted beside OMAFingerprint, and replaces it once the OMA presents it.
	OMANextFingerprint string `json:"oma_next_fingerprint,omitempty"`
	// OMANextHostKeys are the OMA's next SSH host keys (authorized_keys
	// format), announced and proved over the tunnel during a rotation:
	// trusted beside tunnel.host_key, which one replaces once the OMA
	// presents it.
	OMANextHostKeys       []string   `json:"oma_next_host_keys,omitempty"`
	InsecureSkipTLSVerify bool       `json:"insecure_skip_tls_verify,omitempty"`
	EnrollmentID          string     `json:"enrollment_id"`
	Status                string     `json:"status"`
	PollToken             string     `json:"poll_token,omitempty"`
	VMAName               string     `json:"vma_name"`
	VMAVersion            string     `json:"vma_version,omitempty"`
	VMAFingerprint        string     `json:"vma_fingerprint"`
	ExpiresAt             *time.Time `json:"expires_at,omitempty"`
	// WindowEndsAt is the end of the approval window by this VMA's clock
	// (when the answer came plus the server's expires_in_seconds), so a
	// resumed wait counts down what is really left even if the clocks
	// disagree.
	WindowEndsAt *time.Time  `json:"window_ends_at,omitempty"`
	ApprovedAt   *time.Time  `json:"approved_at,omitempty"`
	Reason       string      `json:"reason,omitempty"`
	Tunnel       *api.Tunnel `json:"tunnel,omitempty"`
	CreatedAt    time.Time   `json:"created_at"`
	UpdatedAt    time.Time   `json:"updated_at"`
}

// waiting reports whether the enrollment may still be approved.
func (s *State) waiting() bool {
	return s.Status == string(enroll.StatusAwaitingApproval) || s.Status == string(enroll.StatusPendingVerification)
}

func statePath(dir string) string { return filepath.Join(dir, StateFile) }

// loadState reads enrollment.json; it returns nil, nil when there is none.
func loadState(dir string) (*State, error) {
	data, err := os.ReadFile(statePath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the enrollment state: %w", err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s is damaged (%v): move it away, or run with --force and a new pairing code", statePath(dir), err)
	}
	return &s, nil
}

// saveState writes enrollment.json atomically, readable by root only (it
// holds the poll token while waiting).
func saveState(dir string, s *State, now time.Time) error {
	s.UpdatedAt = now.UTC()
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(statePath(dir), append(data, '\n'), 0o600)
}
