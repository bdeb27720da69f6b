package omactl

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// TestExitCodesCoverEveryCode: adding an error code means deciding its
// exit status in exitCodes.
func TestExitCodesCoverEveryCode(t *testing.T) {
	for _, c := range enroll.Codes() {
		if _, ok := exitCodes[c]; !ok {
			t.Errorf("exitCodes lacks %q", c)
		}
	}
}

// TestExplainKeepsTheCode: the message is reworded for a person, the
// server's code stays reachable under it and decides the exit status.
func TestExplainKeepsTheCode(t *testing.T) {
	f := &Factory{}
	f.Config.Server = "http://127.0.0.1:8082"
	apiErr := &client.APIError{Status: 409, Err: enroll.Errorf(enroll.CodeWrongState, "enrollment e1 is approved, not pending")}
	err := f.explain(fmt.Errorf("approve: %w", apiErr))
	if got := enroll.ErrorCode(err); got != enroll.CodeWrongState {
		t.Errorf("code = %q, want %q", got, enroll.CodeWrongState)
	}
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 409 {
		t.Errorf("the client.APIError is lost under %v", err)
	}
	var ee *cmdutil.ExitError
	if !errors.As(err, &ee) || ee.Code != cmdutil.ExitFailure {
		t.Errorf("exit status of %v: %+v, want %d", err, ee, cmdutil.ExitFailure)
	}
	if got := f.explain(context.Canceled); !errors.Is(got, context.Canceled) || got.Error() != "interrupted" {
		t.Errorf("explain(Canceled) = %v", got)
	}
	usage := cmdutil.FlagErrorf("bad flag")
	if got := f.explain(usage); got != usage || exitCode(got) != cmdutil.ExitUsage {
		t.Errorf("explain(FlagError) = %v (exit %d), want it unchanged (exit 2)", got, exitCode(got))
	}
}
