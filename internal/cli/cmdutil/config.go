package cmdutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Setting is one configuration key of a program: its name in the config
// file, its flag and its environment variable. The docs generator lists
// them (docs/configuration.md).
type Setting struct {
	Key  string // in the YAML config file, e.g. token_file
	Flag string // without dashes, e.g. token-file
	Env  string // e.g. OMACTL_TOKEN_FILE; "" or "-" for none
	// Default is the value when neither flag, environment nor file sets
	// it (nil: the flag's default, or the zero value).
	Default any
}

// ConfigSpec is what LoadConfig needs to know of a program.
type ConfigSpec struct {
	// Settings lists every key; each is bound explicitly, to its flag
	// (when Flag finds it on the command line being run) and its
	// environment variable (spf13/viper#761: Unmarshal ignores unbound
	// variables).
	Settings []Setting
	// Flag looks a setting's flag up on the command being run; nil
	// when that command lacks it.
	Flag func(name string) *pflag.Flag
	// ExplicitFile is the file named by --config or the environment: it
	// must exist. DefaultFile is read only when it exists.
	ExplicitFile, DefaultFile string
	// FileValues, when set, may rewrite the values read from File (e.g.
	// make a relative path relative to the file).
	FileValues func(file string, m map[string]any)
}

// LoadConfig is the one configuration loader of the three programs: the
// precedence is flag > environment > config file > default, and the
// config file's keys are those of Settings, written with underscores
// (canonical: token_file) or like the flags (token-file); an unknown key is
// a usage error (exit 2). It returns the merged values and the file read
// ("" for none).
func LoadConfig(spec ConfigSpec) (*viper.Viper, string, error) {
	v := viper.New()
	for _, s := range spec.Settings {
		if s.Default != nil {
			v.SetDefault(s.Key, s.Default)
		}
		if s.Env != "" && s.Env != "-" {
			if err := v.BindEnv(s.Key, s.Env); err != nil {
				return nil, "", err
			}
		}
		if spec.Flag == nil {
			continue
		}
		if fl := spec.Flag(s.Flag); fl != nil {
			if err := v.BindPFlag(s.Key, fl); err != nil {
				return nil, "", err
			}
		}
	}
	file, err := ConfigFile(spec.ExplicitFile, spec.DefaultFile)
	if err != nil {
		return nil, "", err
	}
	if file != "" {
		m, err := ReadConfigFile(file, spec.Settings)
		if err != nil {
			return nil, "", err
		}
		if spec.FileValues != nil {
			spec.FileValues(file, m)
		}
		if err := v.MergeConfigMap(m); err != nil {
			return nil, "", fmt.Errorf("config file %s: %w", file, err)
		}
	}
	return v, file, nil
}

// KeyOf is the config key of a flag: its name with underscores.
func KeyOf(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

// ConfigFile locates a program's YAML config file: the explicit one (from
// --config or the environment) must exist; the default one is read only
// when it exists. It returns "" when there is none to read.
func ConfigFile(explicit, def string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", FlagErrorf("config file %s does not exist", explicit)
			}
			return "", fmt.Errorf("config file %s: %w", explicit, err)
		}
		return explicit, nil
	}
	if def == "" {
		return "", nil
	}
	if _, err := os.Stat(def); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("config file %s: %w", def, err)
	}
	return def, nil
}

// ReadConfigFile reads a YAML config file of settings. Keys may be written
// like the flags (token-file) or with underscores (token_file); they come
// back with underscores. A key that is not one of settings is an error, so
// that a typo does not pass silently.
func ReadConfigFile(path string, settings []Setting) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	raw := map[string]any{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("config file %s is not valid YAML: %v", path, err)
	}
	known := map[string]bool{}
	for _, s := range settings {
		known[s.Key] = true
	}
	out := make(map[string]any, len(raw))
	var unknown []string
	for k, v := range raw {
		key := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(k)), "-", "_")
		if !known[key] {
			unknown = append(unknown, fmt.Sprintf("%q", k))
			continue
		}
		out[key] = v
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		keys := make([]string, 0, len(known))
		for k := range known {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, FlagErrorf("config file %s: unknown key %s (known keys: %s)", path, strings.Join(unknown, ", "), strings.Join(keys, ", "))
	}
	return out, nil
}

// ExpandHome turns a leading "~/" into the user's home directory, for paths
// written in config files (no shell expands them there).
func ExpandHome(p string) string {
	rest, ok := strings.CutPrefix(p, "~/")
	if !ok {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return filepath.Join(home, rest)
}

// annotationNoConfig marks a command that reads no configuration.
const annotationNoConfig = "cmdutil.no_config"

// NoConfig marks cmd, and the commands under it, as taking its settings
// from the command line only: a broken config file does not stop it.
func NoConfig(cmd *cobra.Command) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[annotationNoConfig] = "1"
}

// ReadsConfig reports whether cmd depends on the configuration (the root's
// PersistentPreRunE loads it once for every command, and fails the run on
// a broken one only when this is true): not help, completion, version or a
// command marked NoConfig.
func ReadsConfig(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		if c.Annotations[annotationNoConfig] != "" {
			return false
		}
		if c.HasParent() && !c.Parent().HasParent() {
			switch c.Name() {
			case "help", "completion", "version", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
				return false
			}
		}
	}
	return true
}
