package omactl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
)

// Defaults of the global settings (docs/design.md §7).
const (
	DefaultServer    = "http://127.0.0.1:8082"
	DefaultTokenFile = "/var/lib/oma-enroll/admin.token"
	EnvPrefix        = "OMACTL_"
)

// DefaultConfigFile is where omactl looks for its config file when neither
// --config nor OMACTL_CONFIG names one: $XDG_CONFIG_HOME/omactl/config.yaml,
// that is ~/.config/omactl/config.yaml unless XDG_CONFIG_HOME is set. It is
// read only when it exists.
func DefaultConfigFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "omactl", "config.yaml")
}

// OutputFormats are the values of -o ("text" is also accepted, as table).
var OutputFormats = []string{"table", "wide", "json", "yaml", "name"}

// Config is omactl's global configuration.
type Config struct {
	Server    string `mapstructure:"server"`
	Token     string `mapstructure:"token"`
	TokenFile string `mapstructure:"token_file"`
	Output    string `mapstructure:"output"`
	// Fingerprint pins the admin listener's certificate (admin TLS with
	// a self-signed certificate).
	Fingerprint string `mapstructure:"fingerprint"`
	// File is the config file that was read, if any.
	File string `mapstructure:"-"`
	// Sources tells for each key where its value came from: "--flag",
	// the environment variable's name, "config file" or "default".
	Sources map[string]string `mapstructure:"-"`
}

type configFlags struct {
	configFile string
}

// settings are omactl's configuration keys, each with its flag and
// environment variable.
var settings = []cmdutil.Setting{
	{Key: "server", Flag: "server", Env: EnvPrefix + "SERVER", Default: DefaultServer},
	{Key: "token", Flag: "token", Env: EnvPrefix + "TOKEN", Default: ""},
	{Key: "token_file", Flag: "token-file", Env: EnvPrefix + "TOKEN_FILE", Default: DefaultTokenFile},
	{Key: "output", Flag: "output", Env: EnvPrefix + "OUTPUT", Default: "table"},
	{Key: "fingerprint", Flag: "fingerprint", Env: EnvPrefix + "FINGERPRINT", Default: ""},
}

// Settings lists omactl's configuration keys (for docs/configuration.md).
func Settings() []cmdutil.Setting { return append([]cmdutil.Setting(nil), settings...) }

func addConfigFlags(flags *pflag.FlagSet, cf *configFlags) {
	flags.String("server", DefaultServer, "address of the oma-server admin listener ($OMACTL_SERVER)")
	flags.String("token", "", "admin bearer token; prefer --token-file, which keeps it out of the process list ($OMACTL_TOKEN)")
	flags.String("token-file", DefaultTokenFile, "file holding the admin token ($OMACTL_TOKEN_FILE)")
	flags.StringP("output", "o", "table", "output format: table, wide (every column, nothing cut), json, yaml or name (ids only, one a line) ($OMACTL_OUTPUT)")
	flags.String("fingerprint", "", "trust the https:// admin listener whose certificate has this fingerprint (sha256:…, logged by oma-server as admin_fingerprint) instead of the system CAs ($OMACTL_FINGERPRINT)")
	flags.StringVar(&cf.configFile, "config", "", "YAML config file with keys server, token, token_file, output, fingerprint (default ~/.config/omactl/config.yaml when it exists) ($OMACTL_CONFIG)")
}

// loadConfig merges flags, environment, config file and defaults, in that
// order of precedence. Every key is bound explicitly (spf13/viper#761).
// defaultFile is read when it exists and no other file is named.
func loadConfig(flags *pflag.FlagSet, cf *configFlags, defaultFile string) (Config, error) {
	explicit := cf.configFile
	if explicit == "" {
		explicit = os.Getenv(EnvPrefix + "CONFIG")
	}
	v, file, err := cmdutil.LoadConfig(cmdutil.ConfigSpec{
		Settings: Settings(), Flag: flags.Lookup, ExplicitFile: explicit, DefaultFile: defaultFile,
		FileValues: func(file string, m map[string]any) {
			// A relative token file is relative to the config file.
			if tf, ok := m["token_file"].(string); ok && tf != "" && !filepath.IsAbs(tf) && !strings.HasPrefix(tf, "~/") {
				m["token_file"] = filepath.Join(filepath.Dir(file), tf)
			}
		},
	})
	if err != nil {
		return Config{}, err
	}
	var cfg Config
	if err := v.Unmarshal(&cfg); err != nil {
		return Config{}, cmdutil.FlagErrorf("config: %v", err)
	}
	cfg.File = file
	cfg.Sources = map[string]string{}
	for _, s := range settings {
		switch {
		case flags.Changed(s.Flag):
			cfg.Sources[s.Key] = "--" + s.Flag
		case os.Getenv(s.Env) != "": // as viper: an empty variable is unset
			cfg.Sources[s.Key] = s.Env
		case fileHas(file, s.Key, v):
			cfg.Sources[s.Key] = "config file"
		default:
			cfg.Sources[s.Key] = "default"
		}
	}
	cfg.TokenFile = cmdutil.ExpandHome(cfg.TokenFile)
	cfg.Output = strings.ToLower(strings.TrimSpace(cfg.Output))
	switch cfg.Output {
	case "text":
		cfg.Output = "table" // vma-enroll's spelling, accepted here too
	case "table", "wide", "json", "yaml", "name":
	default:
		return Config{}, cmdutil.FlagErrorf("--output %q is not one of %s", cfg.Output, strings.Join(OutputFormats, ", "))
	}
	cfg.Server = strings.TrimSpace(cfg.Server)
	if cfg.Server != "" && !strings.Contains(cfg.Server, "://") {
		scheme := "http://"
		if cfg.Fingerprint != "" {
			scheme = "https://" // a pinned certificate means TLS
		}
		cfg.Server = scheme + cfg.Server
	}
	if cfg.Fingerprint = strings.TrimSpace(cfg.Fingerprint); cfg.Fingerprint != "" {
		fp, err := client.NormalizeFingerprint(cfg.Fingerprint)
		if err != nil {
			return Config{}, cmdutil.FlagErrorf("--fingerprint: %v", err)
		}
		if !strings.HasPrefix(cfg.Server, "https://") {
			return Config{}, cmdutil.FlagErrorf("--fingerprint pins a TLS certificate, but --server %s is not https://", cfg.Server)
		}
		cfg.Fingerprint = fp
	}
	return cfg, nil
}

// fileHas reports whether the config file that was read sets key.
func fileHas(file, key string, v *viper.Viper) bool {
	return file != "" && v.InConfig(key)
}

// token returns the admin token: --token when given, else the token file.
func (c Config) token() (string, error) {
	if t := strings.TrimSpace(c.Token); t != "" {
		return t, nil
	}
	data, err := os.ReadFile(c.TokenFile)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("no admin token: %s does not exist. Pass --token-file with the admin.token that oma-server wrote into its data directory (or --token), or create one with 'oma-server token create --name NAME'", c.TokenFile)
	case errors.Is(err, fs.ErrPermission):
		return "", fmt.Errorf("cannot read the admin token %s: permission denied. Run omactl as root or as a user who may read it, or pass --token-file", c.TokenFile)
	default:
		return "", fmt.Errorf("read the admin token: %w", err)
	}
	t := strings.TrimSpace(string(data))
	if t == "" {
		return "", fmt.Errorf("the admin token file %s is empty: pass the admin.token that oma-server wrote, or create one with 'oma-server token create --name NAME'", c.TokenFile)
	}
	return t, nil
}
