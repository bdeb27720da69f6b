package omactl

import (
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

func newActiveCmd(f *Factory) *cobra.Command {
	opts := &listOptions{}
	var selector string
	var keyStatus []string
	cmd := &cobra.Command{
		Use:   "active",
		Short: "List approved VMAs and their tunnels",
		Long: `List the approved VMAs and the state of their tunnel. STATE is connected,
disconnected or never connected; SINCE is when the tunnel entered that state
(connected: when it connected; disconnected: when it was last seen before it
went away); LAST SEEN is its last sign of life (keepalives refresh it while
connected). PORT is the VMA's tunnel port on the OMA. KEY AGE is the age of
the VMA's key (since its approval or last rotation), followed by its status
under the server's key expiry policy (oma-server --key-max-age) when it is
not ok: due (inside the rotation window: a running vma-enroll tunnel
rotates it), overdue (past the max age, still accepted inside the grace) or
expired (refused: the VMA needs a new pairing code). --key-status lists only
the VMAs whose key has one of the given statuses. -o wide adds where the
tunnel comes from, the SSH user and the key fingerprint; -o json the key's
key_since, key_age_seconds, key_status, key_rotate_after, key_expires_at and
key_refused_after.

With the openssh or none tunnel modes the server cannot see the tunnels, so
they show as never connected.`,
		Example: `  omactl active
  omactl active -l site=fra -o wide
  omactl active -o json | jq '.[] | select(.connection_status == "connected")'

  # VMAs whose key is due for rotation or past the max age
  omactl active --key-status due,overdue
  omactl active --key-status expired -o json | jq -r '.[].vma_name'`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkKeyStatus(keyStatus); err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			if err := checkSelector(selector); err != nil {
				return err
			}
			if f.Template == "" && f.Config.Output == "json" {
				// The server's list, indented: what decoding and encoding
				// it would print, at a fraction of the cost for a fleet.
				raw, err := c.ActiveFilteredJSON(ctxOf(cmd), selector, strings.Join(keyStatus, ","))
				if err != nil {
					return f.explain(err)
				}
				return writeRawJSON(f.IO.Out, raw)
			}
			list, err := c.ActiveFiltered(ctxOf(cmd), selector, strings.Join(keyStatus, ","))
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
	cmd.Flags().StringSliceVar(&keyStatus, "key-status", nil, "only VMAs whose key has one of these statuses: ok, due, overdue, expired (comma-separated)")
	_ = cmd.RegisterFlagCompletionFunc("key-status", cobra.FixedCompletions(keyStatusNames(), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func keyStatusNames() []string {
	out := make([]string, len(enroll.KeyStatuses))
	for i, s := range enroll.KeyStatuses {
		out[i] = string(s)
	}
	return out
}

// checkKeyStatus reports an unknown --key-status as a usage error before
// any request is made.
func checkKeyStatus(list []string) error {
	for _, s := range list {
		if !slices.Contains(keyStatusNames(), s) {
			return cmdutil.FlagErrorf("--key-status %q: use ok, due, overdue or expired (comma-separated)", s)
		}
	}
	return nil
}

// keyAgeCell is the KEY AGE of a VMA: its key's age, and its status when
// that is not ok ("80d due", "91d overdue").
func keyAgeCell(c api.Connection) string {
	if c.KeySince == nil {
		return "-"
	}
	age := relative(time.Unix(c.KeyAgeSeconds, 0), time.Unix(0, 0))
	if age == "just now" {
		age = "0s"
	}
	age = strings.TrimSuffix(age, " ago")
	if c.KeyStatus != "" && c.KeyStatus != string(enroll.KeyOK) {
		age += " " + c.KeyStatus
	}
	return age
}

// writeActive shows each approved VMA's tunnel as three columns that
// cannot contradict each other: STATE (connected, disconnected, never
// connected, revoked), SINCE (when it entered that state: the connection's
// start, or its last sign of life before it went away) and LAST SEEN.
func (f *Factory) writeActive(w io.Writer, list []api.Connection, noHeaders bool) error {
	t := f.newTable(noHeaders, col("ID"), cut("NAME", 10), col("STATE"), col("SINCE"), col("LAST SEEN"), col("PORT"), col("KEY AGE"),
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
		t.row(short(c.EnrollmentID), c.VMAName, state, f.ago(since), seen, port, keyAgeCell(c), c.RemoteAddr, c.SSHUser, c.VMAFingerprint, labelCell(c.Labels, c.VMALabels))
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
