package omactl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// configAfter runs 'omactl version' with args and returns the loaded config.
func configAfter(t *testing.T, args ...string) (Config, int, string) {
	t.Helper()
	ios, _, _, errOut := cmdutil.Test()
	f := NewFactory(ios)
	f.ConfigFile = ""
	root := NewRootCmd(f)
	root.SetArgs(append(args, "version"))
	code := cmdutil.Run(root, ios)
	return f.Config, code, errOut.String()
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "omactl.yaml")
	if err := os.WriteFile(file, []byte("server: http://file:1\ntoken_file: /file/token\noutput: yaml\ntoken: filetoken\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// default
	cfg, code, _ := configAfter(t)
	if code != 0 || cfg.Server != DefaultServer || cfg.TokenFile != DefaultTokenFile || cfg.Output != "table" || cfg.Token != "" {
		t.Fatalf("defaults: %+v (exit %d)", cfg, code)
	}
	// file > default
	cfg, _, _ = configAfter(t, "--config", file)
	if cfg.Server != "http://file:1" || cfg.TokenFile != "/file/token" || cfg.Output != "yaml" || cfg.Token != "filetoken" {
		t.Fatalf("file: %+v", cfg)
	}
	// env > file
	t.Setenv("OMACTL_SERVER", "http://env:2")
	t.Setenv("OMACTL_TOKEN_FILE", "/env/token")
	cfg, _, _ = configAfter(t, "--config", file)
	if cfg.Server != "http://env:2" || cfg.TokenFile != "/env/token" || cfg.Output != "yaml" {
		t.Fatalf("env over file: %+v", cfg)
	}
	// flag > env
	cfg, _, _ = configAfter(t, "--config", file, "--server", "http://flag:3", "-o", "json")
	if cfg.Server != "http://flag:3" || cfg.TokenFile != "/env/token" || cfg.Output != "json" {
		t.Fatalf("flag over env: %+v", cfg)
	}
	// the config file may come from the environment too
	t.Setenv("OMACTL_CONFIG", file)
	t.Setenv("OMACTL_SERVER", "")
	os.Unsetenv("OMACTL_SERVER")
	cfg, _, _ = configAfter(t)
	if cfg.Server != "http://file:1" || cfg.File != file {
		t.Fatalf("OMACTL_CONFIG: %+v", cfg)
	}
	// a server without scheme is http
	cfg, _, _ = configAfter(t, "--server", "10.0.0.5:8082")
	if cfg.Server != "http://10.0.0.5:8082" {
		t.Fatalf("scheme-less server: %q", cfg.Server)
	}
	// a missing config file is a usage error
	os.Unsetenv("OMACTL_CONFIG")
	if _, code, stderr := configAfter(t, "--config", filepath.Join(dir, "nope.yaml")); code != 2 {
		t.Fatalf("missing config file: exit %d, %s", code, stderr)
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "admin.token")
	os.WriteFile(p, []byte("  tok123\n"), 0o600)
	got, err := Config{TokenFile: p}.token()
	if err != nil || got != "tok123" {
		t.Fatalf("token() = %q, %v", got, err)
	}
	got, err = Config{TokenFile: p, Token: "flagtok"}.token()
	if err != nil || got != "flagtok" {
		t.Fatalf("--token must win: %q, %v", got, err)
	}
	os.WriteFile(p, nil, 0o600)
	if _, err := (Config{TokenFile: p}).token(); err == nil {
		t.Fatal("empty token file accepted")
	}
}

func TestDefaultConfigFile(t *testing.T) {
	dir := t.TempDir()
	def := filepath.Join(dir, "config.yaml")
	run := func(args ...string) (Config, int, string) {
		t.Helper()
		ios, _, _, errOut := cmdutil.Test()
		f := NewFactory(ios)
		f.ConfigFile = def
		root := NewRootCmd(f)
		root.SetArgs(append(args, "version"))
		code := cmdutil.Run(root, ios)
		return f.Config, code, errOut.String()
	}
	// A default file that does not exist is no error.
	if cfg, code, stderr := run(); code != 0 || cfg.File != "" || cfg.Server != DefaultServer {
		t.Fatalf("no default file: exit %d %+v %s", code, cfg, stderr)
	}
	// It is read when it exists; keys may be spelled like the flags; a
	// relative token file is relative to it, ~/ is the home directory.
	os.WriteFile(def, []byte("server: http://default:1\ntoken-file: tok/admin.token\n"), 0o600)
	cfg, code, stderr := run()
	if code != 0 || cfg.File != def || cfg.Server != "http://default:1" || cfg.TokenFile != filepath.Join(dir, "tok", "admin.token") {
		t.Fatalf("default file: exit %d %+v %s", code, cfg, stderr)
	}
	t.Setenv("HOME", dir)
	os.WriteFile(def, []byte("token_file: ~/admin.token\n"), 0o600)
	if cfg, _, _ := run(); cfg.TokenFile != filepath.Join(dir, "admin.token") {
		t.Fatalf("~/ token file = %q", cfg.TokenFile)
	}
	// env > default file; flag > env
	os.WriteFile(def, []byte("server: http://default:1\noutput: yaml\n"), 0o600)
	t.Setenv("OMACTL_OUTPUT", "json")
	if cfg, _, _ := run(); cfg.Output != "json" || cfg.Server != "http://default:1" {
		t.Fatalf("env over the default file: %+v", cfg)
	}
	if cfg, _, _ := run("-o", "table"); cfg.Output != "table" {
		t.Fatalf("flag over env: %+v", cfg)
	}
	os.Unsetenv("OMACTL_OUTPUT")
	// --config replaces the default file.
	other := filepath.Join(dir, "other.yaml")
	os.WriteFile(other, []byte("output: json\n"), 0o600)
	if cfg, _, _ := run("--config", other); cfg.File != other || cfg.Server != DefaultServer || cfg.Output != "json" {
		t.Fatalf("--config over the default file: %+v", cfg)
	}
	// A typo in a key is a usage error that names the known keys.
	os.WriteFile(def, []byte("sever: http://x:1\n"), 0o600)
	if _, code, stderr := run(); code != 2 || !strings.Contains(stderr, `unknown key "sever"`) || !strings.Contains(stderr, "token_file") {
		t.Fatalf("unknown key: exit %d %s", code, stderr)
	}
	os.WriteFile(def, []byte("server: [\n"), 0o600)
	if _, code, stderr := run(); code == 0 || !strings.Contains(stderr, "not valid YAML") {
		t.Fatalf("bad YAML: exit %d %s", code, stderr)
	}
}
