package omactl

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

type approveOptions struct {
	bulkOptions
	Yes      bool
	Arg      string
	Note     string
	DryRun   bool
	Wait     bool
	Timeout  time.Duration
	Interval time.Duration
}

func newApproveCmd(f *Factory) *cobra.Command {
	opts := &approveOptions{}
	cmd := &cobra.Command{
		Use:   "approve ID...",
		Short: "Approve a pending VMA",
		Long: `Approve a VMA that awaits approval: its key is authorized for the restricted
tunnel and it gets its own tunnel port. vma-enroll on the VMA then writes its
tunnel configuration and exits.

ID is the enrollment id, a unique prefix of it (at least 8 characters), or the
VMA name; a name with several enrollments picks the one awaiting approval.
Compare the key fingerprint in 'omactl pending' with the one the VMA console
shows before you approve. If the VMA name already has an approved enrollment,
approving the new one revokes the old one.

--wait is for automation that approves what it has just enrolled. It first
waits until an enrollment of ID awaits approval (the VMA may still be
enrolling), approves it, and then, when oma-server runs the embedded tunnel,
waits until the VMA's tunnel is connected: the VMA has picked up its approval
and is ready. With the openssh or none tunnel modes oma-server cannot see the
tunnel, so --wait ends after the approval and says so. Progress goes to
stderr; the approved enrollment is printed at the end. When --timeout (default
10m) passes first, omactl exits with status 1 and says which step it was
waiting for.

--dry-run shows the enrollment that would be approved and changes nothing.` + bulkHelp,
		Example: `  omactl approve vma-frankfurt-01
  omactl approve 3f2a9c1e --note "checked fingerprint by phone with J. Doe"
  omactl approve vma-frankfurt-01 --dry-run
  omactl approve vma-frankfurt-01 --wait --timeout 15m -o json
  omactl approve vma-fra-01 vma-fra-02 --yes
  omactl approve -l site=fra --dry-run
  omactl approve -l site=fra --yes`,
		Args: func(cmd *cobra.Command, args []string) error {
			if opts.bulk(args) {
				return nil
			}
			return cmdutil.ExactArgs(1)(cmd, args)
		},
		ValidArgsFunction: f.completeEnrollments(enroll.StatusAwaitingApproval),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.bulk(args) {
				if opts.Wait {
					return cmdutil.FlagErrorf("--wait approves one VMA: it excludes several IDs, -l and --all-pending")
				}
				if err := enroll.ValidateText("--note", opts.Note, contract.MaxTextBytes); err != nil {
					return cmdutil.FlagErrorf("%s", enroll.ErrorMessage(err))
				}
				return f.runBulk(ctxOf(cmd), bulkRun{verb: "approve", done: "Approved", states: []enroll.Status{enroll.StatusAwaitingApproval},
					text: opts.Note, yes: opts.Yes, dryRun: opts.DryRun}, args, &opts.bulkOptions)
			}
			opts.Arg = args[0]
			return runApprove(ctxOf(cmd), f, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Note, "note", "", "a note kept with the approval and in the audit trail")
	fl.StringVar(&opts.Note, "notes", "", "old spelling of --note")
	_ = fl.MarkHidden("notes")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "show what would be approved and change nothing")
	fl.BoolVar(&opts.Wait, "wait", false, "wait for ID to await approval, approve it, then wait until its tunnel is up")
	fl.DurationVar(&opts.Timeout, "timeout", 10*time.Minute, "how long --wait waits in all")
	fl.DurationVar(&opts.Interval, "interval", 2*time.Second, "how often --wait asks the server")
	_ = fl.MarkHidden("interval")
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "with several VMAs: do not ask for confirmation (required without a terminal)")
	addBulkFlags(cmd, &opts.bulkOptions, true)
	return cmd
}

