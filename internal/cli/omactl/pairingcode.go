package omactl

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

type pairingCodeOptions struct {
	TTL  time.Duration
	Note string
}

func newPairingCodeCmd(f *Factory) *cobra.Command {
	opts := &pairingCodeOptions{}
	cmd := &cobra.Command{
		Use:   "pairing-code",
		Short: "Make a single-use pairing code for a new VMA",
		Long: `Make a single-use pairing code (XXXX-XXXX-XXXX) for one new VMA.

Read the code to the VMA operator, or hand them the printed vma-enroll command:
it carries the OMA's address and the fingerprint of its TLS key, which
vma-enroll checks so that the VMA cannot be tricked into enrolling with an
impostor. The code is valid once, for --ttl (default 10m, at most 24h), and is
shown only now: the server stores only its hash.

With -o json the answer is the API object: pairing_code, expires_at,
oma_fingerprint and join_command.`,
		Example: `  omactl pairing-code
  omactl pairing-code --ttl 30m --note "Frankfurt DC, ticket 4711"
  omactl pairing-code -o json | jq -r .join_command`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.TTL != 0 && (opts.TTL < time.Minute || opts.TTL > 24*time.Hour) {
				return cmdutil.FlagErrorf("--ttl %s is out of range: use 1m to 24h", opts.TTL)
			}
			if err := enroll.ValidateText("--note", opts.Note, contract.MaxNoteBytes); err != nil {
				return cmdutil.FlagErrorf("%s", enroll.ErrorMessage(err))
			}
			return runPairingCode(cmd, f, opts)
		},
	}
	cmd.Flags().DurationVar(&opts.TTL, "ttl", 10*time.Minute, "how long the code stays valid (1m to 24h)")
	cmd.Flags().StringVar(&opts.Note, "note", "", "a note kept in the audit trail (e.g. the site or ticket)")
	return cmd
}

func runPairingCode(cmd *cobra.Command, f *Factory, opts *pairingCodeOptions) error {
	c, err := f.Client()
	if err != nil {
		return err
	}
	pc, err := c.CreatePairingCode(ctxOf(cmd), api.PairingCodeRequest{TTLSeconds: int(opts.TTL / time.Second), Note: opts.Note})
	if err != nil {
		return f.explain(err)
	}
	return f.print(pc, func(w io.Writer) error { return f.writePairingCode(w, pc) })
}

func (f *Factory) writePairingCode(w io.Writer, pc *api.PairingCodeResponse) error {
	code := clean(enroll.FormatPairingCode(pc.PairingCode))
	inner := "   " + code + "   "
	border := "+" + strings.Repeat("-", len(inner)) + "+"
	_, err := fmt.Fprintf(w, `Pairing code (single use, expires %s, at %s):

    %s
    |%s|
    %s

OMA fingerprint:  %s

On the VMA console, run:

    %s

Then compare the key fingerprint the VMA shows with 'omactl pending' and run
'omactl approve NAME'.
`, f.ago(&pc.ExpiresAt), f.clock(pc.ExpiresAt), border, inner, border, clean(pc.OMAFingerprint), cleanLong(pc.JoinCommand))
	return err
}
