package omactl

import (
	"errors"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// exitCodes is omactl's one table from the code of a failed request to the
// process exit status (docs/design.md §7, "omactl"). Every answer of the
// server that is an error is 1: the message says what to do next. Usage
// errors (cmdutil.FlagError) are 2 before any request is sent; an
// interrupt (SIGINT) kills the process, which the shell reports as 130,
// except in pending --watch and audit --follow, which end with 0.
var exitCodes = map[enroll.Code]int{
	enroll.CodeInvalidRequest:      cmdutil.ExitFailure,
	enroll.CodeInvalidPublicKey:    cmdutil.ExitFailure,
	enroll.CodeInvalidSignature:    cmdutil.ExitFailure,
	enroll.CodeUnauthorized:        cmdutil.ExitFailure,
	enroll.CodePairingCodeRejected: cmdutil.ExitFailure,
	enroll.CodeNotFound:            cmdutil.ExitFailure,
	enroll.CodeWrongState:          cmdutil.ExitFailure,
	enroll.CodeConflict:            cmdutil.ExitFailure,
	enroll.CodeUnavailable:         cmdutil.ExitFailure,
	enroll.CodeInternal:            cmdutil.ExitFailure,
	enroll.CodeBodyTooLarge:        cmdutil.ExitFailure,
	enroll.CodeRateLimited:         cmdutil.ExitFailure,
	enroll.CodeMethodNotAllowed:    cmdutil.ExitFailure,
}

// exitCode returns the exit status of err by exitCodes; errors without a
// code (network, TLS, protocol failures) are 1.
func exitCode(err error) int {
	var fe *cmdutil.FlagError
	if errors.As(err, &fe) {
		return cmdutil.ExitUsage
	}
	var ee *cmdutil.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var de *enroll.Error
	if errors.As(err, &de) {
		if code, ok := exitCodes[de.Code]; ok {
			return code
		}
	}
	return cmdutil.ExitFailure
}
