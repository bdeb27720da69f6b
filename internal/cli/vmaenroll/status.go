package vmaenroll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// StatusReport is what `vma-enroll status -o json` prints: the local state
// without the poll token, and what the OMA said about it.
type StatusReport struct {
	// Status is the enrollment's status: the OMA's answer when it was
	// asked ("revoked" when it refuses the key), else the local file's.
	Status    string `json:"status"`
	ConfigDir string `json:"config_dir"`
	// LocalStatus is the status recorded in enrollment.json.
	LocalStatus string `json:"local_status,omitempty"`
	// OMACheck is the OMA's answer for an approved enrollment.
	OMACheck *OMACheck `json:"oma_check,omitempty"`
	// TunnelUp says whether the tunnel runs on this VMA (its first local
	// forward listens); absent when it cannot be told.
	TunnelUp *bool `json:"tunnel_up,omitempty"`
	// TunnelPort is this VMA's port on the OMA (its reverse forward).
	TunnelPort int `json:"tunnel_port,omitempty"`
	// Self is the OMA's live answer to GET /api/v1/vma/self, when it gave
	// one (absent with --offline, or when only the SSH check answered).
	Self *api.VMASelf `json:"self,omitempty"`
	*State
}

// OMACheck is the answer of the OMA's SSH endpoint to "do you still accept
// this VMA's key" (a handshake that stops before logging in).
type OMACheck struct {
	// Result is accepted, refused (revoked, or replaced by a newer
	// enrollment), unreachable, identity_mismatch or skipped.
	Result string `json:"result"`
	// Via is how the OMA was asked: "self" (GET /api/v1/vma/self over
	// mTLS) or "ssh" (an SSH handshake that stops before logging in).
	Via   string `json:"via,omitempty"`
	Error string `json:"error,omitempty"`
}

// DefaultStatusTimeout bounds status's question to the OMA.
const DefaultStatusTimeout = 5 * time.Second

func newStatusCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show this VMA's enrollment state, as the OMA sees it",
		Long: `Show this VMA's enrollment: the state recorded in enrollment.json in
--config-dir (the OMA and its fingerprint, the enrollment id, this VMA's key
fingerprint, the tunnel settings) and, once approved, whether the OMA still
accepts it.

To find out, it asks the OMA live: GET /api/v1/vma/self over HTTPS on the
OMA's public port, pinned like enrollment, with this VMA's key as the TLS
client certificate (the answer adds the key's age, rotations and the OMA's
view of the tunnel; "self" in -o json). When the OMA does not answer that
way (an older OMA), it asks the OMA's SSH endpoint whether it would accept
this VMA's key, with the pinned host key, and stops before logging in (no
tunnel is opened, nothing is recorded on the OMA). The answer: enrolled (the
key is accepted), revoked (the OMA refuses it: the enrollment was revoked, or
replaced by a newer one of the same name; enroll again with --force and a
new pairing code), or, when the OMA does not answer within --check-timeout,
the local state with a warning. It also shows whether the tunnel runs on
this VMA (its local forward listens) and the VMA's port on the OMA.
--offline reads only the local file.

A VMA that never enrolled shows the status not_enrolled. With -o json, status
is the OMA's answer when it gave one ("revoked" when it refuses the key),
local_status the file's, oma_check.via how it asked (self or ssh),
oma_check.result one of accepted, refused,
unreachable, identity_mismatch, skipped or unknown (the local configuration
does not allow asking, e.g. no pinned SSH host key).`,
		Example: `  vma-enroll status
  vma-enroll status --offline
  vma-enroll status -o json | jq -r .status`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			offline, _ := cmd.Flags().GetBool("offline")
			timeout, _ := cmd.Flags().GetDuration("check-timeout")
			if timeout <= 0 {
				return cmdutil.FlagErrorf("--check-timeout must be positive, like 5s")
			}
			return runStatus(ctxOf(cmd), f, offline, timeout)
		},
	}
	cmd.Flags().Bool("offline", false, "show only the local state; do not ask the OMA")
	cmd.Flags().Duration("check-timeout", DefaultStatusTimeout, "how long to wait for the OMA's answer")
	_ = cmd.RegisterFlagCompletionFunc("check-timeout", cobra.FixedCompletions([]string{"2s", "5s", "10s"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// check asks the OMA about an approved enrollment and looks for the tunnel
// on this VMA.
func (rep *StatusReport) check(ctx context.Context, dir string, offline bool, timeout time.Duration) {
	s := rep.State
	if s.Status != StatusApproved || s.Tunnel == nil {
		return
	}
	for _, fw := range s.Tunnel.RemoteForwards {
		if _, p, err := net.SplitHostPort(fw.Listen); err == nil {
			rep.TunnelPort, _ = strconv.Atoi(p)
			break
		}
	}
	if len(s.Tunnel.LocalForwards) > 0 {
		if up, ok := listening(s.Tunnel.LocalForwards[0].Listen); ok {
			rep.TunnelUp = &up
		}
	}
	if offline {
		rep.OMACheck = &OMACheck{Result: CheckSkipped}
		return
	}
	start := time.Now()
	if rep.checkSelf(ctx, dir, timeout) {
		return
	}
	// One --check-timeout for both ways of asking.
	if timeout -= time.Since(start); timeout < time.Second {
		timeout = time.Second
	}
	tc, _, err := tunnelClientConfig(tunnelOptions{Dir: dir})
	if err != nil {
		rep.OMACheck = &OMACheck{Result: CheckUnknown, Error: err.Error()}
		return
	}
	tc.ClientVersion = "SSH-2.0-vma-enroll_" + versionToken(cmdutil.Version)
	res, err := probeKey(ctx, tc, timeout)
	rep.OMACheck = &OMACheck{Result: res, Via: "ssh"}
	if err != nil {
		rep.OMACheck.Error = err.Error()
	}
	if res == CheckRefused {
		rep.Status = StatusRevoked
	}
}

func writeStatus(f *Factory, rep StatusReport) error {
	w := f.IO.Out
	if rep.State == nil {
		fmt.Fprintf(w, "Not enrolled (no %s in %s).\n", StateFile, rep.ConfigDir)
		fmt.Fprintln(f.IO.ErrOut, "Enroll with: vma-enroll --oma HOST --code XXXX-XXXX-XXXX --fingerprint sha256:…")
		return nil
	}
	s := rep.State
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, cleanMessage(v))
		}
	}
	status := s.Status
	if c := rep.OMACheck; c != nil {
		switch c.Result {
		case CheckAccepted:
			status = "enrolled (approved; the OMA accepts this VMA's key)"
		case CheckRefused:
			status = "revoked (the OMA refuses this VMA's key: the enrollment was revoked, or replaced by a newer one)"
		case CheckUnreachable:
			status += " (local file: the OMA did not answer)"
		case CheckMismatch:
			status += " (local file: the OMA's SSH host key is not the pinned one)"
		case CheckUnknown:
			status += " (local file: cannot ask the OMA)"
		case CheckSkipped:
			status += " (local file, --offline)"
		}
	}
	line("Status", status)
	line("Enrollment", s.EnrollmentID)
	line("VMA name", s.VMAName)
	line("Key fingerprint", s.VMAFingerprint)
	line("OMA", s.OMA)
	if s.InsecureSkipTLSVerify {
		line("OMA fingerprint", "(not checked: --insecure-skip-tls-verify)")
	} else {
		line("OMA fingerprint", s.OMAFingerprint)
	}
	line("Reason", s.Reason)
	if s.ApprovedAt != nil {
		line("Approved", s.ApprovedAt.Local().Format(time.DateTime))
	}
	if s.waiting() && s.ExpiresAt != nil {
		line("Expires", s.ExpiresAt.Local().Format(time.DateTime))
	}
	if t := s.Tunnel; t != nil {
		host, port := t.Host, t.Port
		if host == "" || port == 0 {
			if a, err := parseOMA(s.OMA); err == nil {
				if host == "" {
					host = a.Host
				}
				if port == 0 {
					port = a.Port
				}
			}
		}
		line("Tunnel", fmt.Sprintf("%s@%s port %d", t.User, host, port))
		var fw []string
		for _, x := range t.LocalForwards {
			fw = append(fw, "local "+x.Listen+" -> OMA "+x.Target)
		}
		for _, x := range t.RemoteForwards {
			fw = append(fw, "OMA "+x.Listen+" -> local "+x.Target)
		}
		line("Forwards", strings.Join(fw, "; "))
		if rep.TunnelPort > 0 {
			line("Tunnel port", fmt.Sprintf("%d on the OMA", rep.TunnelPort))
		}
		if rep.TunnelUp != nil {
			up := "down (not running on this VMA)"
			if *rep.TunnelUp {
				up = "up (" + t.LocalForwards[0].Listen + " listens)"
			}
			line("Tunnel state", up)
		}
	}
	if me := rep.Self; me != nil {
		if me.KeySince != nil {
			line("Key since", fmt.Sprintf("%s (%s ago)", me.KeySince.Local().Format(time.DateTime), (time.Duration(me.KeyAgeSeconds)*time.Second).String()))
		}
		if me.KeyExpiresAt != nil {
			// The OMA's key expiry policy (docs/rotation.md).
			st := me.KeyStatus
			switch me.KeyStatus {
			case "due":
				st += " for rotation (vma-enroll tunnel rotates it; or run vma-enroll rotate)"
			case "overdue":
				st += ": run vma-enroll rotate before it is refused"
			}
			line("Key status", st)
			line("Key expires", me.KeyExpiresAt.Local().Format(time.DateTime))
			if me.KeyRefusedAfter != nil {
				line("Key refused from", me.KeyRefusedAfter.Local().Format(time.DateTime)+" (then re-enroll with a new pairing code)")
			}
		}
		if me.Rotations > 0 {
			line("Rotations", strconv.Itoa(me.Rotations))
		}
		if me.PreviousKeyUntil != nil {
			line("Previous key", me.PreviousKeyFingerprint+" accepted until "+me.PreviousKeyUntil.Local().Format(time.DateTime))
		}
		line("OMA connection", me.ConnectionStatus)
	}
	line("Config dir", rep.ConfigDir)
	line("Updated", s.UpdatedAt.Local().Format(time.DateTime))
	if err := tw.Flush(); err != nil {
		return err
	}
	if c := rep.OMACheck; c != nil && c.Error != "" {
		switch c.Result {
		case CheckUnreachable:
			fmt.Fprintf(f.IO.ErrOut, "Warning: cannot ask the OMA whether it still accepts this VMA (%s): the status above is the local file's. Check the network to %s, or use --offline.\n", cleanMessage(c.Error), s.OMA)
		case CheckUnknown:
			fmt.Fprintf(f.IO.ErrOut, "Warning: cannot ask the OMA whether it still accepts this VMA: %s\n", cleanMessage(c.Error))
		case CheckMismatch:
			fmt.Fprintf(f.IO.ErrOut, "Warning: %s. Someone may be impersonating the OMA, or it was reinstalled: check with the OMA admin.\n", cleanMessage(c.Error))
		}
	}
	switch {
	case rep.Status == StatusRevoked:
		fmt.Fprintln(f.IO.ErrOut, "Enroll again with a new pairing code: vma-enroll --force --oma HOST --code …")
		return nil
	}
	switch s.Status {
	case string(enroll.StatusAwaitingApproval), string(enroll.StatusPendingVerification):
		fmt.Fprintln(f.IO.ErrOut, "Waiting for approval: run vma-enroll to resume waiting.")
	case string(enroll.StatusApproved):
		fmt.Fprintln(f.IO.ErrOut, "Run the tunnel with 'vma-enroll tunnel' or the vma-tunnel.service unit.")
	default:
		fmt.Fprintln(f.IO.ErrOut, "Enroll again with a new pairing code: vma-enroll --force --oma HOST --code …")
	}
	return nil
}

