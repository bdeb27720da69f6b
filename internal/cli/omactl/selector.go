package omactl

import (
	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/labels"
)

// addSelectorFlag adds -l/--selector (kubectl's label selector syntax).
func addSelectorFlag(cmd *cobra.Command, s *string) {
	cmd.Flags().StringVarP(s, "selector", "l", "", "only VMAs whose labels match, e.g. site=fra, site!=muc, 'site in (fra,muc)'")
}

// checkSelector reports a malformed selector as a usage error before any
// request is made.
func checkSelector(s string) error {
	if _, err := labels.ParseSelector(s); err != nil {
		return cmdutil.FlagErrorf("-l: %s", err.Error())
	}
	return nil
}

// labelCell renders the admin's labels and, apart, those the VMA asked for:
// "site=fra vma:rack=r1".
func labelCell(admin, vma map[string]string) string {
	out := labels.Set(admin).String()
	if v := labels.Set(vma).String(); v != "" {
		if out != "" {
			out += " "
		}
		out += "vma:" + v
	}
	return out
}
