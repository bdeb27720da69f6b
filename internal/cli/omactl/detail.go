package omactl

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

// writeEnrollment prints one enrollment as labelled lines, after a headline.
func (f *Factory) writeEnrollment(w io.Writer, headline string, e *api.Enrollment) error {
	fmt.Fprintln(w, headline)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	line := func(label, value string) {
		if value == "" {
			return
		}
		fmt.Fprintf(tw, "  %s:\t%s\n", label, value)
	}
	line("Enrollment", clean(e.ID))
	line("VMA name", clean(e.VMAName))
	line("VMA version", clean(e.VMAVersion))
	line("Key fingerprint", clean(e.VMAFingerprint))
	line("Source IP", clean(e.VMAIPAddress))
	line("Status", clean(e.Status))
	if e.TunnelPort != nil {
		line("Tunnel port", strconv.Itoa(*e.TunnelPort))
	}
	if e.ApprovedAt != nil || e.ApprovedBy != "" {
		line("Approved", clean(e.ApprovedBy)+", "+f.when(e.ApprovedAt))
	}
	line("Notes", cleanLong(e.ApprovalNotes))
	if e.RejectedBy != "" || e.RejectionReason != "" {
		line("Rejected by", clean(e.RejectedBy))
		line("Reason", cleanLong(e.RejectionReason))
	}
	if e.RevokedAt != nil || e.RevokedBy != "" {
		line("Revoked", clean(e.RevokedBy)+", "+f.when(e.RevokedAt))
		line("Reason", cleanLong(e.RevocationReason))
	}
	line("Created", f.when(&e.CreatedAt))
	return tw.Flush()
}
