package omaserver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// serveCmdWith parses args for `serve` and returns the command, ready for
// loadConfig.
func serveCmdWith(t *testing.T, args ...string) *cobra.Command {
	t.Helper()
	ios, _, _, _ := cmdutil.Test()
	root := NewRootCmd(ios)
	serve, _, err := root.Find([]string{"serve"})
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return serve
}

func TestConfigPrecedence(t *testing.T) {
	t.Setenv("OMA_CONFIG", "")
	file := filepath.Join(t.TempDir(), "oma-server.yaml")
	if err := os.WriteFile(file, []byte("admin-listen: 127.0.0.1:1003\npublic_listen: 127.0.0.1:2003\nlog_format: json\ndata-dir: /from/file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OMA_ADMIN_LISTEN", "127.0.0.1:1002")
	t.Setenv("OMA_PUBLIC_LISTEN", "127.0.0.1:2002")
	t.Setenv("OMA_DATA_DIR", "/from/env")

	cmd := serveCmdWith(t, "--config", file, "--admin-listen", "127.0.0.1:1001")
	v, err := loadConfig(cmd)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"admin-listen":  "127.0.0.1:1001",  // flag beats env and file
		"public-listen": "127.0.0.1:2002",  // env beats file
		"log-format":    "json",            // file beats default
		"data-dir":      "/from/env",       // persistent flag through env
		"tunnel-mode":   "embedded",        // default
		"db-driver":     "sqlite",          // default of a persistent flag
		"tunnel-user":   "vma_tunnel",      // default
		"nbd-target":    "127.0.0.1:10809", // default
		"public-host":   "",                // default (filled in later from the hostname)
		"ssh-host-key":  "/etc/ssh/ssh_host_ed25519_key.pub",
	} {
		if got := v.GetString(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
}

func TestConfigFileErrors(t *testing.T) {
	t.Setenv("OMA_CONFIG", "")
	dir := t.TempDir()
	bad := filepath.Join(dir, "typo.yaml")
	os.WriteFile(bad, []byte("admin-lisen: 127.0.0.1:1\n"), 0o600)
	if _, err := loadConfig(serveCmdWith(t, "--config", bad)); err == nil {
		t.Error("a config file with an unknown key was accepted")
	}
	if _, err := loadConfig(serveCmdWith(t, "--config", filepath.Join(dir, "missing.yaml"))); err == nil {
		t.Error("a missing --config file was accepted")
	}
	// A key of another subcommand (migrate/token share the file) is fine.
	shared := filepath.Join(dir, "shared.yaml")
	os.WriteFile(shared, []byte("db-driver: sqlite\nconfig-file: /etc/x.yaml\n"), 0o600)
	if _, err := loadConfig(serveCmdWith(t, "--config", shared)); err != nil {
		t.Errorf("shared keys: %v", err)
	}
}
