package vmaenroll

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/labels"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/vmaclient"
)

// Final statuses of a run, as -o json reports them.
const (
	StatusApproved            = "approved"
	StatusRejected            = "rejected"
	StatusExpired             = "expired"
	StatusRevoked             = "revoked"
	StatusTimeout             = "timeout"
	StatusPairingCodeRejected = "pairing_code_rejected"
	StatusIdentityMismatch    = "identity_mismatch"
	StatusInterrupted         = "interrupted"
	StatusError               = "error"
)

// longPollWait is the wait asked of the server per result call.
const longPollWait = 25 * time.Second

// enrollAttempts bounds retries of enroll and verify on transient errors.
const enrollAttempts = 5

// exchangeTimeout bounds enroll and verify together once the pairing code
// is on its way: an interrupt waits for them (see enroll) at most this long.
const exchangeTimeout = 45 * time.Second

// enroller carries one run of the enrollment.
type enroller struct {
	f        *Factory
	cfg      Config
	dir      string
	addr     omaAddr
	pin      string
	insecure bool
	c        *client.Client
	key      *sshkey.KeyPair
	st       *State
	files    []string
	labels   labels.Set // --label
}

// outcome is how a run ended.
type outcome struct {
	status  string
	code    int
	err     error
	already bool
}

// fail is a failed run: its exit status comes from exitCodes by status,
// except that a usage error (cmdutil.FlagError, or an ExitError with its
// own code such as the wizard's "no answer") keeps its own.
func fail(status string, err error) outcome {
	return outcome{status: status, code: exitCode(status, err), err: err}
}

func usage(format string, args ...any) outcome {
	return fail(StatusError, cmdutil.FlagErrorf(format, args...))
}

func runEnroll(ctx context.Context, f *Factory) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &enroller{f: f, cfg: f.Config}
	var out outcome
	if l, err := labels.ParseArgs(f.Labels); err != nil {
		out = usage("--label: %v", err)
	} else {
		e.labels = l
		out = e.run(ctx)
	}
	if e.c != nil {
		e.c.Close()
	}
	return e.finish(out)
}

func (e *enroller) note(format string, args ...any) {
	fmt.Fprintf(e.f.IO.ErrOut, format+"\n", args...)
}

func (e *enroller) run(ctx context.Context) outcome {
	dir, err := filepath.Abs(e.cfg.ConfigDir)
	if err != nil {
		return usage("--config-dir: %v", err)
	}
	e.dir = dir
	st, err := loadState(dir)
	if err != nil {
		return fail(StatusError, err)
	}
	if st != nil && !e.cfg.Force {
		if o := e.changedSettings(st); o != nil {
			e.st = st
			return *o
		}
		switch {
		case st.Status == StatusApproved:
			e.st = st
			if e.cfg.Code != "" || e.cfg.CodeFile != "" {
				e.note("Note: ignoring the pairing code: this VMA is already enrolled (use --force to enroll again).")
			}
			e.files = existing(dir)
			return outcome{status: StatusApproved, already: true}
		case st.waiting():
			return e.resume(ctx, st)
		default:
			e.note("The previous enrollment %s ended as %s; starting a new one.", st.EnrollmentID, st.Status)
		}
	}
	return e.fresh(ctx)
}