// runStatus reports the local enrollment state and, unless offline, what
// the OMA says about it (within timeout).
func runStatus(ctx context.Context, f *Factory, offline bool, timeout time.Duration) error {
	cfg := f.Config
	dir, err := filepath.Abs(cfg.ConfigDir)
	if err != nil {
		return err
	}
	st, err := loadState(dir)
	if err != nil {
		return err
	}
	rep := StatusReport{Status: "not_enrolled", ConfigDir: dir}
	if st != nil {
		s := *st
		s.PollToken = ""
		rep.State = &s
		rep.Status, rep.LocalStatus = s.Status, s.Status
		rep.check(ctx, dir, offline, timeout)
	}
	if cfg.Output == "json" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(f.IO.Out, "%s\n", b)
		return err
	}
	return writeStatus(f, rep)
}

// checkSelf asks GET /api/v1/vma/self with this VMA's key (live, over
// mTLS). It reports false when the OMA cannot be asked that way (no answer,
// an older OMA without the endpoint, an unreadable key): the SSH check
// then answers.
func (rep *StatusReport) checkSelf(ctx context.Context, dir string, timeout time.Duration) bool {
	if rep.State.OMAFingerprint == "" && !rep.State.InsecureSkipTLSVerify {
		return false
	}
	if checkKeyTrust(dir) != nil {
		return false
	}
	priv, err := readKey(keyPath(dir))
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	me, err := selfCall(ctx, rep.State, priv)
	switch {
	case err == nil:
		rep.Self = me
		rep.OMACheck = &OMACheck{Result: CheckAccepted, Via: "self"}
		// The OMA's TLS pins during a rotation of its certificate (omapins.go).
		if _, err := learnOMAPins(dir, me, time.Now()); err == nil {
			if st, err := loadState(dir); err == nil && st != nil {
				rep.State.OMAFingerprint, rep.State.OMANextFingerprint = st.OMAFingerprint, st.OMANextFingerprint
			}
		}
		if me.TunnelPort != nil {
			rep.TunnelPort = *me.TunnelPort
		}
		return true
	case errors.Is(err, errRefused):
		rep.OMACheck = &OMACheck{Result: CheckRefused, Via: "self", Error: err.Error()}
		rep.Status = StatusRevoked
		return true
	}
	return false
}
