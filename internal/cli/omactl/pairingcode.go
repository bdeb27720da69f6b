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
	"github.com/oma-enroll/oma-enroll/internal/labels"
)

type pairingCodeOptions struct {
	TTL         time.Duration
	Note        string
	Uses        int
	Labels      []string
	AutoApprove bool
	From        string
}

func newPairingCodeCmd(f *Factory) *cobra.Command {
	opts := &pairingCodeOptions{}
	cmd := &cobra.Command{
		Use:   "pairing-code",
		Short: "Make a pairing code for new VMAs (single use by default)",
		Long: `Make a single-use pairing code (XXXX-XXXX-XXXX) for one new VMA.

Read the code to the VMA operator, or hand them the printed vma-enroll command:
it carries the OMA's address and the fingerprint of its TLS key, which
vma-enroll checks so that the VMA cannot be tricked into enrolling with an
impostor. The code is valid once, for --ttl (default 10m, at most 24h), and is
shown only now: the server stores only its hash.

With -o json the answer is the API object: pairing_code, expires_at,
oma_fingerprint and join_command (and id, uses, labels, auto_approve).

Fleets (see docs/fleet.md): --uses N lets one code enroll N VMAs, each its own
enrollment (at most the server's max-code-uses, 1000 by default). --label
k=v (repeatable) is copied onto every enrollment made with the code; select
them later with 'omactl pending -l k=v' and 'omactl approve -l k=v'.
--auto-approve approves each VMA as soon as it proves its key, recorded as
"code:<id>" (off by default; --from CIDR limits it to VMAs from those
addresses, others wait for an admin). A pre-approved code that leaks lets
anyone enroll up to its uses until it expires: keep --uses and --ttl small,
give --from, and revoke it with 'omactl pairing-code revoke ID' when done.
'omactl pairing-code list' shows the codes (never the codes themselves).`,
		Example: `  omactl pairing-code
  omactl pairing-code --ttl 30m --note "Frankfurt DC, ticket 4711"
  omactl pairing-code -o json | jq -r .join_command
  omactl pairing-code --uses 40 --ttl 4h --label site=fra
  omactl pairing-code --uses 40 --ttl 2h --label site=fra \
      --auto-approve --from 10.20.0.0/16
  omactl pairing-code list
  omactl pairing-code revoke 5b0c7d1e`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Uses < 1 || opts.Uses > contract.CodeUsesLimit {
				return cmdutil.FlagErrorf("--uses %d is out of range: use 1 to the server's max-code-uses (%d by default)", opts.Uses, contract.MaxCodeUses)
			}
			if _, err := labels.ParseArgs(opts.Labels); err != nil {
				return cmdutil.FlagErrorf("--label: %s", err.Error())
			}
			if opts.From != "" && !opts.AutoApprove {
				return cmdutil.FlagErrorf("--from limits pre-approval: give it together with --auto-approve")
			}
			if opts.TTL != 0 && (opts.TTL < time.Minute || opts.TTL > 168*time.Hour) {
				return cmdutil.FlagErrorf("--ttl %s is out of range: use 1m to the server's max-code-ttl (24h by default)", opts.TTL)
			}
			if err := enroll.ValidateText("--note", opts.Note, contract.MaxNoteBytes); err != nil {
				return cmdutil.FlagErrorf("%s", enroll.ErrorMessage(err))
			}
			return runPairingCode(cmd, f, opts)
		},
	}
	cmd.Flags().DurationVar(&opts.TTL, "ttl", 10*time.Minute, "how long the code stays valid (1m to the server's max-code-ttl, 24h by default)")
	cmd.Flags().StringVar(&opts.Note, "note", "", "a note kept in the audit trail (e.g. the site or ticket)")
	cmd.Flags().IntVar(&opts.Uses, "uses", contract.DefaultCodeUses, "how many VMAs may enroll with the code")
	cmd.Flags().StringArrayVar(&opts.Labels, "label", nil, "a label k=v copied onto every enrollment of the code (repeatable)")
	cmd.Flags().BoolVar(&opts.AutoApprove, "auto-approve", false, "approve each VMA of this code as soon as it proves its key")
	cmd.Flags().StringVar(&opts.From, "from", "", "with --auto-approve: only VMAs from these CIDRs (comma-separated)")
	cmd.AddCommand(newPairingCodeListCmd(f), newPairingCodeRevokeCmd(f))
	return cmd
}

func runPairingCode(cmd *cobra.Command, f *Factory, opts *pairingCodeOptions) error {
	c, err := f.Client()
	if err != nil {
		return err
	}
	l, _ := labels.ParseArgs(opts.Labels)
	pc, err := c.CreatePairingCode(ctxOf(cmd), api.PairingCodeRequest{TTLSeconds: int(opts.TTL / time.Second), Note: opts.Note,
		Uses: opts.Uses, Labels: l, AutoApprove: opts.AutoApprove, FromCIDR: opts.From})
	if err != nil {
		return f.explain(err)
	}
	return f.print(pc, func(w io.Writer) error { return f.writePairingCode(w, pc) })
}

func (f *Factory) writePairingCode(w io.Writer, pc *api.PairingCodeResponse) error {
	code := clean(enroll.FormatPairingCode(pc.PairingCode))
	inner := "   " + code + "   "
	border := "+" + strings.Repeat("-", len(inner)) + "+"
	uses := "single use"
	if pc.Uses > 1 {
		uses = fmt.Sprintf("%d uses", pc.Uses)
	}
	if pc.AutoApprove {
		uses += ", PRE-APPROVED"
		if pc.FromCIDR != "" {
			uses += " from " + clean(pc.FromCIDR)
		}
	}
	if l := labels.Set(pc.Labels).String(); l != "" {
		uses += ", labels " + cleanLong(l)
	}
	_, err := fmt.Fprintf(w, `Pairing code (`+uses+`, expires %s, at %s):

    %s
    |%s|
    %s

OMA fingerprint:  %s

On the VMA console, run:

    %s

Then compare the key fingerprint the VMA shows with 'omactl pending' and run
'omactl approve NAME'.
`, f.ago(&pc.ExpiresAt), f.clock(pc.ExpiresAt), border, inner, border, clean(pc.OMAFingerprint), cleanLong(pc.JoinCommand))
	if err != nil {
		return err
	}
	switch l := labels.Set(pc.Labels).String(); {
	case pc.AutoApprove:
		_, err = fmt.Fprintf(w, "This code approves each VMA by itself; see them with 'omactl active%s'\nand revoke the code when done:\n\n    omactl pairing-code revoke %s\n", selectorHint(l), clean(pc.ID))
	case pc.Uses > 1:
		_, err = fmt.Fprintf(w, "With several VMAs: 'omactl pending%s', then 'omactl approve%s'.\n", selectorHint(l), selectorHint(l)+orNames(l))
	}
	return err
}

// selectorHint is " -l k=v,…" for a code's labels ("" for none).
func selectorHint(l string) string {
	if l == "" {
		return ""
	}
	return " -l " + cleanLong(l)
}

// orNames is " NAME..." when there is no label to select by.
func orNames(l string) string {
	if l == "" {
		return " NAME..."
	}
	return ""
}
