package browsertest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// binDir holds oma-server and vma-enroll, built once for all tests.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testbin.Main(m, &binDir, "oma-server", "vma-enroll"))
}

func bin(name string) string { return filepath.Join(binDir, name) }
