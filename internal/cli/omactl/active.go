package omactl

import (
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

func newActiveCmd(f *Factory) *cobra.Command {
	opts := &listOptions{}
	cmd := &cobra.Command{
		Use:   "active",
		Short: "List approved VMAs and their tunnels",
		Long: `List the approved VMAs with the state of their tunnel (connected,
disconnected), their tunnel port on the OMA, when their tunnel was last seen
and since when it is connected.

With the openssh or none tunnel modes the server cannot see the tunnels, so
they show as disconnected.`,
		Example: `  omactl active
  omactl active -o json | jq '.[] | select(.connection_status == "connected")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			list, err := c.Active(ctxOf(cmd))
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
	return cmd
}

func (f *Factory) writeActive(w io.Writer, list []api.Connection, noHeaders bool) error {
	t := newTable(w, noHeaders, "ID", "NAME", "TUNNEL", "PORT", "LAST SEEN", "CONNECTED", "USER", "KEY FINGERPRINT")
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
		t.row(short(c.EnrollmentID), c.VMAName, c.ConnectionStatus, port, f.ago(c.LastSeenAt), f.ago(c.ConnectedAt), c.SSHUser, c.VMAFingerprint)
	}
	return t.flush()
}
