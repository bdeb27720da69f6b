package omactl

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

type pendingOptions struct {
	listOptions
	watchOptions
	Selector string
}

func newPendingCmd(f *Factory) *cobra.Command {
	opts := &pendingOptions{}
	cmd := &cobra.Command{
		Use:   "pending",
		Short: "List VMAs awaiting approval",
		Long: `List the VMAs that proved possession of their key and now await approval,
oldest first: name, version, source IP and the SHA256 fingerprint of the VMA's
SSH key. Before approving, compare that fingerprint with the one the VMA
console shows ('vma-enroll' prints it while it waits).

A name marked "*" is a VMA whose approval revokes an approved one; a note
under the table says which: "(re-enrollment)" for the same name, "(replaces
NAME: same key)" for another name holding the same SSH key (a renamed VMA,
or a clone of an appliance sharing its key: only one of them can keep the
key). -o json lists them in "replaces".

An enrollment not approved within the approval window (30 minutes by
default) expires and disappears from this list.

--watch keeps the list up to date until Ctrl-C: on a terminal the screen is
cleared and the list redrawn every --interval; otherwise (a pipe, a log) the
list is printed again only when it changed, after an empty line, and with
-o json as one JSON array per line (-o yaml: one YAML document each, after
'---'). Connection problems are reported and retried.`,
		Example: `  omactl pending
  omactl pending -o json | jq -r '.[].vma_name'
  omactl pending --watch
  omactl pending -l site=fra -o wide
  omactl pending --watch --interval 10s -o json | while read -r list; do …; done`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.validate(); err != nil {
				return err
			}
			if err := checkSelector(opts.Selector); err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			fetch := func(ctx context.Context) (snapshot, error) {
				list, err := c.PendingSelected(ctx, opts.Selector)
				if err != nil {
					return snapshot{}, err
				}
				return f.pendingSnapshot(list, opts.NoHeaders), nil
			}
			if opts.Watch {
				return f.watch(ctxOf(cmd), "omactl pending", opts.Interval, fetch)
			}
			s, err := fetch(ctxOf(cmd))
			if err != nil {
				return f.explain(err)
			}
			return f.show(s)
		},
	}
	addListFlags(cmd, &opts.listOptions)
	addWatchFlags(cmd, &opts.watchOptions)
	addSelectorFlag(cmd, &opts.Selector)
	return cmd
}

func (f *Factory) pendingSnapshot(list []api.Enrollment, noHeaders bool) snapshot {
	s := snapshot{data: list, empty: "No VMA is awaiting approval."}
	if len(list) > 0 {
		s.table = func(w io.Writer) error { return f.writePending(w, list, noHeaders) }
	}
	return s
}

func (f *Factory) writePending(w io.Writer, list []api.Enrollment, noHeaders bool) error {
	t := f.newTable(noHeaders, col("ID"), cut("NAME", 10), wideCol("VERSION"), cut("SOURCE IP", 15),
		cut("KEY FINGERPRINT", minFingerprint), wideCol("VERIFIED"), col("EXPIRES"), wideCol("LABELS"))
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
		name := e.VMAName
		if len(e.Replaces) > 0 {
			name = "*" + name
		}
		t.row(short(e.ID), name, e.VMAVersion, e.VMAIPAddress, e.VMAFingerprint, f.ago(verified), f.ago(e.ExpiresAt), labelCell(e.Labels, e.VMALabels))
	}
	if err := t.write(w); err != nil {
		return err
	}
	// The replacements as notes under the table, where no column width
	// can cut them.
	for _, e := range list {
		if m := replacesMarker(e.Replaces); m != "" {
			if _, err := fmt.Fprintf(w, "* %s%s: approving it revokes the approved VMA.\n", cleanLong(e.VMAName), m); err != nil {
				return err
			}
		}
	}
	return nil
}

// minFingerprint is the narrowest a key fingerprint is cut to in a table:
// "SHA256:", 16 base64 characters (96 bits: no one makes a key whose
// fingerprint starts the same) and "...". -o wide and 'omactl get' show it
// whole.
const minFingerprint = 7 + 16 + 3

// replacesMarker is the NAME column's note on the approved VMAs an approval
// would supersede: " (re-enrollment)" for the same name, " (replaces vma-a:
// same key)" for another name holding the same key.
func replacesMarker(rs []api.Replacement) string {
	var others []string
	sameName := false
	for _, r := range rs {
		if r.SameName {
			sameName = true
		} else {
			others = append(others, r.VMAName)
		}
	}
	switch {
	case len(others) > 0:
		return " (replaces " + strings.Join(others, ", ") + ": same key)"
	case sameName:
		return " (re-enrollment)"
	}
	return ""
}
