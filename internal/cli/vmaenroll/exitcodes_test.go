package vmaenroll

import (
	"errors"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// TestExitCodeTable: the documented exit status of each -o json status
// (docs/design.md §7), and usage errors are 2 whatever the status.
func TestExitCodeTable(t *testing.T) {
	want := map[string]int{
		StatusApproved: 0, StatusError: 1, StatusRevoked: 1, StatusRejected: 3, StatusTimeout: 4, StatusExpired: 4,
		StatusPairingCodeRejected: 5, StatusIdentityMismatch: 6, StatusInterrupted: 130,
	}
	for status, code := range want {
		if got := exitCode(status, errors.New("x")); got != code {
			t.Errorf("exitCode(%q) = %d, want %d", status, got, code)
		}
	}
	if len(exitCodes) != len(want) {
		t.Errorf("exitCodes has %d statuses, the documented table %d", len(exitCodes), len(want))
	}
	if got := exitCode(StatusError, cmdutil.FlagErrorf("--oma: bad")); got != cmdutil.ExitUsage {
		t.Errorf("usage error: exit %d, want 2", got)
	}
	if got := fail(StatusError, cmdutil.Exit(cmdutil.ExitUsage, errors.New("no answer: input ended"))).code; got != cmdutil.ExitUsage {
		t.Errorf("wizard without input: exit %d, want 2", got)
	}
}
