package vmaenroll

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies guards the appliance binary: vma-enroll must not link
// the server, the store, SQL drivers, sqlx or migrations (docs/design.md §3).
func TestDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(gobin, "list", "-deps", "github.com/oma-enroll/oma-enroll/cmd/vma-enroll").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/jmoiron/sqlx",
		"github.com/go-sql-driver/mysql",
		"modernc.org/sqlite",
		"github.com/golang-migrate/migrate",
		"database/sql",
		"github.com/oma-enroll/oma-enroll/internal/store",
		"github.com/oma-enroll/oma-enroll/internal/server",
		"github.com/oma-enroll/oma-enroll/internal/cli/omaserver",
		"github.com/oma-enroll/oma-enroll/migrations",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range forbidden {
			if dep == bad || strings.HasPrefix(dep, bad+"/") {
				t.Errorf("vma-enroll depends on %s", dep)
			}
		}
	}
}
