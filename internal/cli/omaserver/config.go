package omaserver

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// DefaultConfigFile is read when present and --config is not given.
const DefaultConfigFile = "/etc/oma-enroll/oma-server.yaml"

// CmdlineOnlyFlag reports flags that are never read from the environment
// or the config file: --yes of migrate down, which a forgotten setting must
// not turn on.
func CmdlineOnlyFlag(name string) bool { return name == "yes" }

// loadConfig binds every flag of cmd (and its parents' persistent flags)
// to a viper key of the same name, to the environment variable OMA_<NAME>
// (dashes as underscores) and to the YAML config file, so that the
// precedence is flag > environment > config file > default.
func loadConfig(cmd *cobra.Command) (*viper.Viper, error) {
	v := viper.New()
	var bindErr error
	bind := func(f *pflag.Flag) {
		if f.Name == "help" || f.Name == "config" || CmdlineOnlyFlag(f.Name) {
			return
		}
		if err := v.BindPFlag(f.Name, f); err != nil && bindErr == nil {
			bindErr = err
		}
		env := "OMA_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if err := v.BindEnv(f.Name, env); err != nil && bindErr == nil {
			bindErr = err
		}
	}
	cmd.Flags().VisitAll(bind)
	cmd.InheritedFlags().VisitAll(bind)
	if bindErr != nil {
		return nil, bindErr
	}
	file, _ := cmd.Flags().GetString("config")
	if file == "" {
		file = os.Getenv("OMA_CONFIG")
	}
	if file == "" {
		if _, err := os.Stat(DefaultConfigFile); err != nil {
			return v, nil
		}
		file = DefaultConfigFile
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	raw := map[string]any{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", file, err)
	}
	// Keys may be spelled like the flags (db-dsn) or like omactl's and
	// vma-enroll's files (db_dsn).
	conf := make(map[string]any, len(raw))
	for k, val := range raw {
		conf[strings.ReplaceAll(strings.ToLower(k), "_", "-")] = val
	}
	if err := v.MergeConfigMap(conf); err != nil {
		return nil, fmt.Errorf("config file %s: %w", file, err)
	}
	// Keys in the file must be known flags: a typo should not pass silently.
	for _, k := range v.AllKeys() {
		if cmd.Flags().Lookup(k) == nil && cmd.InheritedFlags().Lookup(k) == nil && !knownElsewhere(cmd, k) {
			return nil, fmt.Errorf("config file %s: unknown key %q", file, k)
		}
	}
	return v, nil
}

// knownElsewhere accepts keys that belong to another subcommand's flags, so
// one file can configure serve, migrate and token alike.
func knownElsewhere(cmd *cobra.Command, key string) bool {
	root := cmd.Root()
	found := false
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup(key) != nil || c.PersistentFlags().Lookup(key) != nil {
			found = true
			return
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return found
}
