package vmaenroll

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// configOf parses args (as for `vma-enroll status`) and returns the config.
func configOf(t *testing.T, args ...string) Config {
	t.Helper()
	ios, _, _, _ := cmdutil.Test()
	root := NewRootCmd(NewFactory(ios))
	if err := root.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestConfigPrecedence(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, EnvPrefix) {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	file := filepath.Join(t.TempDir(), "vma-enroll.yaml")
	os.WriteFile(file, []byte("oma: file.example:8443\nconfig_dir: /file/dir\ntimeout: 5m\npoll_interval: 10s\nfingerprint: sha256:file\n"), 0o600)

	cfg := configOf(t)
	if cfg.OMA != "" || cfg.ConfigDir != DefaultConfigDir || cfg.Timeout != DefaultTimeout || cfg.PollInterval != DefaultPollInterval || cfg.Output != "text" {
		t.Fatalf("defaults: %+v", cfg)
	}
	cfg = configOf(t, "--config", file)
	if cfg.OMA != "file.example:8443" || cfg.ConfigDir != "/file/dir" || cfg.Timeout != 5*time.Minute || cfg.PollInterval != 10*time.Second {
		t.Fatalf("file: %+v", cfg)
	}
	t.Setenv("VMA_ENROLL_OMA", "env.example")
	t.Setenv("VMA_ENROLL_TIMEOUT", "7m")
	t.Setenv("VMA_ENROLL_CODE", "env-code")
	t.Setenv("VMA_ENROLL_INSECURE_SKIP_TLS_VERIFY", "true")
	cfg = configOf(t, "--config", file)
	if cfg.OMA != "env.example" || cfg.Timeout != 7*time.Minute || cfg.ConfigDir != "/file/dir" || cfg.Code != "env-code" || !cfg.InsecureSkipTLSVerify {
		t.Fatalf("env over file: %+v", cfg)
	}
	cfg = configOf(t, "--config", file, "--oma", "flag.example", "--config-dir", "/flag/dir", "--force")
	if cfg.OMA != "flag.example" || cfg.ConfigDir != "/flag/dir" || cfg.Timeout != 7*time.Minute || !cfg.Force {
		t.Fatalf("flag over env: %+v", cfg)
	}
	t.Setenv("VMA_ENROLL_CONFIG", file)
	cfg = configOf(t)
	if cfg.File != file || cfg.PollInterval != 10*time.Second {
		t.Fatalf("VMA_ENROLL_CONFIG: %+v", cfg)
	}
}
