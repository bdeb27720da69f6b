package omactl

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

type auditOptions struct {
	listOptions
	Since, Until string
	Type         string
	VMA          string
	Enrollment   string
	Limit        int
	Follow       bool
	Interval     time.Duration
}

// auditPage is the number of events asked of the server at a time: the
// Factory's AuditPage, else the server's maximum.
func (f *Factory) auditPage() int {
	if f.AuditPage > 0 {
		return min(f.AuditPage, enroll.MaxAuditLimit)
	}
	return enroll.MaxAuditLimit
}

func newAuditCmd(f *Factory) *cobra.Command {
	opts := &auditOptions{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit trail",
		Long: `Show the audit trail of enrollment events, oldest first: pairing codes made,
enrollments, failed attempts (with the reason and source IP), verifications,
approvals, rejections, revocations, expiries, tunnel connections.

By default the newest 100 events matching the filters are shown; --limit 0
shows all. --since and --until take an age (90m, 24h, 7d) or a time
(RFC 3339, or a date like 2025-01-31). --type is one of:

  ` + strings.Join(cmdutil.Wrap(eventTypeList()+".", cmdutil.HelpWidth-2), "\n  ") + `

--follow (-f) then keeps running until Ctrl-C and prints new events as they
happen, asking the server every --interval for events after the last one
shown. With -o json it prints one JSON object per event, one per line
(JSON Lines), instead of one array; with -o yaml one YAML document per event,
each after '---'.

'omactl audit verify' checks that no one rewrote the trail.`,
		Example: `  omactl audit --since 24h
  omactl audit --vma vma-frankfurt-01
  omactl audit --type enrollment_failed --since 2025-01-31T08:00:00Z
  omactl audit --enrollment 3f2a9c1e -o json
  omactl audit --follow
  omactl audit -f --type enrollment_failed -o json | jq -r .source_ip`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAudit(cmd, f, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Since, "since", "", "only events at or after this age or time (24h, 7d, RFC 3339)")
	fl.StringVar(&opts.Until, "until", "", "only events before this age or time")
	fl.StringVar(&opts.Type, "type", "", "only events of this type")
	fl.StringVar(&opts.VMA, "vma", "", "only events of this VMA name")
	fl.StringVar(&opts.Enrollment, "enrollment", "", "only events of this enrollment (id, 8+ character prefix or VMA name)")
	fl.IntVar(&opts.Limit, "limit", 100, "show at most the newest N events; 0 for all")
	fl.BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new events as they happen, until Ctrl-C")
	fl.DurationVar(&opts.Interval, "interval", 2*time.Second, "how often --follow asks the server for new events")
	addListFlags(cmd, &opts.listOptions)
	types := make([]cobra.Completion, len(enroll.EventTypes))
	for i, t := range enroll.EventTypes {
		types[i] = string(t)
	}
	_ = cmd.RegisterFlagCompletionFunc("type", cobra.FixedCompletions(types, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("vma", f.completeNames())
	_ = cmd.RegisterFlagCompletionFunc("enrollment", f.completeEnrollmentFlag())
	cmd.AddCommand(newAuditVerifyCmd(f))
	return cmd
}

func eventTypeList() string {
	s := make([]string, len(enroll.EventTypes))
	for i, t := range enroll.EventTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// parseWhen reads an age ("24h", "7d") as that long before now, or a time.
func parseWhen(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if d, err := strconv.Atoi(n); err == nil && d >= 0 {
			return now.Add(-time.Duration(d) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04", s, loc); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an age (90m, 24h, 7d) nor a time (2025-01-31T08:00:00Z, 2025-01-31)", s)
}

func runAudit(cmd *cobra.Command, f *Factory, opts *auditOptions) error {
	var flt client.AuditFilter
	now := f.Now()
	var err error
	if opts.Since != "" {
		if flt.Since, err = parseWhen(opts.Since, now, f.Loc); err != nil {
			return cmdutil.FlagErrorf("--since: %v", err)
		}
	}
	if opts.Until != "" {
		if flt.Until, err = parseWhen(opts.Until, now, f.Loc); err != nil {
			return cmdutil.FlagErrorf("--until: %v", err)
		}
	}
	if opts.Type != "" && !enroll.EventType(opts.Type).Valid() {
		return cmdutil.FlagErrorf("--type %q is not an event type; use one of: %s", clean(opts.Type), eventTypeList())
	}
	if opts.Limit < 0 {
		return cmdutil.FlagErrorf("--limit must be 0 (all) or more")
	}
	if opts.Follow {
		if opts.Until != "" {
			return cmdutil.FlagErrorf("--follow shows new events as they come: it cannot be used with --until")
		}
		if opts.Interval < minInterval {
			return cmdutil.FlagErrorf("--interval %s is too short: use %s or more", opts.Interval, minInterval)
		}
	}
	flt.EventType = opts.Type
	flt.VMAName = opts.VMA
	c, err := f.Client()
	if err != nil {
		return err
	}
	ctx := ctxOf(cmd)
	if opts.Enrollment != "" {
		if flt.EnrollmentID, err = f.resolveID(ctx, c, opts.Enrollment); err != nil {
			return err
		}
	}
	// Newest first, page by page, until the limit; shown oldest first.
	flt.Descending = true
	events := []api.AuditEvent{}
	for {
		flt.Limit = f.auditPage()
		if opts.Limit > 0 {
			flt.Limit = min(flt.Limit, opts.Limit-len(events))
		}
		page, err := c.Audit(ctx, flt)
		if err != nil {
			return f.explain(err)
		}
		events = append(events, page.Events...)
		if page.NextCursor == "" || len(page.Events) == 0 || (opts.Limit > 0 && len(events) >= opts.Limit) {
			break
		}
		flt.Cursor = page.NextCursor
	}
	if opts.Limit > 0 && len(events) > opts.Limit {
		events = events[:opts.Limit]
	}
	slices.Reverse(events)
	if opts.Follow {
		return f.followAudit(ctx, c, flt, events, opts)
	}
	s := snapshot{data: events, empty: "No audit events match."}
	if len(events) > 0 {
		s.table = func(w io.Writer) error { return f.writeAudit(w, events, opts.NoHeaders) }
	}
	return f.show(s)
}

// followAudit prints the events shown so far and then, every interval,
// the events after the last one, until ctx ends or SIGINT or SIGTERM
// arrives (a normal end). The filters stay; the server pages in id order
// from the cursor, which is the id of the last event printed.
func (f *Factory) followAudit(ctx context.Context, c *client.Client, flt client.AuditFilter, events []api.AuditEvent, opts *auditOptions) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	headers := !opts.NoHeaders
	emit := func(evs []api.AuditEvent) error {
		if len(evs) == 0 {
			return nil
		}
		if f.Template != "" {
			return f.writeTemplate(f.IO.Out, evs)
		}
		switch f.Config.Output {
		case "name":
			return writeNames(f.IO.Out, evs)
		case "json":
			for _, e := range evs {
				if err := writeJSONLine(f.IO.Out, e); err != nil {
					return err
				}
			}
			return nil
		case "yaml":
			for _, e := range evs {
				if _, err := fmt.Fprintln(f.IO.Out, "---"); err != nil {
					return err
				}
				if err := writeYAML(f.IO.Out, e); err != nil {
					return err
				}
			}
			return nil
		}
		err := f.writeAudit(f.IO.Out, evs, !headers)
		headers = false
		return err
	}
	if err := emit(events); err != nil {
		return err
	}
	if len(events) == 0 {
		fmt.Fprintln(f.IO.ErrOut, "No audit events match yet; waiting for new ones (Ctrl-C to stop).")
	}
	flt.Descending = false
	flt.Cursor = ""
	if n := len(events); n > 0 {
		flt.Cursor = strconv.FormatInt(events[n-1].ID, 10)
	}
	tick := time.NewTicker(opts.Interval)
	defer tick.Stop()
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for {
			flt.Limit = f.auditPage()
			page, err := c.Audit(ctx, flt)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				if !retryable(err) {
					return f.explain(err)
				}
				if msg := f.explain(err).Error(); msg != lastErr {
					fmt.Fprintf(f.IO.ErrOut, "Error: %s (retrying every %s)\n", msg, opts.Interval)
					lastErr = msg
				}
				break
			}
			if lastErr != "" {
				fmt.Fprintln(f.IO.ErrOut, "Connected again.")
				lastErr = ""
			}
			if err := emit(page.Events); err != nil {
				return err
			}
			if n := len(page.Events); n > 0 {
				flt.Cursor = strconv.FormatInt(page.Events[n-1].ID, 10)
			}
			if page.NextCursor == "" || len(page.Events) == 0 {
				break
			}
		}
	}
}

func (f *Factory) writeAudit(w io.Writer, events []api.AuditEvent, noHeaders bool) error {
	t := f.newTable(noHeaders, col("ID"), col("TIME"), col("EVENT"), cut("VMA", 10), wideCol("ENROLLMENT"),
		wideCol("SOURCE IP"), cut("ACTOR", 5), cut("DETAILS", 10))
	for _, e := range events {
		when := f.ago(&e.CreatedAt)
		if t.wide {
			when = f.when(&e.CreatedAt)
		}
		t.row(strconv.FormatInt(e.ID, 10), when, e.EventType, e.VMAName, shortID(deref(e.EnrollmentID)), e.SourceIP, e.ApprovedBy, details(e.EventDetails))
	}
	return t.write(w)
}

func newAuditVerifyCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check that the audit trail was not rewritten",
		Long: `Check the audit trail's chain: every row carries an HMAC over its content and
the previous row's HMAC, keyed by a secret kept in the OMA's data directory
(not in the database). Someone who can write the database can still not
change, insert or remove rows unnoticed.

Prints OK with the number of rows checked, or the first row where the chain
breaks, and then exits with status 1.`,
		Example: `  omactl audit verify
  omactl audit verify -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAuditVerify(ctxOf(cmd), f)
		},
	}
}

// runAuditVerify asks the server to check the audit chain and prints its
// report; a broken chain exits 1 after the report.
func runAuditVerify(ctx context.Context, f *Factory) error {
	c, err := f.Client()
	if err != nil {
		return err
	}
	rep, err := c.AuditVerify(ctx)
	if err != nil {
		return f.explain(err)
	}
	err = f.print(rep, func(w io.Writer) error {
		if rep.OK {
			_, err := fmt.Fprintf(w, "OK: audit chain intact, %d events checked, newest is #%d.\n", rep.Checked, rep.HeadID)
			return err
		}
		_, err := fmt.Fprintf(w, "BROKEN: the audit chain breaks at event #%d: %s\n", rep.BreakID, cleanLong(rep.Reason))
		return err
	})
	if err != nil {
		return err
	}
	if !rep.OK {
		return cmdutil.Exit(cmdutil.ExitFailure, fmt.Errorf("audit chain broken at event #%d: the trail was changed outside oma-server; keep a copy of the database and investigate", rep.BreakID))
	}
	return nil
}
