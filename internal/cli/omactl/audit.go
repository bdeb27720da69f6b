package omactl

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

type auditOptions struct {
	Since, Until string
	Type         string
	VMA          string
	Enrollment   string
	Limit        int
}

// auditPage is the page size asked of the server (its maximum).
const auditPage = enroll.MaxAuditLimit

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
(RFC 3339, or a date like 2025-01-31). --type is one of: ` + eventTypeList() + `.

'omactl audit verify' checks that no one rewrote the trail.`,
		Example: `  omactl audit --since 24h
  omactl audit --vma vma-frankfurt-01
  omactl audit --type enrollment_failed --since 2025-01-31T08:00:00Z
  omactl audit --enrollment 3f2a9c1e -o json`,
		Args: cobra.NoArgs,
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
		flt.Limit = auditPage
		if opts.Limit > 0 {
			flt.Limit = min(auditPage, opts.Limit-len(events))
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
	return f.print(events, func(w io.Writer) error { return f.writeAudit(w, events) })
}

func (f *Factory) writeAudit(w io.Writer, events []api.AuditEvent) error {
	if len(events) == 0 {
		fmt.Fprintln(f.IO.ErrOut, "No audit events match.")
		return nil
	}
	t := newTable(w, "ID", "TIME", "EVENT", "VMA", "ENROLLMENT", "SOURCE IP", "ACTOR", "DETAILS")
	for _, e := range events {
		t.row(strconv.FormatInt(e.ID, 10), f.when(&e.CreatedAt), e.EventType, e.VMAName, shortID(deref(e.EnrollmentID)), e.SourceIP, e.ApprovedBy, details(e.EventDetails))
	}
	return t.flush()
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
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			rep, err := c.AuditVerify(ctxOf(cmd))
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
		},
	}
}
