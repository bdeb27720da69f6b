// Package docgen generates what is derived from the three command trees:
// the shell completion scripts (committed in completions/), the man pages
// (made by 'make man', not committed) and docs/configuration.md (committed).
// Its tests fail when a committed file is stale.
package docgen

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/cli/omactl"
	"github.com/oma-enroll/oma-enroll/internal/cli/omaserver"
	"github.com/oma-enroll/oma-enroll/internal/cli/vmaenroll"
)

// Roots builds the three command trees as the binaries do, writing nowhere.
func Roots() []*cobra.Command {
	ios := &cmdutil.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard, NoColor: true, DumbTerm: true}
	server := omaserver.NewRootCmd(ios)
	server.InitDefaultCompletionCmd() // as Execute would
	ctl := omactl.NewFactory(ios)
	ctl.ConfigFile = "" // not this machine's file
	roots := []*cobra.Command{server, omactl.NewRootCmd(ctl), vmaenroll.NewRootCmd(vmaenroll.NewFactory(ios))}
	for _, r := range roots {
		r.DisableAutoGenTag = true
	}
	return roots
}

// CompletionPath is where the completion script of binary for shell lives
// below completions/, named as the shell looks it up (and as 'make install'
// copies it).
func CompletionPath(binary, shell string) string {
	switch shell {
	case "zsh":
		return filepath.Join("zsh", "_"+binary)
	case "fish":
		return filepath.Join("fish", binary+".fish")
	case "powershell":
		return filepath.Join("powershell", binary+".ps1")
	}
	return filepath.Join(shell, binary)
}

// Completions returns every completion script by its path below
// completions/.
func Completions() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, root := range Roots() {
		for _, sh := range cmdutil.Shells() {
			var b bytes.Buffer
			if err := cmdutil.WriteCompletion(&b, root, sh); err != nil {
				return nil, fmt.Errorf("%s %s: %w", root.Name(), sh, err)
			}
			out[CompletionPath(root.Name(), sh)] = b.Bytes()
		}
	}
	return out, nil
}

