package vmaenroll

import (
	"errors"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// Exit codes of vma-enroll (docs/design.md §7); 0, 1 and 2 are cmdutil's.
const (
	ExitRejected         = 3
	ExitTimeout          = 4
	ExitCodeRejected     = 5
	ExitIdentityMismatch = 6
	// ExitKeyRefused is the exit status of `vma-enroll tunnel` when the
	// OMA refuses this VMA's key twice in a row: the enrollment was
	// revoked or replaced, and only a new enrollment helps. An OMA host
	// key mismatch of the tunnel exits ExitIdentityMismatch, like the
	// enrollment's.
	ExitKeyRefused  = 7
	ExitInterrupted = 130
)

// exitCodes is vma-enroll's one table from the status of a run (its -o
// json "status") to the process exit status (docs/design.md §7). A usage
// error is 2 whatever its status ("error"); `vma-enroll tunnel` adds
// ExitKeyRefused.
var exitCodes = map[string]int{
	StatusApproved:            cmdutil.ExitOK,
	StatusError:               cmdutil.ExitFailure,
	StatusRevoked:             cmdutil.ExitFailure,
	StatusRejected:            ExitRejected,
	StatusTimeout:             ExitTimeout,
	StatusExpired:             ExitTimeout,
	StatusPairingCodeRejected: ExitCodeRejected,
	StatusIdentityMismatch:    ExitIdentityMismatch,
	StatusInterrupted:         ExitInterrupted,
}

// exitCode is the exit status of a run that ended with status and err.
func exitCode(status string, err error) int {
	var fe *cmdutil.FlagError
	if errors.As(err, &fe) {
		return cmdutil.ExitUsage
	}
	var ee *cmdutil.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if code, ok := exitCodes[status]; ok {
		return code
	}
	return cmdutil.ExitFailure
}
