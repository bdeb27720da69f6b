package omactl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// Defaults of the global settings (DESIGN.md §7).
const (
	DefaultServer    = "http://127.0.0.1:8082"
	DefaultTokenFile = "/var/lib/oma-enroll/admin.token"
	EnvPrefix        = "OMACTL_"
)

// Config is omactl's global configuration.
type Config struct {
	Server    string `mapstructure:"server"`
	Token     string `mapstructure:"token"`
	TokenFile string `mapstructure:"token_file"`
	Output    string `mapstructure:"output"`
	// File is the config file that was read, if any.
	File string `mapstructure:"-"`
}

type configFlags struct {
	configFile string
}

// setting ties a config key to its flag and environment variable.
type setting struct {
	key, flag, env string
	def            string
}

var settings = []setting{
	{"server", "server", EnvPrefix + "SERVER", DefaultServer},
	{"token", "token", EnvPrefix + "TOKEN", ""},
	{"token_file", "token-file", EnvPrefix + "TOKEN_FILE", DefaultTokenFile},
	{"output", "output", EnvPrefix + "OUTPUT", "table"},
}

func addConfigFlags(flags *pflag.FlagSet, cf *configFlags) {
	flags.String("server", DefaultServer, "address of the oma-server admin listener ($OMACTL_SERVER)")
	flags.String("token", "", "admin bearer token; prefer --token-file, which keeps it out of the process list ($OMACTL_TOKEN)")
	flags.String("token-file", DefaultTokenFile, "file holding the admin token ($OMACTL_TOKEN_FILE)")
	flags.StringP("output", "o", "table", "output format: table, json or yaml ($OMACTL_OUTPUT)")
	flags.StringVar(&cf.configFile, "config", "", "YAML config file with keys server, token, token_file, output ($OMACTL_CONFIG)")
}

// loadConfig merges flags, environment, config file and defaults, in that
// order of precedence. Every key is bound explicitly (spf13/viper#761).
func loadConfig(flags *pflag.FlagSet, cf *configFlags) (Config, error) {
	v := viper.New()
	for _, s := range settings {
		v.SetDefault(s.key, s.def)
		if err := v.BindEnv(s.key, s.env); err != nil {
			return Config{}, err
		}
		if err := v.BindPFlag(s.key, flags.Lookup(s.flag)); err != nil {
			return Config{}, err
		}
	}
	file := cf.configFile
	if file == "" {
		file = os.Getenv(EnvPrefix + "CONFIG")
	}
	if file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return Config{}, cmdutil.FlagErrorf("config file %s does not exist", file)
			}
			return Config{}, fmt.Errorf("read config file %s: %w", file, err)
		}
	}
	var cfg Config
	if err := v.Unmarshal(&cfg); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg.File = file
	cfg.Output = strings.ToLower(strings.TrimSpace(cfg.Output))
	switch cfg.Output {
	case "table", "json", "yaml":
	default:
		return Config{}, cmdutil.FlagErrorf("--output %q is not one of table, json, yaml", cfg.Output)
	}
	cfg.Server = strings.TrimSpace(cfg.Server)
	if cfg.Server != "" && !strings.Contains(cfg.Server, "://") {
		cfg.Server = "http://" + cfg.Server
	}
	return cfg, nil
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
