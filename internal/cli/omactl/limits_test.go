package omactl

import (
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/omatest"
)

// TestNoteLimitMatchesServer: omactl and the server check a pairing code's
// note against the same limit (contract.MaxNoteBytes), so a note omactl
// lets through is one the server accepts, and one byte more is refused by
// omactl before anything is sent (it once let 256 bytes through to a
// server that took 255).
func TestNoteLimitMatchesServer(t *testing.T) {
	oma := omatest.Start(t, omatest.Options{})
	longest := strings.Repeat("n", contract.MaxNoteBytes)
	if r := runCmd(t, oma, "", false, "pairing-code", "--note", longest, "-o", "json"); r.code != cmdutil.ExitOK {
		t.Fatalf("note of %d bytes: exit %d, want 0 (the server's limit)\nstderr: %s", len(longest), r.code, r.stderr)
	}
	r := runCmd(t, oma, "", false, "pairing-code", "--note", longest+"n", "-o", "json")
	if r.code != cmdutil.ExitUsage {
		t.Fatalf("note of %d bytes: exit %d, want %d (refused by omactl)\nstderr: %s", len(longest)+1, r.code, cmdutil.ExitUsage, r.stderr)
	}
	if !strings.Contains(r.stderr, "at most 255") {
		t.Errorf("stderr = %q, want it to name the limit", r.stderr)
	}
}
