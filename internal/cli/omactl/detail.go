package omactl

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/labels"
)

// writeEnrollment prints one enrollment as labelled lines, after a headline.
func (f *Factory) writeEnrollment(w io.Writer, headline string, e *api.Enrollment) error {
	fmt.Fprintln(w, headline)
	var lines [][2]string
	line := func(label, value string) {
		if value != "" {
			lines = append(lines, [2]string{label, value})
		}
	}
	line("Enrollment", clean(e.ID))
	line("VMA name", clean(e.VMAName))
	line("VMA version", clean(e.VMAVersion))
	line("Key fingerprint", clean(e.VMAFingerprint))
	line("Source IP", clean(e.VMAIPAddress))
	line("Status", clean(e.Status))
	line("Labels", cleanLong(labels.Set(e.Labels).String()))
	line("VMA labels", cleanLong(labels.Set(e.VMALabels).String()))
	if e.TunnelPort != nil {
		line("Tunnel port", strconv.Itoa(*e.TunnelPort))
	}
	line("Created", f.when(&e.CreatedAt))
	if e.VerifiedAt != nil {
		line("Verified", f.when(e.VerifiedAt))
	}
	switch e.Status {
	case "pending_verification", "awaiting_approval":
		if e.ExpiresAt != nil {
			line("Expires", f.when(e.ExpiresAt))
		}
	}
	if e.ApprovedAt != nil || e.ApprovedBy != "" {
		line("Approved", f.when(e.ApprovedAt)+" by "+clean(e.ApprovedBy))
	}
	if e.KeySince != nil {
		// The key expiry policy (oma-server --key-max-age).
		line("Key since", f.when(e.KeySince))
		status := clean(e.KeyStatus)
		switch e.KeyStatus {
		case string(enroll.KeyDue):
			status += " (in the rotation window: vma-enroll tunnel rotates it)"
		case string(enroll.KeyOverdue):
			status += " (past the key max age; rotate before it is refused)"
		case string(enroll.KeyExpired):
			status += " (refused: the VMA needs a new pairing code)"
		}
		line("Key status", status)
		if e.KeyExpiresAt != nil {
			line("Key overdue", f.when(e.KeyExpiresAt))
		}
		if e.KeyRefusedAfter != nil {
			line("Key refused", f.when(e.KeyRefusedAfter))
		}
	}
	line("Notes", cleanLong(e.ApprovalNotes))
	if e.RejectedBy != "" || e.RejectionReason != "" {
		line("Rejected by", clean(e.RejectedBy))
		line("Reason", cleanLong(e.RejectionReason))
	}
	if e.RevokedAt != nil || e.RevokedBy != "" {
		line("Revoked", f.when(e.RevokedAt)+" by "+clean(e.RevokedBy))
		line("Reason", cleanLong(e.RevocationReason))
	}
	writeLabelled(w, lines)
	return nil
}

// writeLabelled prints "  Label:  value" lines with the values aligned.
func writeLabelled(w io.Writer, lines [][2]string) {
	n := 0
	for _, l := range lines {
		if l[1] != "" {
			n = max(n, utf8.RuneCountInString(l[0]))
		}
	}
	var b strings.Builder
	for _, l := range lines {
		if l[1] == "" {
			continue
		}
		fmt.Fprintf(&b, "  %s:%s%s\n", l[0], strings.Repeat(" ", n-utf8.RuneCountInString(l[0])+2), l[1])
	}
	io.WriteString(w, b.String())
}
