package omactl

import (
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

func newActiveCmd(f *Factory) *cobra.Command {
	opts := &listOptions{}
	var selector string
	cmd := &cobra.Command{
		Use:   "active",
		Short: "List approved VMAs and their tunnels",
		Long: `List the approved VMAs and the state of their tunnel. STATE is connected,
disconnected or never connected; SINCE is when the tunnel entered that state
(connected: when it connected; disconnected: when it was last seen before it
went away); LAST SEEN is its last sign of life (keepalives refresh it while
connected). PORT is the VMA's tunnel port on the OMA. -o wide adds where the
tunnel comes from, the SSH user and the key fingerprint.

With the openssh or none tunnel modes the server cannot see the tunnels, so
they show as never connected.`,
		Example: `  omactl active
  omactl active -l site=fra -o wide
  omactl active -o json | jq '.[] | select(.connection_status == "connected")'`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			if err := checkSelector(selector); err != nil {
				return err
			}
			list, err := c.ActiveSelected(ctxOf(cmd), selector)
			if err != nil {
				return f.explain(err)
			}
			s := snapshot{data: list, empty: "No VMA is approved."}
			if len(list) > 0 {
				s.table = func(w io.Writer) error { return f.writeActive(w, list, opts.NoHeaders) }
			}
			return f.show(s)
		},
	}
	addListFlags(cmd, opts)
	addSelectorFlag(cmd, &selector)
	return cmd
}

// writeActive shows each approved VMA's tunnel as three columns that
// cannot contradict each other: STATE (connected, disconnected, never
// connected, revoked), SINCE (when it entered that state: the connection's
// start, or its last sign of life before it went away) and LAST SEEN.
func (f *Factory) writeActive(w io.Writer, list []api.Connection, noHeaders bool) error {
	t := f.newTable(noHeaders, col("ID"), cut("NAME", 10), col("STATE"), col("SINCE"), col("LAST SEEN"), col("PORT"),
		wideCol("FROM"), wideCol("USER"), wideCol("KEY FINGERPRINT"), wideCol("LABELS"))
	ids := make([]string, len(list))
	for i, c := range list {
		ids[i] = c.EnrollmentID
	}
	short := shortIDs(ids)
	for _, c := range list {
		port := ""
		if c.TunnelPort != nil {
			port = strconv.Itoa(*c.TunnelPort)
		}
		state, since := tunnelState(c)
		seen := f.ago(c.LastSeenAt)
		if c.LastSeenAt == nil {
			seen = "never"
		}
		t.row(short(c.EnrollmentID), c.VMAName, state, f.ago(since), seen, port, c.RemoteAddr, c.SSHUser, c.VMAFingerprint, labelCell(c.Labels, c.VMALabels))
	}
	return t.write(w)
}

// tunnelState is what the active list and 'omactl get' say of a tunnel:
// its state and since when. A disconnected tunnel went away after it was
// last seen; the server keeps no separate time for that.
func tunnelState(c api.Connection) (string, *time.Time) {
	switch {
	case c.ConnectionStatus == "connected":
		return "connected", c.ConnectedAt
	case c.ConnectionStatus == "revoked":
		return "revoked", nil
	case c.ConnectedAt == nil && c.LastSeenAt == nil:
		return "never connected", nil
	default:
		return c.ConnectionStatus, c.LastSeenAt
	}
}