// changedSettings refuses a rerun whose --oma or --name differ from the
// recorded enrollment (approved or waiting) instead of silently ignoring
// them, as 'tailscale up' refuses changed settings: --force starts over.
func (e *enroller) changedSettings(st *State) *outcome {
	if !st.waiting() && st.Status != StatusApproved {
		return nil // ended: a new enrollment starts anyway
	}
	what := "is enrolled"
	if st.waiting() {
		what = "has an enrollment waiting for approval"
	}
	if e.cfg.OMA != "" {
		a, err := parseOMA(e.cfg.OMA)
		if err != nil {
			o := usage("--oma: %v", err)
			return &o
		}
		if old, err := parseOMA(st.OMA); err == nil && a != old {
			o := usage("this VMA %s as %q with the OMA at %s (enrollment %s), not %s: to enroll with %s instead, add --force and a new pairing code", what, st.VMAName, old, st.EnrollmentID, a, a)
			return &o
		}
	}
	if e.cfg.Name != "" && e.cfg.Name != st.VMAName {
		o := usage("this VMA %s as %q with the OMA at %s (enrollment %s), not as %q: to enroll as %q instead, add --force and a new pairing code", what, st.VMAName, st.OMA, st.EnrollmentID, enroll.Printable(e.cfg.Name), enroll.Printable(e.cfg.Name))
		return &o
	}
	return nil
}

// dirError explains a failure to use the config directory.
func (e *enroller) dirError(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%v: run vma-enroll as root, or pass --config-dir with a directory you may write", err)
	}
	return err
}

