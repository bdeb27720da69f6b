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
		c, ctx, done := f.completionClient(cmd)
		if c == nil {
			return nil, none
		}
		defer done()
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

// completionClient is the API client of shell completion, and a context
// bounded by f.CompletionTimeout; nil when the settings or the token are
// missing. done releases both.
func (f *Factory) completionClient(cmd *cobra.Command) (*client.Client, context.Context, func()) {
	// Completion runs no PersistentPreRunE: read the settings here.
	if err := f.loadConfig(cmd); err != nil {
		return nil, nil, nil
	}
	tok, err := f.Config.token()
	if err != nil {
		return nil, nil, nil
	}
	c, err := client.New(client.Config{BaseURL: f.Config.Server, Token: tok, Fingerprint: f.Config.Fingerprint, Timeout: f.CompletionTimeout, UserAgent: "omactl/" + cmdutil.Version})
	if err != nil {
		return nil, nil, nil
	}
	ctx, cancel := context.WithTimeout(ctxOf(cmd), f.CompletionTimeout)
	return c, ctx, func() { cancel(); c.Close() }
}

// completeNames completes a flag's value with the VMA names the server
// knows (every status), quietly with none when it cannot be asked.
func (f *Factory) completeNames() cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		none := cobra.ShellCompDirectiveNoFileComp
		c, ctx, done := f.completionClient(cmd)
		if c == nil {
			return nil, none
		}
		defer done()
		list, err := c.Enrollments(ctx, client.EnrollmentFilter{})
		if err != nil {
			return nil, none
		}
		var out []cobra.Completion
		seen := map[string]bool{}
		for i := len(list) - 1; i >= 0; i-- { // newest first: its status describes the name
			e := list[i]
			name := clean(e.VMAName)
			if seen[name] || !strings.HasPrefix(name, toComplete) {
				continue
			}
			seen[name] = true
			out = append(out, cobra.CompletionWithDesc(name, clean(e.Status)))
		}
		return out, none
	}
}

// completeEnrollmentFlag completes a flag taking an enrollment (audit
// --enrollment): names and ids in every status.
func (f *Factory) completeEnrollmentFlag() cobra.CompletionFunc {
	inner := f.completeEnrollments(enroll.Statuses...)
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return inner(cmd, nil, toComplete)
	}
}

// outputCompletions are the values of -o with what each prints.
func outputCompletions(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return []cobra.Completion{
		cobra.CompletionWithDesc("table", "aligned columns that fit the terminal"),
		cobra.CompletionWithDesc("wide", "every column, nothing cut"),
		cobra.CompletionWithDesc("json", "one JSON document"),
		cobra.CompletionWithDesc("yaml", "one YAML document"),
		cobra.CompletionWithDesc("name", "ids only, one a line"),
	}, cobra.ShellCompDirectiveNoFileComp
}
