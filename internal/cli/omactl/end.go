package omactl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

func newRejectCmd(f *Factory) *cobra.Command {
	return newEndCmd(f, endAction{
		use:   "reject ID",
		short: "Reject a pending VMA",
		long: `Reject a VMA that awaits approval. vma-enroll on the VMA stops waiting and
exits with status 3, showing the reason; the VMA needs a new pairing code to
try again.`,
		picks: "the one awaiting approval",
		example: `  omactl reject vma-unknown --reason "not one of ours"
  omactl reject 3f2a9c1e --yes
  omactl reject vma-unknown --dry-run`,
		verb:       "reject",
		states:     []enroll.Status{enroll.StatusAwaitingApproval, enroll.StatusPendingVerification},
		final:      enroll.StatusRejected,
		question:   "Reject enrollment %s (%s)?",
		done:       "Rejected",
		reasonHelp: "why; shown on the VMA and kept in the audit trail",
		call:       (*client.Client).Reject,
	})
}

func newRevokeCmd(f *Factory) *cobra.Command {
	return newEndCmd(f, endAction{
		use:   "revoke ID",
		short: "Revoke an approved VMA",
		long: `Revoke an approved VMA: its key stops working at once and, with the embedded
tunnel, a live tunnel of that VMA is closed. The VMA needs a new pairing code
and a new approval to come back.

--ignore-not-found makes revoke idempotent for scripts: when no enrollment
matches ID, or the one that does is already revoked, it says so on stderr and
exits 0 (an already revoked enrollment is printed as usual).`,
		picks: "the approved one",
		example: `  omactl revoke vma-frankfurt-01 --reason "appliance decommissioned"
  omactl revoke 3f2a9c1e --yes
  omactl revoke vma-frankfurt-01 --dry-run
  omactl revoke vma-frankfurt-01 --yes --ignore-not-found -o json`,
		verb:           "revoke",
		states:         []enroll.Status{enroll.StatusApproved},
		final:          enroll.StatusRevoked,
		question:       "Revoke enrollment %s (%s)? Its key stops working at once.",
		done:           "Revoked",
		reasonHelp:     "why; kept in the audit trail",
		call:           (*client.Client).Revoke,
		ignoreNotFound: true,
	})
}

// endAction describes a command that ends an enrollment (reject, revoke):
// resolve the argument among enrollments in states, confirm, call.
type endAction struct {
	use, short, long, example string
	verb                      string          // "revoke"
	picks                     string          // which of several enrollments of a name is meant
	states                    []enroll.Status // the states it acts on
	final                     enroll.Status   // the state it leads to
	question                  string          // confirmation, with the id and the argument
	done                      string          // past tense for the answer
	reasonHelp                string
	call                      func(c *client.Client, ctx context.Context, id, reason string) (*api.Enrollment, error)
	ignoreNotFound            bool // has --ignore-not-found
}

// endOptions are the flags of reject and revoke.
type endOptions struct {
	bulkOptions
	Arg            string
	Reason         string
	Yes            bool
	DryRun         bool
	IgnoreNotFound bool
}

func newEndCmd(f *Factory, a endAction) *cobra.Command {
	opts := &endOptions{}
	cmd := &cobra.Command{
		Use:   a.use + "...",
		Short: a.short,
		Long: a.long + `

ID is the enrollment id, a unique prefix of it (at least 8 characters), or the
VMA name; a name with several enrollments picks ` + a.picks + `.
On a terminal omactl asks for confirmation unless --yes is given. Without a
terminal (in scripts) --yes is required: omactl exits with status 2 rather than
` + a.verb + ` unasked. --dry-run shows what would be done and changes nothing.` + bulkHelp,
		Example: a.example,
		Args: func(cmd *cobra.Command, args []string) error {
			if opts.bulk(args) {
				return nil
			}
			return cmdutil.ExactArgs(1)(cmd, args)
		},
		ValidArgsFunction: f.completeEnrollments(a.states...),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.bulk(args) {
				if opts.IgnoreNotFound {
					return cmdutil.FlagErrorf("--ignore-not-found is for one ID")
				}
				if err := enroll.ValidateText("--reason", opts.Reason, contract.MaxTextBytes); err != nil {
					return cmdutil.FlagErrorf("%s", enroll.ErrorMessage(err))
				}
				return f.runBulk(ctxOf(cmd), bulkRun{verb: a.verb, done: a.done, states: a.states,
					text: opts.Reason, yes: opts.Yes, dryRun: opts.DryRun}, args, &opts.bulkOptions)
			}
			opts.Arg = args[0]
			return runEnd(ctxOf(cmd), f, a, opts)
		},
	}
	cmd.Flags().StringVar(&opts.Reason, "reason", "", a.reasonHelp)
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation (required without a terminal)")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "show what would be done and change nothing")
	addBulkFlags(cmd, &opts.bulkOptions, a.verb == "reject")
	if a.ignoreNotFound {
		cmd.Flags().BoolVar(&opts.IgnoreNotFound, "ignore-not-found", false, "exit 0 when no enrollment matches or it is already "+string(a.final))
	}
	return cmd
}