// existing lists the enrollment's files present in dir.
func existing(dir string) []string {
	var out []string
	for _, n := range []string{"id_ed25519", "id_ed25519.pub", vmaclient.FileKnownHosts, vmaclient.FileSSHConfig, StateFile, vmaclient.FileUnit} {
		p := filepath.Join(dir, n)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// inputs gathers the OMA address and the pairing code, from the settings or,
// on a terminal, by asking.
func (e *enroller) inputs() (omaAddr, string, *outcome) {
	code := strings.TrimSpace(e.cfg.Code)
	if code != "" && e.cfg.CodeFile != "" {
		o := usage("give the pairing code once: --code (or VMA_ENROLL_CODE) or --code-file, not both")
		return omaAddr{}, "", &o
	}
	if code == "" && e.cfg.CodeFile != "" {
		data, err := os.ReadFile(e.cfg.CodeFile)
		if err != nil {
			o := usage("--code-file: %v", err)
			return omaAddr{}, "", &o
		}
		code = strings.TrimSpace(string(data))
	}
	var missing []string
	if strings.TrimSpace(e.cfg.OMA) == "" {
		missing = append(missing, "--oma")
	}
	if code == "" {
		missing = append(missing, "--code")
	}
	if len(missing) > 0 && !e.f.interactive() {
		o := usage("missing %s: pass them as flags (or VMA_ENROLL_OMA, VMA_ENROLL_CODE, --code-file); on a terminal vma-enroll asks for them", strings.Join(missing, " and "))
		return omaAddr{}, "", &o
	}
	var addr omaAddr
	var err error
	if e.cfg.OMA == "" {
		e.note("Enroll this VMA with its OMA. The OMA admin gives you the address and a pairing code ('omactl pairing-code').")
		_, err := e.f.ask("OMA address (HOST or HOST:PORT): ", func(s string) error {
			a, err := parseOMA(s)
			addr = a
			return err
		})
		if err != nil {
			o := fail(StatusError, err)
			return omaAddr{}, "", &o
		}
	} else if addr, err = parseOMA(e.cfg.OMA); err != nil {
		o := usage("--oma: %v", err)
		return omaAddr{}, "", &o
	}
	var canon string
	if code == "" {
		_, err := e.f.ask("Pairing code (XXXX-XXXX-XXXX): ", func(s string) error {
			c, err := enroll.NormalizePairingCode(s)
			canon = c
			if err != nil {
				return fmt.Errorf("%s; try again", enroll.ErrorMessage(err))
			}
			return nil
		})
		if err != nil {
			o := fail(StatusError, err)
			return omaAddr{}, "", &o
		}
	} else if canon, err = enroll.NormalizePairingCode(code); err != nil {
		o := usage("--code: %s", enroll.ErrorMessage(err))
		return omaAddr{}, "", &o
	}
	return addr, canon, nil
}

func (e *enroller) fresh(ctx context.Context) outcome {
	addr, code, o := e.inputs()
	if o != nil {
		return *o
	}
	e.addr = addr
	name := e.cfg.Name
	if name == "" {
		h, err := e.f.Hostname()
		if err != nil {
			return usage("cannot read the host name (%v): pass --name", err)
		}
		name = strings.TrimSuffix(h, ".")
		if err := enroll.ValidateName(name); err != nil {
			return usage("the host name %q is not a valid VMA name: pass --name (letters, digits, '.', '_', '-')", enroll.Printable(name))
		}
	} else if err := enroll.ValidateName(name); err != nil {
		return usage("--name: %s", enroll.ErrorMessage(err))
	}
	if err := enroll.ValidateVersion(e.cfg.VMAVersion); err != nil {
		return usage("--vma-version: %s", enroll.ErrorMessage(err))
	}
	if err := checkKeyTrust(e.dir); err != nil {
		return fail(StatusError, err)
	}
	if o := e.establishPin(ctx); o != nil {
		return *o
	}
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return fail(StatusError, e.dirError(err))
	}
	kp, err := sshkey.LoadOrGenerate(e.dir, "vma-enroll@"+name)
	if err != nil {
		return fail(StatusError, e.dirError(err))
	}
	e.key = kp
	if kp.Generated {
		e.note("Generated a new SSH key: %s", kp.PrivatePath)
	} else {
		e.note("Using the existing key %s (%s)", keyFingerprint(kp), kp.PrivatePath)
	}
	if err := e.newClient(); err != nil {
		return fail(StatusError, err)
	}
	e.note("Enrolling %q with the OMA at %s ...", name, e.addr)

	// Once the code is sent, an interruption must not lose what the OMA
	// did with it: enroll consumes the code and verify hands out the poll
	// token, so both finish (within exchangeTimeout) and the state is saved
	// before an interrupt ends the run, which a rerun then resumes.
	xctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), exchangeTimeout)
	defer cancel()
	var er *api.EnrollResponse
	err = e.retry(ctx, "enroll", func() error {
		var err error
		er, err = e.c.Enroll(xctx, api.EnrollRequest{
			PairingCode:  code,
			VMAPublicKey: sshkey.AuthorizedKey(kp.Public, ""),
			VMAName:      name,
			VMAVersion:   e.cfg.VMAVersion,
			VMALabels:    e.labels,
		})
		return err
	})
	if err != nil {
		return e.failed(err, "enroll")
	}
	challenge, err := base64.StdEncoding.DecodeString(er.Challenge)
	if err != nil || len(challenge) != enroll.ChallengeSize {
		return fail(StatusError, fmt.Errorf("the OMA sent a malformed challenge (want %d bytes in base64): is it an oma-server of the same version?", enroll.ChallengeSize))
	}
	sig := enroll.SignChallenge(kp.Private, er.EnrollmentID, challenge)
	var vr *api.VerifyResponse
	err = e.retry(xctx, "verify", func() error {
		var err error
		vr, err = e.c.Verify(xctx, api.VerifyRequest{EnrollmentID: er.EnrollmentID, Signature: base64.StdEncoding.EncodeToString(sig)})
		return err
	})
	if err != nil {
		return e.failed(err, "verify")
	}
	now := e.f.Now().UTC()
	e.st = &State{
		OMA:                   e.addr.String(),
		OMAFingerprint:        e.pin,
		InsecureSkipTLSVerify: e.insecure,
		EnrollmentID:          vr.EnrollmentID,
		Status:                vr.Status,
		PollToken:             vr.PollToken,
		VMAName:               name,
		VMAVersion:            e.cfg.VMAVersion,
		VMAFingerprint:        sshkey.Fingerprint(kp.Public),
		CreatedAt:             now,
	}
	if e.st.Status == "" {
		e.st.Status = string(enroll.StatusAwaitingApproval)
	}
	e.st.ExpiresAt = vr.ExpiresAt
	if vr.ExpiresInSeconds != nil {
		end := e.f.Now().Add(time.Duration(*vr.ExpiresInSeconds) * time.Second).UTC().Truncate(time.Second)
		e.st.WindowEndsAt = &end
	}
	if err := saveState(e.dir, e.st, now); err != nil {
		return fail(StatusError, err)
	}
	e.note("Enrollment %s: the OMA accepted the key.", e.st.EnrollmentID)
	if vr.Status == string(enroll.StatusApproved) {
		e.note("The pairing code is pre-approved: the OMA approved this VMA at once.")
	}
	return e.wait(ctx)
}

