package vmaenroll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// RotateReport is what `vma-enroll rotate -o json` prints.
type RotateReport struct {
	// Result is rotated, or recovered (an interrupted rotation was
	// finished and no new one made).
	Result                 string     `json:"result"`
	EnrollmentID           string     `json:"enrollment_id"`
	KeyFingerprint         string     `json:"key_fingerprint"`
	PreviousKeyFingerprint string     `json:"previous_key_fingerprint,omitempty"`
	PreviousKeyUntil       *time.Time `json:"previous_key_until,omitempty"`
}

func newRotateCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Replace this VMA's key with a new one, without a new pairing code",
		Long: `Replace this VMA's SSH/TLS key (id_ed25519 in --config-dir) with a new one. No
pairing code and no admin approval: the request is authenticated by the
current key (as a TLS client certificate on the OMA's public port, pinned
like enrollment), and the new key proves itself by signing a value unique to
that connection.

The steps, each safe to interrupt (a rerun, or 'vma-enroll tunnel', finds
the key that works):
  1. the new key is written to id_ed25519.next (and .next.pub), 0600;
  2. the OMA swaps the keys in one transaction and audits a key_rotation
     event with both fingerprints; it still accepts the previous key until
     this VMA first uses the new one, or its --rotation-grace (10m) ends;
  3. id_ed25519.next becomes id_ed25519 and enrollment.json records the new
     fingerprint; then the new key is used once (GET /api/v1/vma/self),
     which ends the previous key's grace.
A running 'vma-enroll tunnel' notices the new key and reconnects with it.

Only one rotation runs at a time on a VMA (id_ed25519.lock); a second one
exits 1 at once. A revoked VMA cannot rotate (exit 7): enroll again with a
new pairing code.

Exit status: 0 rotated (or an interrupted rotation finished), 1 error (the
OMA did not answer: run it again), 2 usage error, 7 the OMA refused this
VMA's key (revoked or replaced: re-enroll).`,
		Example: `  vma-enroll rotate
  vma-enroll rotate --config-dir /etc/vma-enroll -o json`,
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
			rep, err := runRotate(ctxOf(cmd), f, dir)
			if err != nil {
				return err
			}
			if cfg.Output == "json" {
				b, err := json.MarshalIndent(rep, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(f.IO.Out, "%s\n", b)
				return err
			}
			switch rep.Result {
			case "recovered":
				fmt.Fprintf(f.IO.Out, "An interrupted rotation finished: this VMA's key is now %s.\n", rep.KeyFingerprint)
			default:
				fmt.Fprintf(f.IO.Out, "Rotated: this VMA's key is now %s (was %s).\n", rep.KeyFingerprint, rep.PreviousKeyFingerprint)
			}
			return nil
		},
	}
	return cmd
}

// runRotate rotates the key of the enrollment in dir.
func runRotate(ctx context.Context, f *Factory, dir string) (*RotateReport, error) {
	return rotateKey(ctx, f.IO.ErrOut, dir)
}