// errNeedYes is the usage error of a destructive verb without a terminal
// to confirm on and without --yes.
func errNeedYes(verb string) error {
	return cmdutil.FlagErrorf("%s needs --yes when there is no terminal to confirm on (or --dry-run to see what it would do)", verb)
}

func runEnd(ctx context.Context, f *Factory, a endAction, opts *endOptions) error {
	if err := enroll.ValidateText("--reason", opts.Reason, contract.MaxTextBytes); err != nil {
		return cmdutil.FlagErrorf("%s", enroll.ErrorMessage(err))
	}
	interactive := f.IO.InTTY && f.IO.ErrTTY
	if !opts.Yes && !opts.DryRun && !interactive {
		return errNeedYes(a.verb)
	}
	c, err := f.Client()
	if err != nil {
		return err
	}
	id, err := f.resolveID(ctx, c, opts.Arg, a.states...)
	var nf *notFoundError
	if opts.IgnoreNotFound && errors.As(err, &nf) {
		fmt.Fprintf(f.IO.ErrOut, "Nothing to %s: %s.\n", a.verb, nf.msg)
		return f.printNothing()
	}
	if err != nil {
		return err
	}
	if opts.DryRun || opts.IgnoreNotFound {
		e, err := f.enrollment(ctx, c, id)
		if err != nil {
			return err
		}
		if opts.IgnoreNotFound && e.Status == string(a.final) {
			fmt.Fprintf(f.IO.ErrOut, "Enrollment %s (%s) is already %s.\n", e.ID, clean(e.VMAName), e.Status)
			return f.print(e, func(w io.Writer) error {
				return f.writeEnrollment(w, "VMA "+clean(e.VMAName)+" is already "+e.Status+".", e)
			})
		}
		if opts.DryRun {
			return f.dryRun(a.verb, a.states, e)
		}
	}
	if err := f.confirm(fmt.Sprintf(a.question, id, clean(opts.Arg)), opts.Yes); err != nil {
		return err
	}
	e, err := a.call(c, ctx, id, opts.Reason)
	if opts.IgnoreNotFound && client.StatusCode(err) == http.StatusNotFound {
		fmt.Fprintf(f.IO.ErrOut, "Nothing to %s: enrollment %s no longer exists.\n", a.verb, id)
		return f.printNothing()
	}
	if err != nil {
		return f.explain(err)
	}
	return f.print(e, func(w io.Writer) error {
		return f.writeEnrollment(w, a.done+" VMA "+clean(e.VMAName)+".", e)
	})
}

// printNothing ends a command that found nothing to act on: no output,
// except an empty array for -o json and -o yaml (one document, always).
func (f *Factory) printNothing() error {
	switch {
	case f.Template != "", f.Config.Output == "name", f.tableOutput():
		return nil
	}
	return f.print([]api.Enrollment{}, nil)
}

// enrollment reads one enrollment by its full id.
func (f *Factory) enrollment(ctx context.Context, c *client.Client, id string) (*api.Enrollment, error) {
	list, err := c.Enrollments(ctx, client.EnrollmentFilter{IDPrefix: id})
	if err != nil {
		return nil, f.explain(err)
	}
	for i := range list {
		if list[i].ID == id {
			return &list[i], nil
		}
	}
	return nil, &notFoundError{fmt.Sprintf("enrollment %s no longer exists", id)}
}

// dryRun says what verb would do to e and prints e as it is now; it fails
// (exit 1) when e is in no state verb acts on, as the real call would.
func (f *Factory) dryRun(verb string, states []enroll.Status, e *api.Enrollment) error {
	if !slices.Contains(states, enroll.Status(e.Status)) {
		return fmt.Errorf("dry run: enrollment %s (%s) is %s, so %s would fail; nothing was changed", e.ID, clean(e.VMAName), e.Status, verb)
	}
	if f.structured() {
		fmt.Fprintf(f.IO.ErrOut, "Dry run: %s would act on this enrollment; nothing was changed.\n", verb)
	}
	return f.print(e, func(w io.Writer) error {
		return f.writeEnrollment(w, "Would "+verb+" VMA "+clean(e.VMAName)+".", e)
	})
}