// establishPin decides how the OMA's identity is checked.
func (e *enroller) establishPin(ctx context.Context) *outcome {
	if e.cfg.Fingerprint != "" {
		pin, err := client.NormalizeFingerprint(e.cfg.Fingerprint)
		if err != nil {
			o := usage("--fingerprint: %v", err)
			return &o
		}
		e.pin = pin
		return nil
	}
	if e.cfg.InsecureSkipTLSVerify {
		e.insecure = true
		e.note("WARNING: --insecure-skip-tls-verify: the OMA's identity is NOT checked; anyone between this VMA and the OMA could impersonate it. Prefer --fingerprint.")
		return nil
	}
	if !e.f.interactive() {
		o := usage("--fingerprint is required without a terminal: pass the sha256:… fingerprint that 'omactl pairing-code' printed (or, not recommended, --insecure-skip-tls-verify)")
		return &o
	}
	fp, err := client.FetchFingerprint(ctx, e.addr.String())
	if err != nil {
		o := e.failed(err, "connect")
		return &o
	}
	e.note("The OMA at %s presents this TLS key fingerprint:\n\n    %s\n\nCompare it with the one the OMA admin gave you ('omactl pairing-code' prints it).", e.addr, fp)
	ok, err := e.f.confirm("Is it the same?")
	if err != nil {
		o := fail(StatusError, err)
		return &o
	}
	if !ok {
		o := fail(StatusIdentityMismatch, errors.New("the OMA's fingerprint was not confirmed: nothing was sent. Check the address with the OMA admin and pass --fingerprint"))
		return &o
	}
	e.pin = fp
	return nil
}

func (e *enroller) newClient() error {
	c, err := client.New(client.Config{
		BaseURL:     e.addr.URL(),
		Fingerprint: e.pin,
		Insecure:    e.insecure,
		UserAgent:   "vma-enroll/" + cmdutil.Version,
	})
	if err != nil {
		return err
	}
	e.c = c
	return nil
}

// retry repeats fn while it fails in a way that did not change anything on
// the server: no connection made, rate limited, or database unavailable.
func (e *enroller) retry(ctx context.Context, what string, fn func() error) error {
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt >= enrollAttempts || !unchanged(err) {
			return err
		}
		d := backoff
		if ra := client.RetryAfter(err); ra > 0 {
			d = min(ra, time.Minute)
		}
		e.note("%s: %v; retrying in %s", what, shortError(err), d)
		if !sleep(ctx, d) {
			return ctx.Err()
		}
		backoff *= 2
	}
}

// unchanged reports whether a failed request certainly changed nothing.
func unchanged(err error) bool {
	var ne *client.NetworkError
	if errors.As(err, &ne) {
		return ne.Dial
	}
	switch client.StatusCode(err) {
	case 429, 503:
		return true
	}
	return false
}

