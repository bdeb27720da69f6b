package omactl

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// completeEnrollments completes the ID argument of approve, reject and
// revoke with the VMA names and enrollment ids in the given statuses, asked
// of the configured server. Shell completion must never get in the way: an
// unreachable server, a missing or refused token, or a slow answer
// (f.CompletionTimeout) quietly yields no candidates.
func (f *Factory) completeEnrollments(statuses ...enroll.Status) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		none := cobra.ShellCompDirectiveNoFileComp
		if len(args) > 0 {
			return nil, none
		}
		// Completion runs no PersistentPreRunE: read the settings here.
		if err := f.loadConfig(cmd); err != nil {
			return nil, none
		}
		tok, err := f.Config.token()
		if err != nil {
			return nil, none
		}
		c, err := client.New(client.Config{BaseURL: f.Config.Server, Token: tok, Timeout: f.CompletionTimeout, UserAgent: "omactl/" + cmdutil.Version})
		if err != nil {
			return nil, none
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(ctxOf(cmd), f.CompletionTimeout)
		defer cancel()
		var out []cobra.Completion
		seen := map[string]bool{}
		add := func(value, desc string) {
			if seen[value] || !strings.HasPrefix(value, toComplete) {
				return
			}
			seen[value] = true
			out = append(out, cobra.CompletionWithDesc(value, desc))
		}
		for _, st := range statuses {
			list, err := c.Enrollments(ctx, client.EnrollmentFilter{Status: string(st)})
			if err != nil {
				return nil, none
			}
			for _, e := range list {
				name := clean(e.VMAName)
				add(name, clean(e.Status)+", enrollment "+shortID(e.ID))
				add(e.ID, name+", "+clean(e.Status))
			}
		}
		return out, none
	}
}