func runApprove(ctx context.Context, f *Factory, opts *approveOptions) error {
	if err := enroll.ValidateText("--note", opts.Note, contract.MaxTextBytes); err != nil {
		return cmdutil.FlagErrorf("%s", enroll.ErrorMessage(err))
	}
	if opts.Wait && opts.DryRun {
		return cmdutil.FlagErrorf("--wait and --dry-run exclude each other")
	}
	if opts.Wait && opts.Timeout <= 0 {
		return cmdutil.FlagErrorf("--timeout must be more than 0")
	}
	if opts.Interval < minInterval {
		return cmdutil.FlagErrorf("--interval %s is too short: use %s or more", opts.Interval, minInterval)
	}
	c, err := f.Client()
	if err != nil {
		return err
	}
	if opts.Wait {
		return f.approveWait(ctx, c, opts)
	}
	id, err := f.resolveID(ctx, c, opts.Arg, enroll.StatusAwaitingApproval)
	if err != nil {
		return err
	}
	if opts.DryRun {
		e, err := f.enrollment(ctx, c, id)
		if err != nil {
			return err
		}
		return f.dryRun("approve", []enroll.Status{enroll.StatusAwaitingApproval}, e)
	}
	e, err := c.Approve(ctx, id, opts.Note)
	if err != nil {
		return f.explain(err)
	}
	return f.printApproved(e)
}

func (f *Factory) printApproved(e *api.Enrollment) error {
	return f.print(e, func(w io.Writer) error {
		return f.writeEnrollment(w, "Approved VMA "+clean(e.VMAName)+".", e)
	})
}

// approveWait is approve --wait: wait for an enrollment of opts.Arg (a
// name, an id or an id prefix) to await approval, approve it, and with
// the embedded tunnel wait for its tunnel to connect.
func (f *Factory) approveWait(ctx context.Context, c *client.Client, opts *approveOptions) error {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	arg := strings.TrimSpace(opts.Arg)
	timedOut := func(what string) error {
		return fmt.Errorf("timed out after %s waiting for %s; see 'omactl list --name %s --status all'", opts.Timeout, what, clean(arg))
	}
	// poll calls try every interval until it reports done or fails.
	poll := func(what string, try func() (bool, error)) error {
		tick := time.NewTicker(opts.Interval)
		defer tick.Stop()
		for {
			done, err := try()
			if ctx.Err() != nil {
				return timedOut(what)
			}
			if err != nil && !retryable(err) {
				return f.explain(err)
			}
			if done {
				return nil
			}
			select {
			case <-ctx.Done():
				return timedOut(what)
			case <-tick.C:
			}
		}
	}
	fmt.Fprintf(f.IO.ErrOut, "Waiting for %s to await approval (up to %s)...\n", clean(arg), opts.Timeout)
	var target api.Enrollment
	err := poll(clean(arg)+" to await approval", func() (bool, error) {
		list, err := c.Pending(ctx)
		if err != nil {
			return false, err
		}
		var hits []api.Enrollment
		for _, e := range list {
			if e.VMAName == arg || e.ID == strings.ToLower(arg) || (len(arg) >= MinIDPrefix && strings.HasPrefix(e.ID, strings.ToLower(arg))) {
				hits = append(hits, e)
			}
		}
		switch len(hits) {
		case 0:
			return false, nil
		case 1:
			target = hits[0]
			return true, nil
		}
		return false, f.ambiguous(fmt.Sprintf("%q", clean(arg)), hits)
	})
	if err != nil {
		return err
	}
	e, err := c.Approve(ctx, target.ID, opts.Note)
	if err != nil {
		return f.explain(err)
	}
	fmt.Fprintf(f.IO.ErrOut, "Approved VMA %s (enrollment %s, key %s).\n", clean(e.VMAName), e.ID, clean(e.VMAFingerprint))
	h, err := c.Health(ctx)
	if err != nil || h.Tunnel == nil || h.Tunnel.Mode != "embedded" {
		fmt.Fprintln(f.IO.ErrOut, "oma-server does not run the embedded tunnel, so it cannot see the VMA's tunnel: not waiting for it.")
		return f.printApproved(e)
	}
	fmt.Fprintln(f.IO.ErrOut, "Waiting for its tunnel to connect...")
	err = poll("the tunnel of "+clean(e.VMAName)+" to connect", func() (bool, error) {
		conns, err := c.Active(ctx)
		if err != nil {
			return false, err
		}
		for _, cn := range conns {
			if cn.EnrollmentID == e.ID && cn.ConnectionStatus == enroll.ConnConnected {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(f.IO.ErrOut, "Tunnel of %s is connected.\n", clean(e.VMAName))
	return f.printApproved(e)
}