func shortError(err error) string {
	var ne *client.NetworkError
	if errors.As(err, &ne) {
		return ne.Err.Error()
	}
	return err.Error()
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// failed maps an error of a request to the outcome and a message that
// says what to do, keeping the error underneath (its enroll.Code).
func (e *enroller) failed(err error, phase string) outcome {
	o := e.failure(err, phase)
	o.err = cmdutil.Explained(o.err.Error(), err)
	return o
}

func (e *enroller) failure(err error, phase string) outcome {
	var fm *client.FingerprintMismatchError
	switch {
	case errors.As(err, &fm):
		return fail(StatusIdentityMismatch, fmt.Errorf(
			"the OMA at %s is not the expected one: its TLS key fingerprint is %s, but %s was expected. Do not continue: check the address and the fingerprint with the OMA admin ('omactl pairing-code' prints it); someone may be intercepting the connection",
			e.addr, fm.Got, fm.Want))
	case errors.Is(err, context.Canceled):
		return fail(StatusInterrupted, errors.New("interrupted"))
	case enroll.ErrorCode(err) == enroll.CodePairingCodeRejected:
		return fail(StatusPairingCodeRejected, errors.New("pairing code rejected: wrong, already used or expired. Ask the OMA admin for a new one ('omactl pairing-code') and run vma-enroll again"))
	case client.IsPlainHTTP(err):
		return fail(StatusError, fmt.Errorf("%s speaks plain HTTP, not TLS: it looks like oma-server's admin listener (port 8082 by default), which is for omactl. Pass --oma with the OMA's public address (port 443 by default), as in the join command 'omactl pairing-code' prints", e.addr))
	case client.ListenerOf(err) == "admin":
		return fail(StatusError, fmt.Errorf("%s is oma-server's admin listener, which is for omactl: pass --oma with the OMA's public address (port 443 by default), as in the join command 'omactl pairing-code' prints", e.addr))
	case client.IsNetwork(err):
		return fail(StatusError, fmt.Errorf("cannot reach the OMA at %s (%v). Check the address, name resolution and that port %d is open from this VMA to the OMA", e.addr, shortError(err), e.addr.Port))
	}
	msg := cleanMessage(err.Error())
	switch phase {
	case "verify":
		return fail(StatusError, fmt.Errorf("the OMA did not accept the key's proof: %s. Run vma-enroll again with a new pairing code", msg))
	case "enroll":
		return fail(StatusError, fmt.Errorf("the OMA refused the enrollment: %s", msg))
	}
	return fail(StatusError, fmt.Errorf("%s: %s", phase, msg))
}

// cleanMessage makes a server message or stored string safe to print.
func cleanMessage(s string) string {
	return enroll.Sanitize(s, 2048)
}

// resume continues waiting for an enrollment recorded in enrollment.json.
func (e *enroller) resume(ctx context.Context, st *State) outcome {
	e.st = st
	if e.cfg.Code != "" || e.cfg.CodeFile != "" {
		e.note("Note: ignoring the pairing code: resuming enrollment %s, which is still waiting for approval (use --force to start over).", st.EnrollmentID)
	}
	addr, err := parseOMA(st.OMA)
	if err != nil {
		return fail(StatusError, fmt.Errorf("%s: %v; run with --force and a new pairing code", statePath(e.dir), err))
	}
	e.addr, e.pin, e.insecure = addr, st.OMAFingerprint, st.InsecureSkipTLSVerify
	if e.pin == "" && !e.insecure {
		return fail(StatusError, fmt.Errorf("%s has no OMA fingerprint: run with --force and a new pairing code", statePath(e.dir)))
	}
	if err := checkKeyTrust(e.dir); err != nil {
		return fail(StatusError, err)
	}
	kp, err := sshkey.LoadOrGenerate(e.dir, "vma-enroll@"+st.VMAName)
	if err != nil {
		return fail(StatusError, err)
	}
	e.key = kp
	if fp := sshkey.Fingerprint(kp.Public); fp != st.VMAFingerprint {
		return fail(StatusError, fmt.Errorf("the key in %s (%s) is not the one enrollment %s was made with (%s): run with --force and a new pairing code", kp.PrivatePath, fp, st.EnrollmentID, st.VMAFingerprint))
	}
	if err := e.newClient(); err != nil {
		return fail(StatusError, err)
	}
	e.note("Resuming enrollment %s of %q with the OMA at %s.", st.EnrollmentID, st.VMAName, e.addr)
	return e.wait(ctx)
}
