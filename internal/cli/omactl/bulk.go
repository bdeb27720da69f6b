package omactl

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// bulkOptions select several enrollments for approve, reject and revoke:
// several IDs, -l SELECTOR or --all-pending (docs/fleet.md).
type bulkOptions struct {
	Selector   string
	AllPending bool
}

// bulkHelp is appended to the long help of approve, reject and revoke.
const bulkHelp = `

Several at once: give several IDs, or -l SELECTOR (labels, kubectl syntax:
site=fra, site!=muc, 'site in (fra,muc)'), or --all-pending (approve and
reject). omactl lists what will change and, on a terminal, asks once;
without a terminal --yes is required. Each VMA is decided on its own: one
that cannot be (e.g. no longer pending: 409 wrong_state) is reported and the
others still go through; omactl then exits with status 1. --dry-run lists
what would change and changes nothing.`

func addBulkFlags(cmd *cobra.Command, o *bulkOptions, allPending bool) {
	addSelectorFlag(cmd, &o.Selector)
	if allPending {
		cmd.Flags().BoolVar(&o.AllPending, "all-pending", false, "act on every VMA awaiting approval (with -l: those that match)")
	}
}

// bulk reports whether the command acts on a set rather than one ID.
func (o *bulkOptions) bulk(args []string) bool {
	return len(args) > 1 || o.Selector != "" || o.AllPending
}

// bulkRun is one bulk decision: verb on the enrollments in states.
type bulkRun struct {
	verb   string          // approve, reject, revoke
	done   string          // Approved, ...
	states []enroll.Status // the states the verb acts on
	text   string          // notes or reason
	yes    bool
	dryRun bool
}

func (f *Factory) runBulk(ctx context.Context, b bulkRun, args []string, o *bulkOptions) error {
	if len(args) > 0 && (o.Selector != "" || o.AllPending) {
		return cmdutil.FlagErrorf("give IDs or a selection (-l, --all-pending), not both")
	}
	if err := checkSelector(o.Selector); err != nil {
		return err
	}
	interactive := f.IO.InTTY && f.IO.ErrTTY
	if !b.yes && !b.dryRun && !interactive {
		return errNeedYes(b.verb + " of several VMAs")
	}
	c, err := f.Client()
	if err != nil {
		return err
	}
	var targets []api.Enrollment
	if len(args) > 0 {
		seen := map[string]bool{}
		for _, a := range args {
			id, err := f.resolveID(ctx, c, a, b.states...)
			if err != nil {
				return err
			}
			if seen[id] {
				continue
			}
			seen[id] = true
			e, err := f.enrollment(ctx, c, id)
			if err != nil {
				return err
			}
			targets = append(targets, *e)
		}
	} else {
		sts := make([]string, len(b.states))
		for i, s := range b.states {
			sts[i] = string(s)
		}
		if o.AllPending {
			sts = []string{string(enroll.StatusAwaitingApproval)}
		}
		targets, err = c.Enrollments(ctx, client.EnrollmentFilter{Status: strings.Join(sts, ","), Selector: o.Selector})
		if err != nil {
			return f.explain(err)
		}
	}
	if len(targets) == 0 {
		fmt.Fprintf(f.IO.ErrOut, "Nothing to %s: no VMA matches.\n", b.verb)
		return f.printNothing()
	}
	var wrong []api.Enrollment
	for _, e := range targets {
		if !slices.Contains(b.states, enroll.Status(e.Status)) {
			wrong = append(wrong, e)
		}
	}
	if b.dryRun {
		fmt.Fprintf(f.IO.ErrOut, "Dry run: %s would act on %d VMA(s); nothing was changed.\n", b.verb, len(targets)-len(wrong))
		err := f.print(targets, func(w io.Writer) error { return f.writeList(w, targets, false) })
		if err != nil {
			return err
		}
		if len(wrong) > 0 {
			return fmt.Errorf("dry run: %d of them (%s) are in no state %s acts on, so those would fail; nothing was changed", len(wrong), namesOf(wrong), b.verb)
		}
		return nil
	}
	if interactive && !b.yes {
		fmt.Fprintf(f.IO.ErrOut, "This will %s %d VMA(s):\n", b.verb, len(targets))
		if err := f.writeList(f.IO.ErrOut, targets, false); err != nil {
			return err
		}
	}
	if err := f.confirm(fmt.Sprintf("%s these %d VMA(s)?", titleCase(b.verb), len(targets)), b.yes); err != nil {
		return err
	}
	ids := make([]string, len(targets))
	for i, e := range targets {
		ids[i] = e.ID
	}
	res, err := c.Bulk(ctx, b.verb, ids, b.text)
	if err != nil {
		return f.explain(err)
	}
	names := make(map[string]string, len(targets))
	for _, e := range targets {
		names[e.ID] = e.VMAName
	}
	for i := range res.Results {
		if res.Results[i].VMAName == "" {
			res.Results[i].VMAName = names[res.Results[i].ID]
		}
	}
	if err := f.print(res, func(w io.Writer) error { return f.writeBulk(w, b, res) }); err != nil {
		return err
	}
	if res.Failed > 0 {
		return cmdutil.Exit(cmdutil.ExitFailure, fmt.Errorf("%d of %d VMA(s) could not be %s (see the results above); the others were", res.Failed, len(res.Results), strings.ToLower(b.done)))
	}
	return nil
}

func (f *Factory) writeBulk(w io.Writer, b bulkRun, res *api.BulkResponse) error {
	t := f.newTable(false, col("ID"), cut("NAME", 10), cut("RESULT", 20))
	short := shortIDs(func() []string {
		out := make([]string, len(res.Results))
		for i, r := range res.Results {
			out[i] = r.ID
		}
		return out
	}())
	for _, r := range res.Results {
		result := strings.ToLower(b.done)
		if !r.OK && r.Error != nil {
			result = fmt.Sprintf("%d %s: %s", r.HTTPStatus, r.Error.Code, r.Error.Message)
		}
		t.row(short(r.ID), r.VMAName, result)
	}
	if err := t.write(w); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%s %d of %d VMA(s).\n", b.done, res.Succeeded, len(res.Results))
	return err
}

func namesOf(list []api.Enrollment) string {
	var out []string
	for i, e := range list {
		if i == 5 {
			out = append(out, fmt.Sprintf("and %d more", len(list)-5))
			break
		}
		out = append(out, clean(e.VMAName)+" is "+e.Status)
	}
	return strings.Join(out, ", ")
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
