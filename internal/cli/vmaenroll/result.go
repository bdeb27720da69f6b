package vmaenroll

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// Result is the one JSON object `vma-enroll -o json` prints.
type Result struct {
	Status          string   `json:"status"`
	EnrollmentID    string   `json:"enrollment_id"`
	VMAName         string   `json:"vma_name,omitempty"`
	VMAFingerprint  string   `json:"vma_fingerprint"`
	ConfigDir       string   `json:"config_dir"`
	Files           []string `json:"files"`
	AlreadyEnrolled bool     `json:"already_enrolled,omitempty"`
	// ExitCode is the process's exit status, as in cmdutil.JSONError.
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
}

// finish prints the outcome and turns it into the exit status.
func (e *enroller) finish(o outcome) error {
	var fe *cmdutil.FlagError
	if o.code == cmdutil.ExitUsage || errors.As(o.err, &fe) {
		if fe != nil {
			return fe
		}
		return cmdutil.Exit(cmdutil.ExitUsage, o.err)
	}
	r := Result{Status: o.status, ConfigDir: e.dir, Files: e.files, AlreadyEnrolled: o.already}
	if r.Files == nil {
		r.Files = []string{}
	}
	if e.st != nil {
		r.EnrollmentID, r.VMAName, r.VMAFingerprint = e.st.EnrollmentID, e.st.VMAName, e.st.VMAFingerprint
	} else if e.key != nil {
		// Refused before the state was saved (a rejected code, say): the
		// key exists and the next try reuses it.
		r.VMAFingerprint = sshkey.Fingerprint(e.key.Public)
	}
	if o.err != nil {
		r.Error = o.err.Error()
		if o.code == 0 {
			o.code = cmdutil.ExitFailure
		}
	}
	r.ExitCode = o.code
	out := e.f.IO.Out
	if e.cfg.Output == "json" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s\n", b)
	} else if o.err == nil {
		if o.already {
			fmt.Fprintf(out, "Already enrolled: enrollment %s of %q with the OMA at %s was approved.\n", r.EnrollmentID, r.VMAName, e.st.OMA)
			fmt.Fprintf(e.f.IO.ErrOut, "Nothing to do. To enroll again (e.g. after a revocation), run vma-enroll --force with a new pairing code.\n")
		} else {
			fmt.Fprintf(out, "Enrolled: the OMA approved this VMA (enrollment %s).\nTunnel configuration written:\n", r.EnrollmentID)
			for _, f := range r.Files {
				fmt.Fprintf(out, "  %s\n", f)
			}
			fmt.Fprintf(e.f.IO.ErrOut, "\nStart the tunnel with:\n  cp %[1]s/vma-tunnel.service /etc/systemd/system/ && systemctl daemon-reload && systemctl enable --now vma-tunnel\nor try it in the foreground:\n  vma-enroll tunnel --config-dir %[1]s\n", e.dir)
		}
	}
	if o.err != nil {
		return &cmdutil.ExitError{Code: o.code, Err: o.err, Reported: e.cfg.Output == "json"}
	}
	return nil
}
