package vmaenroll

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// StatusReport is what `vma-enroll status -o json` prints: the local state
// without the poll token.
type StatusReport struct {
	Status    string `json:"status"`
	ConfigDir string `json:"config_dir"`
	*State
}

func newStatusCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show this VMA's enrollment state",
		Long: `Show the enrollment state recorded in enrollment.json in --config-dir: the
OMA and its fingerprint, the enrollment id, its status (awaiting_approval,
approved, rejected, expired), this VMA's key fingerprint and, once approved,
the tunnel settings. It reads only the local file and does not contact the
OMA. A VMA that never enrolled shows the status not_enrolled.`,
		Example: `  vma-enroll status
  vma-enroll status -o json | jq -r .status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd.Root())
			if err != nil {
				return err
			}
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
				rep.Status = s.Status
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
		},
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
	line("Status", s.Status)
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
	}
	line("Config dir", rep.ConfigDir)
	line("Updated", s.UpdatedAt.Local().Format(time.DateTime))
	if err := tw.Flush(); err != nil {
		return err
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
