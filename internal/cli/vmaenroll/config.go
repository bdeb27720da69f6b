package vmaenroll

import (
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// Defaults (docs/design.md §7).
const (
	// DefaultConfigFile is read when it exists and neither --config nor
	// VMA_ENROLL_CONFIG names another file.
	DefaultConfigFile   = "/etc/vma-enroll/vma-enroll.yaml"
	DefaultConfigDir    = "/etc/vma-enroll"
	DefaultPollInterval = 30 * time.Second
	DefaultTimeout      = 30 * time.Minute
	DefaultPort         = 443
	EnvPrefix           = "VMA_ENROLL_"
)

// Config is vma-enroll's configuration.
type Config struct {
	OMA                   string        `mapstructure:"oma"`
	Code                  string        `mapstructure:"code"`
	CodeFile              string        `mapstructure:"code_file"`
	Fingerprint           string        `mapstructure:"fingerprint"`
	Name                  string        `mapstructure:"name"`
	VMAVersion            string        `mapstructure:"vma_version"`
	ConfigDir             string        `mapstructure:"config_dir"`
	PollInterval          time.Duration `mapstructure:"poll_interval"`
	Timeout               time.Duration `mapstructure:"timeout"`
	Output                string        `mapstructure:"output"`
	InsecureSkipTLSVerify bool          `mapstructure:"insecure_skip_tls_verify"`
	// Force comes from the flag only: a forgotten variable must not make
	// every boot re-enroll.
	Force bool `mapstructure:"-"`
	// File is the config file read, if any.
	File string `mapstructure:"-"`
}

// setting ties a key to its flag and environment variable.
type setting struct {
	key, flag string
	def       any
}

var settings = []setting{
	{"oma", "oma", ""},
	{"code", "code", ""},
	{"code_file", "code-file", ""},
	{"fingerprint", "fingerprint", ""},
	{"name", "name", ""},
	{"vma_version", "vma-version", ""},
	{"config_dir", "config-dir", DefaultConfigDir},
	{"poll_interval", "poll-interval", DefaultPollInterval},
	{"timeout", "timeout", DefaultTimeout},
	{"output", "output", "text"},
	{"insecure_skip_tls_verify", "insecure-skip-tls-verify", false},
}

func envName(key string) string { return EnvPrefix + strings.ToUpper(key) }

// Settings lists vma-enroll's configuration keys (for docs/configuration.md).
func Settings() []cmdutil.Setting {
	out := make([]cmdutil.Setting, len(settings))
	for i, s := range settings {
		out[i] = cmdutil.Setting{Key: s.key, Flag: s.flag, Env: envName(s.key), Default: s.def}
	}
	return out
}

// addFlags defines vma-enroll's flags; configFile is the default config
// file, read only when it exists.
func addFlags(root *cobra.Command, configFile string) {
	pf := root.PersistentFlags()
	pf.String("config-dir", DefaultConfigDir, "directory of the key, state and tunnel configuration ($VMA_ENROLL_CONFIG_DIR)")
	pf.StringP("output", "o", "text", "output format: text or json ($VMA_ENROLL_OUTPUT)")
	pf.String("config", configFile, "YAML config file, read when it exists; keys as the flags (oma, fingerprint, config_dir or config-dir, ...) ($VMA_ENROLL_CONFIG)")

	fl := root.Flags()
	fl.String("oma", "", "the OMA's address, HOST[:PORT] (port 443 by default) ($VMA_ENROLL_OMA)")
	fl.String("code", "", "the pairing code from the OMA admin, XXXX-XXXX-XXXX ($VMA_ENROLL_CODE)")
	fl.String("code-file", "", "read the pairing code from this file ($VMA_ENROLL_CODE_FILE)")
	fl.String("fingerprint", "", "the OMA's TLS key fingerprint, sha256:… as 'omactl pairing-code' prints it ($VMA_ENROLL_FINGERPRINT)")
	fl.String("name", "", "this VMA's name as the admin sees it (default: the host name) ($VMA_ENROLL_NAME)")
	fl.String("vma-version", "", "this VMA's software version, shown to the admin ($VMA_ENROLL_VMA_VERSION)")
	fl.Duration("poll-interval", DefaultPollInterval, "pause between status checks when long polls are not possible ($VMA_ENROLL_POLL_INTERVAL)")
	fl.Duration("timeout", DefaultTimeout, "how long to wait for the approval ($VMA_ENROLL_TIMEOUT)")
	fl.Bool("insecure-skip-tls-verify", false, "do not check the OMA's identity (dangerous: anyone in the path can impersonate the OMA)")
	fl.Bool("force", false, "enroll again even if this VMA is enrolled or an enrollment is waiting")
	registerCompletions(root)
}

// registerCompletions completes flag values: the fixed sets, directories
// and files where a flag names one, and nothing (no file names) for
// free-form values.
func registerCompletions(root *cobra.Command) {
	noFiles := func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	fixed := func(values ...string) cobra.CompletionFunc {
		return cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)
	}
	for name, fn := range map[string]cobra.CompletionFunc{
		"output": fixed("text\thuman-readable", "json\tone JSON object for scripts"),
		"config-dir": func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		},
		"config": func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
		},
		"oma":           noFiles,
		"code":          noFiles,
		"fingerprint":   noFiles,
		"name":          noFiles,
		"vma-version":   noFiles,
		"poll-interval": fixed("10s", "30s", "1m"),
		"timeout":       fixed("10m", "30m", "1h"),
	} {
		_ = root.RegisterFlagCompletionFunc(name, fn)
	}
}

