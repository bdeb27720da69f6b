package omactl

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

type revokeOptions struct {
	Reason string
	Yes    bool
}

func newRevokeCmd(f *Factory) *cobra.Command {
	opts := &revokeOptions{}
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an approved VMA",
		Long: `Revoke an approved VMA: its key stops working at once and, with the embedded
tunnel, a live tunnel of that VMA is closed. The VMA needs a new pairing code
and a new approval to come back.

ID is the enrollment id, a unique prefix of it (at least 8 characters), or the
VMA name; a name with several enrollments picks the approved one.
On a terminal omactl asks for confirmation unless --yes is given; without a
terminal (in scripts) it proceeds.`,
		Example: `  omactl revoke vma-frankfurt-01 --reason "appliance decommissioned"
  omactl revoke 3f2a9c1e --yes`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeEnrollments(enroll.StatusApproved),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := enroll.ValidateText("--reason", opts.Reason, 1024); err != nil {
				return cmdutil.FlagErrorf("%s", enroll.ErrorMessage(err))
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			ctx := ctxOf(cmd)
			id, err := f.resolveID(ctx, c, args[0], enroll.StatusApproved)
			if err != nil {
				return err
			}
			if err := f.confirm(fmt.Sprintf("Revoke enrollment %s (%s)? Its key stops working at once.", id, clean(args[0])), opts.Yes); err != nil {
				return err
			}
			e, err := c.Revoke(ctx, id, opts.Reason)
			if err != nil {
				return f.explain(err)
			}
			return f.print(e, func(w io.Writer) error {
				return f.writeEnrollment(w, "Revoked VMA "+clean(e.VMAName)+".", e)
			})
		},
	}
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why; kept in the audit trail")
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
