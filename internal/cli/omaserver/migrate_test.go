package omaserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// TestMigrateDownAsksFirst: migrate down drops everything, so a script
// must pass --yes and a person must type "drop"; anything else changes
// nothing.
func TestMigrateDownAsksFirst(t *testing.T) {
	isolateServerConfig(t)
	dir := t.TempDir()
	// Explicit, whatever the machine has configured (runServerCmd also
	// replaces the config file): this test drops the schema.
	db := []string{"--data-dir", dir, "--db-driver", "sqlite", "--db-dsn", filepath.Join(dir, "oma.db")}
	status := func() string {
		t.Helper()
		out, stderr, code := runServerCmd(t, append([]string{"migrate", "status"}, db...)...)
		if code != 0 {
			t.Fatalf("migrate status: exit %d\n%s", code, stderr)
		}
		return out
	}
	if _, stderr, code := runServerCmd(t, append([]string{"migrate", "up"}, db...)...); code != 0 {
		t.Fatalf("migrate up: exit %d\n%s", code, stderr)
	}
	migrated := status()
	if strings.Contains(migrated, "version 0,") {
		t.Fatalf("after up: %s", migrated)
	}

	// No terminal, no --yes: a usage error, nothing dropped.
	_, stderr, code := runServerCmd(t, append([]string{"migrate", "down"}, db...)...)
	if code != cmdutil.ExitUsage || !strings.Contains(stderr, "--yes") || !strings.Contains(stderr, "audit trail") {
		t.Fatalf("down without --yes: exit %d\n%s", code, stderr)
	}
	if got := status(); got != migrated {
		t.Fatalf("after a refused down: %s, want %s", got, migrated)
	}

	// A terminal: anything but "drop" cancels.
	tty := func(answer string) (string, int) {
		ios, in, _, errOut := cmdutil.Test()
		ios.InTTY, ios.ErrTTY = true, true
		in.WriteString(answer)
		root := NewRootCmd(ios)
		empty := filepath.Join(t.TempDir(), "empty.yaml")
		os.WriteFile(empty, nil, 0o600)
		root.SetArgs(append([]string{"migrate", "down", "--config", empty}, db...))
		code := cmdutil.Run(root, ios)
		return errOut.String(), code
	}
	if stderr, code := tty("y\n"); code != cmdutil.ExitFailure || !strings.Contains(stderr, `Type "drop"`) || !strings.Contains(stderr, "cancelled") {
		t.Fatalf("down answered y: exit %d\n%s", code, stderr)
	}
	if got := status(); got != migrated {
		t.Fatalf("after a cancelled down: %s, want %s", got, migrated)
	}
	if stderr, code := tty("drop\n"); code != 0 {
		t.Fatalf("down answered drop: exit %d\n%s", code, stderr)
	}
	if got := status(); !strings.Contains(got, "version 0,") {
		t.Fatalf("after down: %s", got)
	}

	// --yes, for scripts.
	runServerCmd(t, append([]string{"migrate", "up"}, db...)...)
	if _, stderr, code := runServerCmd(t, append([]string{"migrate", "down", "--yes"}, db...)...); code != 0 || !strings.Contains(status(), "version 0,") {
		t.Fatalf("down --yes: exit %d\n%s", code, stderr)
	}
}
