package omaserver

import (
	"errors"
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
		"admin_listen":  "127.0.0.1:1001",  // flag beats env and file
		"public_listen": "127.0.0.1:2002",  // env beats file
		"log_format":    "json",            // file beats default
		"data_dir":      "/from/env",       // persistent flag through env
		"tunnel_mode":   "embedded",        // default
		"db_driver":     "sqlite",          // default of a persistent flag
		"tunnel_user":   "vma_tunnel",      // default
		"nbd_target":    "127.0.0.1:10809", // default
		"public_host":   "",                // default (filled in later from the hostname)
		"ssh_host_key":  "/etc/ssh/ssh_host_ed25519_key.pub",
	} {
		if got := v.GetString(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
}

// TestConfigOncePerRun: the root reads the configuration before the
// command runs; an unknown key stops serve with exit 2, not systemd-unit
// (which reads none).
func TestConfigOncePerRun(t *testing.T) {
	t.Setenv("OMA_CONFIG", "")
	bad := filepath.Join(t.TempDir(), "typo.yaml")
	os.WriteFile(bad, []byte("admin-lisen: 127.0.0.1:1\n"), 0o600)
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"serve", "--config", bad}, cmdutil.ExitUsage},
		{[]string{"systemd-unit", "--config", bad}, cmdutil.ExitOK},
	} {
		ios, _, _, errOut := cmdutil.Test()
		root := NewRootCmd(ios)
		root.SetArgs(c.args)
		if code := cmdutil.Run(root, ios); code != c.code {
			t.Errorf("%v: exit %d, want %d; stderr:\n%s", c.args, code, c.code, errOut)
		}
	}
}

func TestConfigFileErrors(t *testing.T) {
	t.Setenv("OMA_CONFIG", "")
	dir := t.TempDir()
	bad := filepath.Join(dir, "typo.yaml")
	os.WriteFile(bad, []byte("admin-lisen: 127.0.0.1:1\n"), 0o600)
	var fe *cmdutil.FlagError
	if _, err := loadConfig(serveCmdWith(t, "--config", bad)); !errors.As(err, &fe) {
		t.Errorf("a config file with an unknown key: %v, want a usage error (exit 2)", err)
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
