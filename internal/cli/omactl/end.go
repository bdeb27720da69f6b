package omactl

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

type rejectOptions struct {
	Reason string
	Yes    bool
}

func newRejectCmd(f *Factory) *cobra.Command {
	opts := &rejectOptions{}
	cmd := &cobra.Command{
		Use:   "reject ID",
		Short: "Reject a pending VMA",
		Long: `Reject a VMA that awaits approval. vma-enroll on the VMA stops waiting and
exits with status 3, showing the reason; the VMA needs a new pairing code to
try again.

ID is the enrollment id, a unique prefix of it (at least 8 characters), or the
VMA name; a name with several enrollments picks the one awaiting approval.
On a terminal omactl asks for confirmation unless --yes is given; without a
terminal (in scripts) it proceeds.`,
		Example: `  omactl reject vma-unknown --reason "not one of ours"
  omactl reject 3f2a9c1e --yes`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeEnrollments(enroll.StatusAwaitingApproval, enroll.StatusPendingVerification),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := enroll.ValidateText("--reason", opts.Reason, 1024); err != nil {
				return cmdutil.FlagErrorf("%s", enroll.ErrorMessage(err))
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			ctx := ctxOf(cmd)
			id, err := f.resolveID(ctx, c, args[0], enroll.StatusAwaitingApproval, enroll.StatusPendingVerification)
			if err != nil {
				return err
			}
			if err := f.confirm(fmt.Sprintf("Reject enrollment %s (%s)?", id, clean(args[0])), opts.Yes); err != nil {
				return err
			}
			e, err := c.Reject(ctx, id, opts.Reason)
			if err != nil {
				return f.explain(err)
			}
			return f.print(e, func(w io.Writer) error {
				return f.writeEnrollment(w, "Rejected VMA "+clean(e.VMAName)+".", e)
			})
		},
	}
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why; shown on the VMA and kept in the audit trail")
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
