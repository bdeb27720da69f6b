package omactl

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// enrollmentPage is what 'omactl describe' prints with -o json: the
// enrollment (every field of the list's item, at the top level), its
// tunnel (null when it never had one) and its audit events, oldest first.
type enrollmentPage struct {
	api.Enrollment
	Connection *api.Connection  `json:"connection"`
	Events     []api.AuditEvent `json:"events"`
}

// getOptions are the options of get and describe.
type getOptions struct {
	Arg string
	// Describe makes -o json and -o yaml print the whole page (with the
	// tunnel and the events) instead of the list's item.
	Describe bool
}

// preferGet is which enrollment of a VMA name get and describe mean when
// it has several: the approved one, else the one awaiting approval.
var preferGet = []enroll.Status{enroll.StatusApproved, enroll.StatusAwaitingApproval, enroll.StatusPendingVerification}

func newGetCmd(f *Factory, describe bool) *cobra.Command {
	use, short := "get ID", "Show one enrollment, its tunnel and its history"
	jsonIs := "get prints the enrollment: the same object as an item of\n'omactl list -o json'"
	example := `  omactl get vma-frankfurt-01
  omactl get 3f2a9c1e -o json | jq -r .status
  omactl get vma-frankfurt-01 -o wide`
	if describe {
		use = "describe ID"
		jsonIs = "describe prints the enrollment (the same object as an item of\n'omactl list -o json') with two more fields: \"connection\" (the tunnel, as an\nitem of 'omactl active -o json', or null) and \"events\" (its audit events,\noldest first)"
		example = `  omactl describe vma-frankfurt-01
  omactl describe 3f2a9c1e -o json | jq -r '.events[].event_type'`
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: `Show one enrollment on a page a person reads: its VMA, key fingerprint,
status and who changed it when; its tunnel (state, since when, last seen, port);
and its history, the audit events of this enrollment, oldest first.

ID is the enrollment id, a unique prefix of it (at least 8 characters), or the
VMA name; a name with several enrollments picks the approved one, else the one
awaiting approval (see 'omactl list --name NAME --status all' for the others).

'omactl get' and 'omactl describe' print the same page. With -o json or -o yaml
` + jsonIs + `.`,
		Example: example,
		Args:    cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGet(ctxOf(cmd), f, getOptions{Arg: args[0], Describe: describe})
		},
		ValidArgsFunction: f.completeEnrollments(enroll.Statuses...),
	}
	return cmd
}

// fetchPage reads an enrollment with its tunnel and events.
func (f *Factory) fetchPage(ctx context.Context, c *client.Client, id string) (*enrollmentPage, error) {
	list, err := c.Enrollments(ctx, client.EnrollmentFilter{IDPrefix: id})
	if err != nil {
		return nil, f.explain(err)
	}
	p := &enrollmentPage{Events: []api.AuditEvent{}}
	found := false
	for _, e := range list {
		if e.ID == id {
			p.Enrollment, found = e, true
		}
	}
	if !found {
		return nil, fmt.Errorf("enrollment %s no longer exists", id)
	}
	if p.Status == string(enroll.StatusApproved) || p.Status == string(enroll.StatusRevoked) {
		conns, err := c.Active(ctx)
		if err != nil {
			return nil, f.explain(err)
		}
		for i := range conns {
			if conns[i].EnrollmentID == id {
				p.Connection = &conns[i]
			}
		}
	}
	flt := client.AuditFilter{EnrollmentID: id, Limit: enroll.MaxAuditLimit}
	for {
		page, err := c.Audit(ctx, flt)
		if err != nil {
			return nil, f.explain(err)
		}
		p.Events = append(p.Events, page.Events...)
		if page.NextCursor == "" || len(page.Events) == 0 {
			break
		}
		flt.Cursor = page.NextCursor
	}
	return p, nil
}

func runGet(ctx context.Context, f *Factory, opts getOptions) error {
	c, err := f.Client()
	if err != nil {
		return err
	}
	id, err := f.resolveID(ctx, c, opts.Arg, preferGet...)
	if err != nil {
		return err
	}
	p, err := f.fetchPage(ctx, c, id)
	if err != nil {
		return err
	}
	var data any = &p.Enrollment
	if opts.Describe {
		data = p
	}
	return f.print(data, func(w io.Writer) error { return f.writePage(w, p) })
}

// writePage prints the page of one enrollment.
func (f *Factory) writePage(w io.Writer, p *enrollmentPage) error {
	if err := f.writeEnrollment(w, "VMA "+clean(p.VMAName), &p.Enrollment); err != nil {
		return err
	}
	if c := p.Connection; c != nil {
		fmt.Fprintln(w, "\nTunnel")
		state, since := tunnelState(*c)
		if since != nil {
			state += " since " + f.when(since)
		}
		seen := "never"
		if c.LastSeenAt != nil {
			seen = f.when(c.LastSeenAt)
		}
		lines := [][2]string{{"State", state}, {"Last seen", seen}}
		if c.TunnelPort != nil {
			lines = append(lines, [2]string{"Port on the OMA", strconv.Itoa(*c.TunnelPort)})
		}
		lines = append(lines, [2]string{"From", clean(c.RemoteAddr)}, [2]string{"SSH user", clean(c.SSHUser)})
		writeLabelled(w, lines)
	}
	fmt.Fprintf(w, "\nHistory (%d %s)\n", len(p.Events), plural(len(p.Events), "event", "events"))
	if len(p.Events) == 0 {
		return nil
	}
	t := f.newTable(false, col("ID"), col("TIME"), col("EVENT"), wideCol("SOURCE IP"), cut("ACTOR", 5), cut("DETAILS", 10))
	for _, e := range p.Events {
		when := f.ago(&e.CreatedAt)
		if t.wide {
			when = f.when(&e.CreatedAt)
		}
		t.row(strconv.FormatInt(e.ID, 10), when, e.EventType, e.SourceIP, e.ApprovedBy, details(e.EventDetails))
	}
	return t.write(w)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
