package vmaenroll

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/omatest"
)

// configWith parses args (as for `vma-enroll status`) with def as the
// default config file and returns the config.
func configWith(t *testing.T, def string, args ...string) (Config, error) {
	t.Helper()
	ios, _, _, _ := cmdutil.Test()
	f := NewFactory(ios)
	f.ConfigFile = def
	root := NewRootCmd(f)
	if err := root.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return loadConfig(root)
}

// configOf is configWith without a default config file, failing on errors.
func configOf(t *testing.T, args ...string) Config {
	t.Helper()
	cfg, err := configWith(t, "", args...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func clearEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, EnvPrefix) {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func TestConfigPrecedence(t *testing.T) {
	clearEnv(t)
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

// TestOutputTableSpelling: -o table, omactl's spelling, is -o text.
func TestOutputTableSpelling(t *testing.T) {
	clearEnv(t)
	if cfg := configOf(t, "-o", "table"); cfg.Output != "text" {
		t.Fatalf("-o table: output %q, want text", cfg.Output)
	}
	if _, err := configWith(t, "", "-o", "yaml"); err == nil {
		t.Fatal("-o yaml was accepted")
	}
}

func TestDefaultConfigFile(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	def := filepath.Join(dir, "vma-enroll.yaml")
	// Missing: no error, defaults.
	if cfg, err := configWith(t, def); err != nil || cfg.File != "" || cfg.OMA != "" {
		t.Fatalf("missing default file: %+v, %v", cfg, err)
	}
	// Present: read, keys spelled either way.
	os.WriteFile(def, []byte("oma: default.example\nconfig-dir: /default/dir\nvma_version: 2.4.1\nforce: true\n"), 0o600)
	if _, err := configWith(t, def); err == nil || !strings.Contains(err.Error(), `unknown key "force"`) {
		t.Fatalf("force in the file (a flag only) = %v, want an unknown-key error", err)
	}
	os.WriteFile(def, []byte("oma: default.example\nconfig-dir: /default/dir\nvma_version: 2.4.1\n"), 0o600)
	cfg, err := configWith(t, def)
	if err != nil || cfg.File != def || cfg.OMA != "default.example" || cfg.ConfigDir != "/default/dir" || cfg.VMAVersion != "2.4.1" {
		t.Fatalf("default file: %+v, %v", cfg, err)
	}
	// env > default file > default; flag > env
	t.Setenv("VMA_ENROLL_CONFIG_DIR", "/env/dir")
	if cfg, _ := configWith(t, def); cfg.ConfigDir != "/env/dir" || cfg.OMA != "default.example" || cfg.Timeout != DefaultTimeout {
		t.Fatalf("env over the default file: %+v", cfg)
	}
	if cfg, _ := configWith(t, def, "--config-dir", "/flag/dir"); cfg.ConfigDir != "/flag/dir" {
		t.Fatalf("flag over env: %+v", cfg)
	}
	// --config replaces the default file and must exist.
	other := filepath.Join(dir, "other.yaml")
	os.WriteFile(other, []byte("name: vma-other\n"), 0o600)
	if cfg, _ := configWith(t, def, "--config", other); cfg.File != other || cfg.OMA != "" || cfg.Name != "vma-other" {
		t.Fatalf("--config over the default file: %+v", cfg)
	}
	if _, err := configWith(t, def, "--config", filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("a missing --config file was accepted")
	}
	// A typo is an error naming the known keys.
	os.WriteFile(def, []byte("finger_print: sha256:x\n"), 0o600)
	if _, err := configWith(t, def); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("typo: %v", err)
	}
}

// TestConfigFileDrivesEnrollment enrolls with everything but the code
// from the config file.
func TestConfigFileDrivesEnrollment(t *testing.T) {
	clearEnv(t)
	oma := omatest.Start(t, omatest.Options{})
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "vma-enroll.yaml")
	os.WriteFile(cfgFile, []byte("oma: "+oma.Public()+"\nfingerprint: "+oma.Fingerprint()+"\nconfig_dir: "+filepath.Join(dir, "state")+"\nname: vma-from-file\ntimeout: 30s\n"), 0o600)
	oma.DecideWhenWaiting("approve", "")
	t.Setenv("VMA_ENROLL_CODE", oma.Code())
	r := runVE(t, "", false, "--config", cfgFile)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if list := oma.Enrollments(); len(list) != 1 || list[0].VMAName != "vma-from-file" {
		t.Fatalf("server-side enrollments: %+v", list)
	}
	if st, _ := loadState(filepath.Join(dir, "state")); st == nil || st.Status != "approved" {
		t.Fatalf("state in the configured dir: %+v", st)
	}
}
