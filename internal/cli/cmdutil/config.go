package cmdutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Setting is one configuration key of a program: its name in the config
// file, its flag and its environment variable. The docs generator lists
// them (docs/configuration.md).
type Setting struct {
	Key  string // in the YAML config file, e.g. token_file
	Flag string // without dashes, e.g. token-file
	Env  string // e.g. OMACTL_TOKEN_FILE
}

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