// rotateKey rotates the key of the enrollment in dir, writing its progress
// to progress (vma-enroll rotate, and vma-enroll tunnel inside the OMA's
// rotation window: autorotate.go).
func rotateKey(ctx context.Context, progress io.Writer, dir string) (*RotateReport, error) {
	st, err := loadState(dir)
	if err != nil {
		return nil, cmdutil.Exit(cmdutil.ExitFailure, err)
	}
	if st == nil || st.Status != string(enroll.StatusApproved) {
		return nil, cmdutil.Exit(cmdutil.ExitFailure, fmt.Errorf("this VMA is not enrolled (no approved enrollment in %s): enroll first", statePath(dir)))
	}
	if err := checkKeyTrust(dir); err != nil {
		return nil, cmdutil.Exit(cmdutil.ExitFailure, err)
	}
	unlock, ok, err := lockKeys(dir)
	if err != nil {
		return nil, cmdutil.Exit(cmdutil.ExitFailure, fmt.Errorf("lock %s: %w", keyLockPath(dir), err))
	}
	if !ok {
		return nil, cmdutil.Exit(cmdutil.ExitFailure, fmt.Errorf("another vma-enroll rotate is running on this VMA (it holds %s): wait for it, then check with vma-enroll status", keyLockPath(dir)))
	}
	defer unlock()
	refused := func(err error) error {
		return cmdutil.Exit(ExitKeyRefused, fmt.Errorf("%v: the enrollment was revoked or replaced; enroll again with a new pairing code (vma-enroll --force --code …)", err))
	}

	// 0. Finish or undo an interrupted rotation.
	switch out, err := settleKeys(ctx, dir, st); {
	case errors.Is(err, errRefused):
		return nil, refused(err)
	case err != nil:
		return nil, cmdutil.Exit(cmdutil.ExitFailure, fmt.Errorf("%v; nothing was changed, run vma-enroll rotate again", err))
	case out == settledPromoted:
		fmt.Fprintf(progress, "Finished an interrupted rotation: the OMA accepts %s.\n", st.VMAFingerprint)
		return &RotateReport{Result: "recovered", EnrollmentID: st.EnrollmentID, KeyFingerprint: st.VMAFingerprint}, nil
	case out == settledDropped:
		fmt.Fprintln(progress, "Removed the new key of an interrupted rotation the OMA never took.")
	}
	cur, err := readKey(keyPath(dir))
	if err != nil {
		return nil, cmdutil.Exit(cmdutil.ExitFailure, fmt.Errorf("read this VMA's key: %w", err))
	}

	// 1. The new key on disk before anyone hears of it.
	kp, err := sshkey.LoadOrGenerateFile(nextKeyPath(dir), st.VMAName)
	if err != nil {
		return nil, cmdutil.Exit(cmdutil.ExitFailure, fmt.Errorf("write the new key: %w", err))
	}
	if err := atomicSyncDir(dir); err != nil {
		return nil, cmdutil.Exit(cmdutil.ExitFailure, err)
	}
	fmt.Fprintf(progress, "New key %s written to %s; asking the OMA to swap…\n", fingerprintOf(kp.Private), nextKeyPath(dir))

	// 2. The swap.
	res, err := rotateCall(ctx, st, cur, kp.Private)
	if err != nil {
		var ae *vmaAPIError
		switch {
		case errors.Is(err, errRefused):
			_ = dropNext(dir)
			return nil, refused(err)
		case errors.As(err, &ae) && ae.Status < 500 && ae.Status != 429:
			// A definite no: the OMA did not take the key.
			_ = dropNext(dir)
			return nil, cmdutil.Exit(cmdutil.ExitFailure, fmt.Errorf("%v; the key is unchanged", err))
		default:
			// Unknown outcome: keep the next key, a rerun settles it.
			return nil, cmdutil.Exit(cmdutil.ExitFailure, fmt.Errorf("%v; the outcome is unknown: run vma-enroll rotate again (it finishes or undoes this rotation)", err))
		}
	}
	prev := fingerprintOf(cur)

	// 3. Promote, then use the new key once (ends the previous key's grace).
	if err := promoteNext(dir, st, res.KeyFingerprint); err != nil {
		return nil, cmdutil.Exit(cmdutil.ExitFailure, fmt.Errorf("the OMA took the new key but %v: run vma-enroll rotate again to finish", err))
	}
	if _, err := selfCall(ctx, st, kp.Private); err != nil {
		fmt.Fprintf(progress, "Warning: the OMA took the new key, but checking it failed: %v\n", err)
	}
	rep := &RotateReport{Result: "rotated", EnrollmentID: st.EnrollmentID, KeyFingerprint: res.KeyFingerprint, PreviousKeyFingerprint: prev}
	if !res.PreviousKeyUntil.IsZero() {
		u := res.PreviousKeyUntil
		rep.PreviousKeyUntil = &u
	}
	return rep, nil
}