func lookupFlag(root *cobra.Command, name string) *pflag.Flag {
	if fl := root.Flags().Lookup(name); fl != nil {
		return fl
	}
	return root.PersistentFlags().Lookup(name)
}

// loadConfig merges flags > environment > config file > defaults, binding
// every key explicitly (spf13/viper#761).
func loadConfig(root *cobra.Command) (Config, error) {
	// --config given, else VMA_ENROLL_CONFIG: must exist; else the
	// default file (the flag's default): read when it exists.
	explicit, def := "", ""
	if fl := lookupFlag(root, "config"); fl != nil {
		if fl.Changed {
			explicit = fl.Value.String()
			if explicit == "" {
				return Config{}, cmdutil.FlagErrorf("--config must name a file")
			}
		} else {
			def = fl.DefValue
		}
	}
	if explicit == "" {
		explicit = os.Getenv(EnvPrefix + "CONFIG")
	}
	v, file, err := cmdutil.LoadConfig(cmdutil.ConfigSpec{
		Settings: Settings(), Flag: func(name string) *pflag.Flag { return lookupFlag(root, name) },
		ExplicitFile: explicit, DefaultFile: def,
	})
	if err != nil {
		return Config{}, err
	}
	var cfg Config
	if err := v.Unmarshal(&cfg); err != nil {
		return Config{}, cmdutil.FlagErrorf("config: %v", err)
	}
	cfg.File = file
	if fl := lookupFlag(root, "force"); fl != nil {
		cfg.Force = fl.Value.String() == "true"
	}
	cfg.Output = strings.ToLower(strings.TrimSpace(cfg.Output))
	if cfg.Output == "table" {
		cfg.Output = "text" // omactl's spelling for what people read
	}
	cmdutil.SetOutput(root, cfg.Output) // -o json failures as JSON
	if cfg.Output != "text" && cfg.Output != "json" {
		return Config{}, cmdutil.FlagErrorf("--output %q is not one of text, json", cfg.Output)
	}
	if cfg.ConfigDir == "" {
		return Config{}, cmdutil.FlagErrorf("--config-dir must not be empty")
	}
	if cfg.PollInterval < time.Second {
		return Config{}, cmdutil.FlagErrorf("--poll-interval %s is too short: use 1s or more", cfg.PollInterval)
	}
	if cfg.Timeout <= 0 {
		return Config{}, cmdutil.FlagErrorf("--timeout must be positive, like 30m")
	}
	return cfg, nil
}
