package omactl

import (
	"context"
	"fmt"
	"io"

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
  omactl reject 3f2a9c1e --yes`,
		states:     []enroll.Status{enroll.StatusAwaitingApproval, enroll.StatusPendingVerification},
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
and a new approval to come back.`,
		picks: "the approved one",
		example: `  omactl revoke vma-frankfurt-01 --reason "appliance decommissioned"
  omactl revoke 3f2a9c1e --yes`,
		states:     []enroll.Status{enroll.StatusApproved},
		question:   "Revoke enrollment %s (%s)? Its key stops working at once.",
		done:       "Revoked",
		reasonHelp: "why; kept in the audit trail",
		call:       (*client.Client).Revoke,
	})
}

// endAction describes a command that ends an enrollment (reject, revoke):
// resolve the argument among enrollments in states, confirm, call.
type endAction struct {
	use, short, long, example string
	picks                     string // which of several enrollments of a name is meant
	states                    []enroll.Status
	question                  string // confirmation, with the id and the argument
	done                      string // past tense for the answer
	reasonHelp                string
	call                      func(c *client.Client, ctx context.Context, id, reason string) (*api.Enrollment, error)
}

func newEndCmd(f *Factory, a endAction) *cobra.Command {
	var reason string
	var yes bool
	cmd := &cobra.Command{
		Use:   a.use,
		Short: a.short,
		Long: a.long + `

ID is the enrollment id, a unique prefix of it (at least 8 characters), or the
VMA name; a name with several enrollments picks ` + a.picks + `.
On a terminal omactl asks for confirmation unless --yes is given; without a
terminal (in scripts) it proceeds.`,
		Example:           a.example,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeEnrollments(a.states...),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := enroll.ValidateText("--reason", reason, contract.MaxTextBytes); err != nil {
				return cmdutil.FlagErrorf("%s", enroll.ErrorMessage(err))
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			ctx := ctxOf(cmd)
			id, err := f.resolveID(ctx, c, args[0], a.states...)
			if err != nil {
				return err
			}
			if err := f.confirm(fmt.Sprintf(a.question, id, clean(args[0])), yes); err != nil {
				return err
			}
			e, err := a.call(c, ctx, id, reason)
			if err != nil {
				return f.explain(err)
			}
			return f.print(e, func(w io.Writer) error {
				return f.writeEnrollment(w, a.done+" VMA "+clean(e.VMAName)+".", e)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", a.reasonHelp)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
