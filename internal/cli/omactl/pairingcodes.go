package omactl

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/labels"
)

func newPairingCodeListCmd(f *Factory) *cobra.Command {
	opts := &listOptions{}
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List pairing codes (never the codes themselves)",
		Long: `List the pairing codes that can still be used, newest first: id, uses left of
all, expiry, who made it and its labels. Pre-approved codes are marked
"AUTO" (with their --from limit under -o wide): each use of such a code is
approved without an admin. --all also lists spent, expired and revoked codes.
The codes themselves are never stored, only their keyed hash.`,
		Example: `  omactl pairing-code list
  omactl pairing-code list --all -o wide
  omactl pairing-code list -o json | jq -r '.[] | select(.auto_approve) | .id'`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			list, err := c.PairingCodes(ctxOf(cmd), all)
			if err != nil {
				return f.explain(err)
			}
			s := snapshot{data: list, empty: "No usable pairing code (--all lists spent, expired and revoked ones)."}
			if len(list) > 0 {
				s.table = func(w io.Writer) error { return f.writePairingCodes(w, list, opts.NoHeaders) }
			}
			return f.show(s)
		},
	}
	addListFlags(cmd, opts)
	cmd.Flags().BoolVar(&all, "all", false, "also list spent, expired and revoked codes")
	return cmd
}

func (f *Factory) writePairingCodes(w io.Writer, list []api.PairingCodeInfo, noHeaders bool) error {
	t := f.newTable(noHeaders, col("ID"), col("APPROVAL"), col("USES LEFT"), col("EXPIRES"), cut("CREATED BY", 8),
		cut("LABELS", 10), wideCol("STATE"), wideCol("FROM"), wideCol("NOTE"))
	ids := make([]string, len(list))
	for i, pc := range list {
		ids[i] = pc.ID
	}
	short := shortIDs(ids)
	for _, pc := range list {
		approval := "manual"
		if pc.AutoApprove {
			approval = "AUTO"
			if pc.FromCIDR != "" {
				approval = "AUTO+CIDR"
			}
		}
		exp := pc.ExpiresAt
		t.row(short(pc.ID), approval, strconv.Itoa(pc.UsesLeft)+"/"+strconv.Itoa(pc.Uses), f.ago(&exp), pc.CreatedBy,
			labels.Set(pc.Labels).String(), pc.State, pc.FromCIDR, pc.Note)
	}
	if err := t.write(w); err != nil {
		return err
	}
	for _, pc := range list {
		if pc.AutoApprove && pc.State == "usable" {
			_, err := fmt.Fprintln(w, "AUTO: each use is approved without an admin; revoke a code you no longer need.")
			return err
		}
	}
	return nil
}

func newPairingCodeRevokeCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a pairing code: no further VMA can use it",
		Long: `Revoke a pairing code by its id (from 'omactl pairing-code list' or the id
printed when it was made; a unique prefix of 8 or more characters will do).
No further VMA can enroll with it; enrollments it already made stay as they
are (revoke or reject those on their own, e.g. 'omactl revoke -l site=fra').`,
		Example: `  omactl pairing-code revoke 5b0c7d1e
  omactl pairing-code revoke 5b0c7d1e-0a3c-4c55-9f5e-6c1d2b3a4f50 -o json`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			id := strings.ToLower(strings.TrimSpace(args[0]))
			if len(id) < MinIDPrefix || !isIDPrefix(id) {
				return fmt.Errorf("%q is not a pairing code id: give the id or 8+ characters of it (see 'omactl pairing-code list')", clean(args[0]))
			}
			if len(id) < 36 {
				list, err := c.PairingCodes(ctxOf(cmd), true)
				if err != nil {
					return f.explain(err)
				}
				var hits []string
				for _, pc := range list {
					if strings.HasPrefix(pc.ID, id) {
						hits = append(hits, pc.ID)
					}
				}
				switch len(hits) {
				case 0:
					return &notFoundError{fmt.Sprintf("no pairing code id starts with %s", id)}
				case 1:
					id = hits[0]
				default:
					return fmt.Errorf("id prefix %s matches %d pairing codes: give more characters", id, len(hits))
				}
			}
			pc, err := c.RevokePairingCode(ctxOf(cmd), id)
			if err != nil {
				return f.explain(err)
			}
			return f.print(pc, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "Revoked pairing code %s (%d of %d uses taken).\n", pc.ID, pc.UsesTaken, pc.Uses)
				return err
			})
		},
	}
}
