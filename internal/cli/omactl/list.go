package omactl

import (
	"cmp"
	"context"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// listStatuses are the words --status takes, each standing for the
// stored statuses it lists.
var listStatuses = []struct {
	word     string
	statuses []enroll.Status
}{
	{"pending", []enroll.Status{enroll.StatusPendingVerification, enroll.StatusAwaitingApproval}},
	{"approved", []enroll.Status{enroll.StatusApproved}},
	{"revoked", []enroll.Status{enroll.StatusRevoked}},
	{"rejected", []enroll.Status{enroll.StatusRejected}},
	{"expired", []enroll.Status{enroll.StatusExpired}},
	{"all", nil},
}

// listSorts are the values of --sort.
var listSorts = []string{"name", "created", "updated", "status"}

type listCmdOptions struct {
	listOptions
	Status []string
	Sort   string
	Name   string
	// Selector is -l: a label selector, filtered by the server.
	Selector string
}

func newListCmd(f *Factory) *cobra.Command {
	opts := &listCmdOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List enrollments in any status",
		Long: `List enrollments: by default the pending and approved ones; --status picks
others, revoked, rejected and expired ones included (--status all: every one).
--status takes pending (awaiting approval or still verifying), approved,
revoked, rejected, expired or all, several comma-separated or repeated.

--name keeps the enrollments whose VMA name contains the text, or matches it
when it has wildcards (* ? [...]: 'vma-fra-*'). --sort orders by name (the
default, then oldest first), created, updated (oldest first) or status.

SINCE is how long ago the enrollment entered its status.`,
		Example: `  omactl list
  omactl list --status revoked --name frankfurt
  omactl list --status all --sort updated -o wide
  omactl list --status pending -o name
  omactl list --status approved -o json | jq -r '.[].vma_name'`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runList(ctxOf(cmd), f, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&opts.Status, "status", []string{"pending", "approved"}, "statuses to list: pending, approved, revoked, rejected, expired or all")
	fl.StringVar(&opts.Sort, "sort", "name", "order: name, created, updated or status")
	fl.StringVar(&opts.Name, "name", "", "only VMA names containing this text, or matching it when it has * ? [")
	addListFlags(cmd, &opts.listOptions)
	addSelectorFlag(cmd, &opts.Selector)
	words := make([]string, len(listStatuses))
	for i, s := range listStatuses {
		words[i] = s.word
	}
	_ = cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(words, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("sort", cobra.FixedCompletions(listSorts, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("name", f.completeNames())
	return cmd
}

// statusFilter turns --status words into stored statuses (nil: all).
func statusFilter(words []string) ([]string, error) {
	var out []string
	for _, w := range words {
		for _, p := range strings.Split(w, ",") {
			p = strings.ToLower(strings.TrimSpace(p))
			if p == "" {
				continue
			}
			found := false
			for _, s := range listStatuses {
				if s.word == p {
					if s.statuses == nil {
						return nil, nil
					}
					for _, st := range s.statuses {
						out = append(out, string(st))
					}
					found = true
				}
			}
			if !found && enroll.Status(p).Valid() {
				out, found = append(out, p), true
			}
			if !found {
				return nil, cmdutil.FlagErrorf("--status %q is not one of pending, approved, revoked, rejected, expired, all", clean(p))
			}
		}
	}
	return out, nil
}

// nameMatches reports whether name passes --name.
func nameMatches(pattern, name string) bool {
	if pattern == "" {
		return true
	}
	if strings.ContainsAny(pattern, "*?[") {
		ok, _ := path.Match(pattern, name)
		return ok
	}
	return strings.Contains(name, pattern)
}

func runList(ctx context.Context, f *Factory, opts *listCmdOptions) error {
	statuses, err := statusFilter(opts.Status)
	if err != nil {
		return err
	}
	if !slices.Contains(listSorts, opts.Sort) {
		return cmdutil.FlagErrorf("--sort %q is not one of %s", clean(opts.Sort), strings.Join(listSorts, ", "))
	}
	if opts.Name != "" {
		if _, err := path.Match(opts.Name, ""); err != nil {
			return cmdutil.FlagErrorf("--name %q is not a valid pattern: %v", clean(opts.Name), err)
		}
	}
	if err := checkSelector(opts.Selector); err != nil {
		return err
	}
	c, err := f.Client()
	if err != nil {
		return err
	}
	list, err := c.Enrollments(ctx, client.EnrollmentFilter{Status: strings.Join(statuses, ","), Selector: opts.Selector})
	if err != nil {
		return f.explain(err)
	}
	out := []api.Enrollment{}
	for _, e := range list {
		if nameMatches(opts.Name, e.VMAName) {
			out = append(out, e)
		}
	}
	sortEnrollments(out, opts.Sort)
	s := snapshot{data: out, empty: "No enrollment matches."}
	if len(out) > 0 {
		s.table = func(w io.Writer) error { return f.writeList(w, out, opts.NoHeaders) }
	}
	return f.show(s)
}

// sortEnrollments orders list by key; ties keep the server's order
// (oldest first, then id), so the order is stable.
func sortEnrollments(list []api.Enrollment, key string) {
	slices.SortStableFunc(list, func(a, b api.Enrollment) int {
		switch key {
		case "name":
			return cmp.Compare(a.VMAName, b.VMAName)
		case "created":
			return a.CreatedAt.Compare(b.CreatedAt)
		case "updated":
			return a.UpdatedAt.Compare(b.UpdatedAt)
		case "status":
			return cmp.Compare(a.Status, b.Status)
		}
		return 0
	})
}

func (f *Factory) writeList(w io.Writer, list []api.Enrollment, noHeaders bool) error {
	t := f.newTable(noHeaders, col("ID"), cut("NAME", 10), col("STATUS"), col("SINCE"), cut("SOURCE IP", 15),
		wideCol("VERSION"), wideCol("PORT"), wideCol("CREATED"), wideCol("KEY FINGERPRINT"), wideCol("LABELS"))
	ids := make([]string, len(list))
	for i, e := range list {
		ids[i] = e.ID
	}
	short := shortIDs(ids)
	for _, e := range list {
		port := ""
		if e.TunnelPort != nil {
			port = strconv.Itoa(*e.TunnelPort)
		}
		t.row(short(e.ID), e.VMAName, e.Status, f.ago(&e.UpdatedAt), e.VMAIPAddress, e.VMAVersion, port, f.ago(&e.CreatedAt), e.VMAFingerprint, labelCell(e.Labels, e.VMALabels))
	}
	return t.write(w)
}
