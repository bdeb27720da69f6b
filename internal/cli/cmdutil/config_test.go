package cmdutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"
)

var testSettings = []Setting{
	{Key: "from_flag", Flag: "from-flag", Env: "CMDUTIL_TEST_FROM_FLAG", Default: "default"},
	{Key: "from_env", Flag: "from-env", Env: "CMDUTIL_TEST_FROM_ENV", Default: "default"},
	{Key: "from_file", Flag: "from-file", Env: "CMDUTIL_TEST_FROM_FILE", Default: "default"},
	{Key: "from_default", Flag: "from-default", Env: "CMDUTIL_TEST_FROM_DEFAULT", Default: "default"},
}

func testFlags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	for _, s := range testSettings {
		fs.String(s.Flag, "default", "")
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestLoadConfigPrecedence: flag > environment > config file > default,
// each key set in every place below its winner; the file's keys with
// underscores or dashes.
func TestLoadConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("from_flag: file\nfrom-env: file\nfrom_file: file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CMDUTIL_TEST_FROM_FLAG", "env")
	t.Setenv("CMDUTIL_TEST_FROM_ENV", "env")
	v, got, err := LoadConfig(ConfigSpec{Settings: testSettings, Flag: testFlags(t, "--from-flag", "flag").Lookup, ExplicitFile: file})
	if err != nil {
		t.Fatal(err)
	}
	if got != file {
		t.Errorf("file = %q, want %q", got, file)
	}
	for key, want := range map[string]string{"from_flag": "flag", "from_env": "env", "from_file": "file", "from_default": "default"} {
		if got := v.GetString(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
}

// TestLoadConfigErrors: an unknown key and a missing named file are
// usage errors (exit 2); a missing default file is no file.
func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte("from_flagg: x\n"), 0o600)
	var fe *FlagError
	for _, file := range []string{typo, filepath.Join(dir, "missing.yaml")} {
		if _, _, err := LoadConfig(ConfigSpec{Settings: testSettings, ExplicitFile: file}); !errors.As(err, &fe) {
			t.Errorf("%s: err %v, want a usage error", file, err)
		}
	}
	if _, file, err := LoadConfig(ConfigSpec{Settings: testSettings, DefaultFile: filepath.Join(dir, "missing.yaml")}); err != nil || file != "" {
		t.Errorf("missing default file: %q, %v", file, err)
	}
}
