package omaserver

import (
	"context"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// DefaultConfigFile is read when present and --config is not given.
const DefaultConfigFile = "/etc/oma-enroll/oma-server.yaml"

// CmdlineOnlyFlag reports flags that are never read from the environment
// or the config file: --yes of migrate down, and the steps of rotate
// (--complete, --abort, --force, --cert, --key), which a forgotten setting
// must not turn on.
func CmdlineOnlyFlag(name string) bool {
	switch name {
	case "yes", "complete", "abort", "force", "cert", "key":
		return true
	}
	return false
}

// Settings lists oma-server's configuration keys: every flag of every
// subcommand (one file configures serve, migrate and token alike), keyed
// by its name with underscores (db_dsn; db-dsn is accepted too), read from
// OMA_<KEY> in the environment. --config, --help and the command-line-only
// flags are not settings.
func Settings(root *cobra.Command) []cmdutil.Setting {
	var out []cmdutil.Setting
	seen := map[string]bool{}
	add := func(f *pflag.Flag) {
		if f.Name == "help" || f.Name == "config" || CmdlineOnlyFlag(f.Name) || seen[f.Name] {
			return
		}
		seen[f.Name] = true
		key := cmdutil.KeyOf(f.Name)
		out = append(out, cmdutil.Setting{Key: key, Flag: f.Name, Env: "OMA_" + strings.ToUpper(key)})
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.PersistentFlags().VisitAll(add)
		c.LocalNonPersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

type configKey struct{}

// readConfig is the root's PersistentPreRunE: it reads the configuration
// once per run, for the command that runs, and hands it on in the
// command's context (config).
func readConfig(cmd *cobra.Command, _ []string) error {
	if !cmdutil.ReadsConfig(cmd) {
		return nil
	}
	v, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	cmd.SetContext(context.WithValue(ctx, configKey{}, v))
	return nil
}

// config returns the configuration readConfig read for cmd (read here
// when cmd runs without its root, as in a test).
func config(cmd *cobra.Command) (*viper.Viper, error) {
	if ctx := cmd.Context(); ctx != nil {
		if v, ok := ctx.Value(configKey{}).(*viper.Viper); ok {
			return v, nil
		}
	}
	return loadConfig(cmd)
}

// loadConfig reads the settings of cmd through cmdutil.LoadConfig: flag >
// environment (OMA_<KEY>) > config file > default, keys with underscores.
func loadConfig(cmd *cobra.Command) (*viper.Viper, error) {
	file, _ := cmd.Flags().GetString("config")
	if file == "" {
		file = os.Getenv("OMA_CONFIG")
	}
	v, _, err := cmdutil.LoadConfig(cmdutil.ConfigSpec{
		Settings: Settings(cmd.Root()),
		Flag: func(name string) *pflag.Flag {
			if f := cmd.Flags().Lookup(name); f != nil {
				return f
			}
			return cmd.InheritedFlags().Lookup(name)
		},
		ExplicitFile: file, DefaultFile: DefaultConfigFile,
	})
	return v, err
}