// WriteCompletions writes the completion scripts below dir.
func WriteCompletions(dir string) error {
	files, err := Completions()
	if err != nil {
		return err
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// WriteManPages writes a section-1 man page for every command into dir
// (oma-server.1, oma-server-serve.1, …). The date is SOURCE_DATE_EPOCH's,
// else today's.
func WriteManPages(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, root := range Roots() {
		header := &doc.GenManHeader{
			Section: "1",
			Source:  "oma-enroll " + cmdutil.Version,
			Manual:  "VMA enrollment manual",
		}
		if err := doc.GenManTree(root, header, dir); err != nil {
			return fmt.Errorf("man pages of %s: %w", root.Name(), err)
		}
	}
	return nil
}

// binaryDoc describes how one binary is configured.
type binaryDoc struct {
	root     *cobra.Command
	intro    string
	example  string
	settings []cmdutil.Setting
	// setting tells whether a flag of cmd is a setting (environment and
	// file), and which; nil: only the listed settings are.
	setting func(cmd *cobra.Command, fl *pflag.Flag) (cmdutil.Setting, bool)
}

// omaServerCmdlineOnly are oma-server commands that read their flags from
// the command line only (they do not load the configuration through the
// environment and config file).
var omaServerCmdlineOnly = map[string]bool{
	"oma-server systemd-unit": true,
	"oma-server token create": true,
	"oma-server token list":   true,
	"oma-server completion":   true, // and its subcommands
	"oma-server version":      true,
}

func cmdlineOnly(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		if omaServerCmdlineOnly[c.CommandPath()] {
			return true
		}
	}
	return false
}

func binaries() []binaryDoc {
	roots := Roots()
	byName := map[string]*cobra.Command{}
	for _, r := range roots {
		byName[r.Name()] = r
	}
	return []binaryDoc{
		{
			root: byName["oma-server"],
			intro: "Config file: `--config FILE`, else `$OMA_CONFIG`, else `" + omaserver.DefaultConfigFile + "` when it exists. " +
				"Every flag of the commands that read the configuration is a key, written with underscores (`db_dsn`, as in " +
				"omactl's and vma-enroll's files; the flag's spelling `db-dsn` is accepted too), and an environment variable `OMA_` + " +
				"the key in capitals (`OMA_DB_DSN`). One file may hold the keys of all commands; a key that is no flag of any " +
				"command is a usage error (exit 2).",
			example: "data_dir: /var/lib/oma-enroll\ndb_driver: mysql\ndb_dsn: oma:secret@tcp(db.example.com:3306)/oma\npublic_host: oma.example.com\ntls_cert: /etc/oma-enroll/tls.crt\ntls_key: /etc/oma-enroll/tls.key\nlog_format: json\n",
			setting: func(cmd *cobra.Command, fl *pflag.Flag) (cmdutil.Setting, bool) {
				if fl.Name == "config" || omaserver.CmdlineOnlyFlag(fl.Name) || cmdlineOnly(cmd) {
					return cmdutil.Setting{}, false
				}
				key := cmdutil.KeyOf(fl.Name)
				return cmdutil.Setting{Key: key, Flag: fl.Name, Env: "OMA_" + strings.ToUpper(key)}, true
			},
		},
		{
			root: byName["omactl"],
			intro: "Config file: `--config FILE`, else `$OMACTL_CONFIG`, else `$XDG_CONFIG_HOME/omactl/config.yaml` " +
				"(`~/.config/omactl/config.yaml`) when it exists. Keys are written with underscores (`token_file`); the flags' " +
				"spelling (`token-file`) is accepted too. " +
				"A relative `token_file` is relative to the config file; `~/` is the home directory. " +
				"A key not listed here is a usage error (exit 2).",
			example:  "server: http://10.0.0.5:8082\ntoken_file: admin.token   # next to this file\noutput: table\n",
			settings: omactl.Settings(),
		},
		{
			root: byName["vma-enroll"],
			intro: "Config file: `--config FILE`, else `$VMA_ENROLL_CONFIG`, else `" + vmaenroll.DefaultConfigFile + "` when it exists. " +
				"Keys are written with underscores (`config_dir`); the flags' spelling (`config-dir`) is accepted too. " +
				"`--force` is deliberately a flag only: a forgotten setting must not make every boot enroll again. " +
				"A key not listed here is a usage error (exit 2).",
			example:  "oma: oma.example.com:443\nfingerprint: sha256:5f1c0e9a4b7d2c8e3f6a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e\nname: vma-frankfurt-01\nconfig_dir: /etc/vma-enroll\ntimeout: 1h\n",
			settings: vmaenroll.Settings(),
		},
	}
}

// ConfigurationDoc renders docs/configuration.md: for each binary its
// config file, its settings (key, flag, environment variable, default) and
// the flags that exist only on the command line.
func ConfigurationDoc() []byte {
	var b bytes.Buffer
	b.WriteString(`# Configuration

<!-- Generated from the commands' flags by 'make docs' (go run ./internal/cli/docgen/gendocs config docs/configuration.md). Do not edit: a test fails when this file is stale. -->

Each setting of the three programs can come from a command-line flag, an
environment variable, a YAML config file or the built-in default; the first
one present wins, in that order: **flag > environment > config file >
default**. Durations are written like ` + "`90s`, `10m`, `1h`" + `; booleans as
` + "`true`/`false`" + `. Settings whose environment variable is "-" exist only as
flags.

`)
	for _, bin := range binaries() {
		writeBinary(&b, bin)
	}
	return b.Bytes()
}

func writeBinary(b *bytes.Buffer, bin binaryDoc) {
	name := bin.root.Name()
	fmt.Fprintf(b, "## %s\n\n%s\n\n```yaml\n# example\n%s```\n\n", name, bin.intro, bin.example)

	byFlag := map[string]cmdutil.Setting{}
	for _, s := range bin.settings {
		byFlag[s.Flag] = s
	}
	lookup := func(cmd *cobra.Command, fl *pflag.Flag) (cmdutil.Setting, bool) {
		if bin.setting != nil {
			return bin.setting(cmd, fl)
		}
		s, ok := byFlag[fl.Name]
		return s, ok
	}

	// Persistent flags of the root apply to every command.
	fmt.Fprintf(b, "### Every `%s` command\n\n", name)
	writeFlags(b, bin.root, bin.root.PersistentFlags(), lookup)
	for _, cmd := range commands(bin.root) {
		fs := pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)
		cmd.NonInheritedFlags().VisitAll(func(fl *pflag.Flag) {
			if fl.Name == "help" || (cmd == bin.root && bin.root.PersistentFlags().Lookup(fl.Name) != nil) {
				return
			}
			fs.AddFlag(fl)
		})
		if !fs.HasFlags() {
			continue
		}
		fmt.Fprintf(b, "### `%s`\n\n", cmd.CommandPath())
		writeFlags(b, cmd, fs, lookup)
	}
}

// commands lists root and its subcommands, depth first, without help.
func commands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	subs := c.Commands()
	sort.SliceStable(subs, func(i, j int) bool { return subs[i].Name() < subs[j].Name() })
	for _, s := range subs {
		if s.Hidden || s.Name() == "help" {
			continue
		}
		out = append(out, commands(s)...)
	}
	return out
}

func writeFlags(b *bytes.Buffer, cmd *cobra.Command, fs *pflag.FlagSet, lookup func(*cobra.Command, *pflag.Flag) (cmdutil.Setting, bool)) {
	b.WriteString("| flag | environment | config key | default | meaning |\n|---|---|---|---|---|\n")
	fs.SortFlags = true
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Name == "help" {
			return
		}
		flag := "`--" + fl.Name + "`"
		if fl.Shorthand != "" {
			flag = "`-" + fl.Shorthand + "`, " + flag
		}
		env, key := "-", "-"
		if s, ok := lookup(cmd, fl); ok {
			env, key = "`"+s.Env+"`", "`"+s.Key+"`"
		}
		if fl.Name == "config" {
			env = "`" + configEnv(cmd.Root().Name()) + "`"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", flag, env, key, defaultOf(fl), cell(fl.Usage))
	})
	b.WriteString("\n")
}

func configEnv(binary string) string {
	switch binary {
	case "omactl":
		return "OMACTL_CONFIG"
	case "vma-enroll":
		return "VMA_ENROLL_CONFIG"
	}
	return "OMA_CONFIG"
}

func defaultOf(fl *pflag.Flag) string {
	switch {
	case fl.DefValue == "" || fl.DefValue == "[]":
		return "-"
	case fl.Value.Type() == "bool" && fl.DefValue == "false":
		return "`false`"
	}
	return "`" + fl.DefValue + "`"
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}
