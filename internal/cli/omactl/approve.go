package omactl

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

type approveOptions struct {
	Notes string
}

func newApproveCmd(f *Factory) *cobra.Command {
	opts := &approveOptions{}
	cmd := &cobra.Command{
		Use:   "approve ID",
		Short: "Approve a pending VMA",
		Long: `Approve a VMA that awaits approval: its key is authorized for the restricted
tunnel and it gets its own tunnel port. vma-enroll on the VMA then writes its
tunnel configuration and exits.

ID is the enrollment id, a unique prefix of it (at least 8 characters), or the
VMA name; a name with several enrollments picks the one awaiting approval.
Compare the key fingerprint in 'omactl pending' with the one the VMA console
shows before you approve. If the VMA name already has an approved enrollment,
approving the new one revokes the old one.`,
		Example: `  omactl approve vma-frankfurt-01
  omactl approve 3f2a9c1e --notes "checked fingerprint by phone with J. Doe"`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeEnrollments(enroll.StatusAwaitingApproval),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := enroll.ValidateText("--notes", opts.Notes, contract.MaxTextBytes); err != nil {
				return cmdutil.FlagErrorf("%s", enroll.ErrorMessage(err))
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			ctx := ctxOf(cmd)
			id, err := f.resolveID(ctx, c, args[0], enroll.StatusAwaitingApproval)
			if err != nil {
				return err
			}
			e, err := c.Approve(ctx, id, opts.Notes)
			if err != nil {
				return f.explain(err)
			}
			return f.print(e, func(w io.Writer) error {
				return f.writeEnrollment(w, "Approved VMA "+clean(e.VMAName)+".", e)
			})
		},
	}
	cmd.Flags().StringVar(&opts.Notes, "notes", "", "notes kept with the approval and in the audit trail")
	return cmd
}
