// Package vmaenroll is the command tree of vma-enroll, which runs on a VMA's
// console: it enrolls the VMA with its OMA (key generation, pairing code,
// challenge, waiting for the admin's approval), writes the tunnel
// configuration, shows the local state and runs the tunnel.
package vmaenroll

import (
	"bufio"
	"context"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// Factory carries what the commands need from the outside world, so tests
// can replace it.
type Factory struct {
	IO         *cmdutil.IOStreams
	Now        func() time.Time
	Hostname   func() (string, error)
	Executable func() (string, error)
	// ConfigFile is the default config file, read when it exists and no
	// other file is named (DefaultConfigFile).
	ConfigFile string

	Config Config
	// Labels are --label k=v: labels this VMA asks for (flag only).
	Labels []string
	in     *bufio.Reader
}

// NewFactory returns a factory over the given streams and the real system.
func NewFactory(ios *cmdutil.IOStreams) *Factory {
	return &Factory{IO: ios, Now: time.Now, Hostname: os.Hostname, Executable: os.Executable, ConfigFile: DefaultConfigFile}
}

// stdin is the one buffered reader of the input, shared by every prompt.
func (f *Factory) stdin() *bufio.Reader {
	if f.in == nil {
		f.in = bufio.NewReader(f.IO.In)
	}
	return f.in
}

// interactive reports whether a person can answer questions.
func (f *Factory) interactive() bool { return f.IO.InTTY && f.IO.ErrTTY }

// NewRootCmd builds the vma-enroll command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "vma-enroll",
		Short: "Enroll this VMA with its OMA and set up the tunnel",
		Long: `vma-enroll enrolls this VMA with its OMA, so that the VMA can open its SSH
tunnel to the OMA on port 443. Run it on the VMA console with the pairing code
and fingerprint the OMA admin gave you ('omactl pairing-code' prints the whole
command). It:

  1. loads or generates the VMA's Ed25519 key in --config-dir,
  2. checks the OMA's identity: its TLS key must match --fingerprint (without
     --fingerprint it shows the fingerprint and asks, on a terminal only),
  3. sends the public key with the pairing code and signs the OMA's challenge,
  4. waits for the admin's approval (long polls; up to --timeout), showing the
     key fingerprint the admin should compare,
  5. writes id_ed25519, known_hosts, ssh_config, enrollment.json and
     vma-tunnel.service into --config-dir.

Interrupted while waiting, run it again: it resumes the same enrollment from
enrollment.json without a new code. Once enrolled, a rerun says so and exits 0;
a rerun with another --oma or --name than the recorded enrollment's refuses
(exit 2) instead of ignoring them; --force enrolls again with a new code
(e.g. after a revocation, or to move to another OMA).

Missing --oma or --code on a terminal, it asks for them. The code may also come
from --code-file or VMA_ENROLL_CODE, which keeps it out of the shell history;
any case, with or without dashes. Settings: flags, then VMA_ENROLL_* variables
(VMA_ENROLL_OMA, VMA_ENROLL_CODE, VMA_ENROLL_FINGERPRINT, VMA_ENROLL_CONFIG_DIR,
...), then the YAML config file (--config, else VMA_ENROLL_CONFIG, else
/etc/vma-enroll/vma-enroll.yaml when it exists; keys as the flags, like
"oma: oma.example.com" or "fingerprint: sha256:…"), then defaults. --force is
a flag only. vma-enroll prints no colours. On a terminal of known width its
waiting status line is redrawn with a carriage return and never gets wider
than the terminal; elsewhere it prints a line on each change and once a
minute. "left" is what remains of --timeout or of the OMA's approval window,
whichever ends first.

With -o json, stdout carries exactly one JSON object, failures included
(status, exit_code, error); messages go to stderr.

Exit status: 0 approved and configured (or already enrolled), 1 error,
2 usage error, 3 rejected by the admin, 4 timed out waiting or the enrollment
expired, 5 pairing code rejected (wrong, used or expired), 6 the OMA's identity
does not match the fingerprint.`,
		Example: `  # The command 'omactl pairing-code' prints, typed on the VMA console
  vma-enroll --oma 203.0.113.5 --code 7KQ2-M9XD-4RTB --fingerprint sha256:5f1c…

  # On a terminal: asks for the OMA address and the code
  vma-enroll

  # The code from the environment, in any case, with or without dashes
  VMA_ENROLL_CODE=7kq2m9xd4rtb vma-enroll --oma 203.0.113.5:443 \
      --fingerprint sha256:5f1c…

  # From a script: the code in a file, one JSON object on stdout
  vma-enroll --code-file /root/code.txt --oma oma.example.com \
      --fingerprint sha256:5f1c… -o json

  # With a label the admin can select it by (omactl approve -l rack=r12)
  vma-enroll --oma oma.example.com --code 7KQ2-M9XD-4RTB \
      --fingerprint sha256:5f1c… --label rack=r12

  # Is this VMA enrolled, and does the OMA still accept it?
  vma-enroll status`,
		Args:        cmdutil.NoArgs,
		Annotations: map[string]string{cmdutil.AnnotationOutputEnv: EnvPrefix + "OUTPUT"},
		// The configuration is read once per run, for every command; a
		// broken one does not stop version or completion (which still
		// take -o from it when they can).
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd.Root())
			f.Config = cfg
			if err != nil && cmdutil.ReadsConfig(cmd) {
				return err
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEnroll(ctxOf(cmd), f)
		},
	}
	cmdutil.Setup(root)
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	addFlags(root, f.ConfigFile)
	root.Flags().StringArrayVar(&f.Labels, "label", nil, "a label k=v this VMA asks for, shown to the admin as the VMA's (repeatable; flag only)")

	version := cmdutil.NewVersionCmd("vma-enroll", f.IO)
	version.ResetFlags() // the root's persistent -o applies (json prints one object)
	root.AddCommand(
		newStatusCmd(f),
		newTunnelCmd(f),
		newRotateCmd(f),
		newClientCertCmd(f),
		cmdutil.NewCompletionCmd(root, f.IO),
		version,
	)
	cmdutil.InitHelpCmd(root, "tunnel")
	return root
}

func ctxOf(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}
