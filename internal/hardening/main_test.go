package hardening_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// binDir holds oma-server, omactl and vma-enroll, built once for all tests.
var binDir string

func TestMain(m *testing.M) {
	// The idle-connection test holds 1,000 connections at both ends.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < 8192 {
		lim.Cur = min(8192, lim.Max)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	os.Exit(testbin.Main(m, &binDir, "oma-server", "omactl", "vma-enroll"))
}

func bin(name string) string { return filepath.Join(binDir, name) }
