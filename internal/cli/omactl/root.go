// Package omactl is the command tree of omactl, the OMA admin's tool:
// pairing codes, the pending list, approve, reject, the active list, revoke,
// the audit trail, one enrollment's page (get, describe) and the list of
// all (list), as tables for people and JSON, YAML or ids for scripts.
package omactl

import (
	"context"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
)

// Factory carries what every command needs: the streams, the clock, the
// loaded configuration and a way to build the API client.
type Factory struct {
	IO *cmdutil.IOStreams
	// Now is the clock used for relative times and --since.
	Now func() time.Time
	// Loc is the time zone tables print in (time.Local by default).
	Loc *time.Location

	// ConfigFile is the config file read when neither --config nor
	// OMACTL_CONFIG names one, if it exists (DefaultConfigFile).
	ConfigFile string
	// CompletionTimeout bounds the server calls of shell completion.
	CompletionTimeout time.Duration
	// AuditPage is how many audit events 'omactl audit' asks the server
	// for at a time; 0 (and anything larger) means the server's maximum.
	// Tests set a small one to page through a short trail.
	AuditPage int

	// Width is the width tables fit; 0 asks the terminal (see width).
	Width int
	// Getenv reads the environment outside the settings (COLUMNS).
	Getenv func(string) string

	// Template is --template: a Go template over the JSON form.
	Template string
	// Quiet is -q: print only ids, as -o name.
	Quiet bool

	// Config is filled by the root command before any subcommand runs.
	Config Config

	cfgFlags configFlags
	client   *client.Client
}

// NewFactory returns a factory over the given streams with the real clock.
func NewFactory(ios *cmdutil.IOStreams) *Factory {
	return &Factory{IO: ios, Now: time.Now, Getenv: os.Getenv, Loc: time.Local, ConfigFile: DefaultConfigFile(), CompletionTimeout: 2 * time.Second}
}

// loadConfig reads the settings of cmd's command line, the environment and
// the config file into f.Config.
func (f *Factory) loadConfig(cmd *cobra.Command) error {
	cfg, err := loadConfig(cmd.Root().PersistentFlags(), &f.cfgFlags, f.ConfigFile)
	if err != nil {
		return err
	}
	f.Config = cfg
	return nil
}

// NewRootCmd builds the omactl command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "omactl",
		Short: "Manage VMA enrollments on this OMA",
		Long: `omactl is the OMA admin's tool for VMA enrollment.

It talks to the admin listener of oma-server (by default http://127.0.0.1:8082)
with the admin token that oma-server wrote on first start
(/var/lib/oma-enroll/admin.token). A typical enrollment:

  1. 'omactl pairing-code' makes a single-use code; read it to the VMA operator.
  2. The operator runs the printed 'vma-enroll' command on the VMA console.
  3. 'omactl pending' shows the VMA with its key fingerprint; compare it with
     the one the VMA console shows, then 'omactl approve NAME'.

Settings come from flags, then OMACTL_* environment variables (OMACTL_SERVER,
OMACTL_TOKEN, OMACTL_TOKEN_FILE, OMACTL_OUTPUT, OMACTL_FINGERPRINT,
OMACTL_CONFIG), then the YAML config file (keys server, token, token_file,
output, fingerprint), then defaults. The
config file is --config, else OMACTL_CONFIG, else ~/.config/omactl/config.yaml
($XDG_CONFIG_HOME/omactl/config.yaml) when it exists; a relative token_file in
it is relative to the file. For example:

  server: http://10.0.0.5:8082
  token_file: admin.token

Tables fit the terminal (80 columns when stdout is no terminal and COLUMNS is
unset): long cells are cut with "..."; -o wide shows every column and cuts
nothing. Tables show times as ages ("3m ago"); single records ('omactl get')
show them with their time zone too; JSON and YAML carry UTC RFC 3339 times.
For scripts: with -o json or -o yaml, stdout carries exactly one document (an
object, or an array for lists) and messages go to stderr ('pending --watch'
and 'audit --follow' print one JSON document per line instead); -o name (or
-q) prints only ids, one a line; --template formats the fields of -o json with
a Go template. Field names and their order are stable: fields may be added,
never renamed or removed. omactl prints no colours; terminal control sequences
are used only by 'pending --watch' on a terminal.

Exit status: 0 ok, 1 error, 2 usage error (also reject and revoke without
--yes when there is no terminal to confirm on).`,
		Example: `  omactl pairing-code
  omactl pending
  omactl approve vma-frankfurt-01
  omactl get vma-frankfurt-01
  omactl list --status all --name frankfurt
  omactl active -o json
  omactl active --template '{{range .}}{{.vma_name}}{{"\n"}}{{end}}'
  omactl audit --since 24h
  OMACTL_SERVER=http://10.0.0.5:8082 omactl --token-file ./admin.token pending`,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := f.loadConfig(cmd); err != nil {
				return err
			}
			if f.Quiet {
				f.Config.Output = "name"
			}
			if f.Template != "" {
				if _, err := parseTemplate(f.Template); err != nil {
					return err
				}
			}
			cmdutil.SetOutput(cmd, f.Config.Output) // -o json failures as JSON
			return nil
		},
		Annotations: map[string]string{cmdutil.AnnotationOutputEnv: "OMACTL_OUTPUT"},
	}
	cmdutil.Setup(root)
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	addConfigFlags(root.PersistentFlags(), &f.cfgFlags)
	root.PersistentFlags().StringVar(&f.Template, "template", "", "format the output with a Go template over the fields of -o json (examples: omactl --help)")
	root.PersistentFlags().BoolVarP(&f.Quiet, "quiet", "q", false, "print only ids, one a line (as -o name)")
	_ = root.RegisterFlagCompletionFunc("output", outputCompletions)

	version := cmdutil.NewVersionCmd("omactl", f.IO)
	version.ResetFlags() // the root's persistent -o applies (json prints one object)

	root.AddCommand(
		newPairingCodeCmd(f),
		newPendingCmd(f),
		newApproveCmd(f),
		newRejectCmd(f),
		newActiveCmd(f),
		newRevokeCmd(f),
		newAuditCmd(f),
		newListCmd(f),
		newGetCmd(f, false),
		newGetCmd(f, true),
		newAuthCmd(f),
		newConfigCmd(f),
		cmdutil.NewCompletionCmd(root, f.IO),
		version,
	)
	cmdutil.InitHelpCmd(root, "approve")
	return root
}

// Client returns the API client for the configured server and token.
func (f *Factory) Client() (*client.Client, error) {
	if f.client != nil {
		return f.client, nil
	}
	tok, err := f.Config.token()
	if err != nil {
		return nil, err
	}
	c, err := client.New(client.Config{
		BaseURL:     f.Config.Server,
		Token:       tok,
		Fingerprint: f.Config.Fingerprint,
		UserAgent:   "omactl/" + cmdutil.Version,
	})
	if err != nil {
		return nil, cmdutil.FlagErrorf("--server: %v", err)
	}
	f.client = c
	return c, nil
}

func ctxOf(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}
