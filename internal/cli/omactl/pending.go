package omactl

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

func newPendingCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "pending",
		Short: "List VMAs awaiting approval",
		Long: `List the VMAs that proved possession of their key and now await approval,
oldest first: name, version, source IP and the SHA256 fingerprint of the VMA's
SSH key. Before approving, compare that fingerprint with the one the VMA
console shows ('vma-enroll' prints it while it waits).

An enrollment not approved within the approval window (30 minutes by
default) expires and disappears from this list.`,
		Example: `  omactl pending
  omactl pending -o json | jq -r '.[].vma_name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			list, err := c.Pending(ctxOf(cmd))
			if err != nil {
				return f.explain(err)
			}
			return f.print(list, func(w io.Writer) error { return f.writePending(w, list) })
		},
	}
}

func (f *Factory) writePending(w io.Writer, list []api.Enrollment) error {
	if len(list) == 0 {
		fmt.Fprintln(f.IO.ErrOut, "No VMA is awaiting approval.")
		return nil
	}
	t := newTable(w, "ID", "NAME", "VERSION", "SOURCE IP", "KEY FINGERPRINT", "VERIFIED", "EXPIRES")
	ids := make([]string, len(list))
	for i, e := range list {
		ids[i] = e.ID
	}
	short := shortIDs(ids)
	for _, e := range list {
		verified := e.VerifiedAt
		if verified == nil {
			verified = &e.CreatedAt
		}
		t.row(short(e.ID), e.VMAName, e.VMAVersion, e.VMAIPAddress, e.VMAFingerprint, f.ago(verified), f.ago(e.ExpiresAt))
	}
	return t.flush()
}
