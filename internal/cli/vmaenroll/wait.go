package vmaenroll

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/vmaclient"
)

// wait polls for the admin's decision until --timeout, then acts on it.
func (e *enroller) wait(ctx context.Context) outcome {
	st := e.st
	e.note("\nWaiting for the OMA admin to approve this VMA. They should check that\n'omactl pending' shows this key fingerprint for %q:\n\n    %s\n\nand then run:  omactl approve %s\n", st.VMAName, st.VMAFingerprint, st.VMAName)

	start := e.f.Now()
	deadline := start.Add(e.cfg.Timeout)
	p := newProgress(e.f.IO, e.f.Now, start, deadline, st.VMAFingerprint)
	switch {
	case st.WindowEndsAt != nil:
		p.SetWindow(*st.WindowEndsAt)
	case st.ExpiresAt != nil:
		p.SetWindow(*st.ExpiresAt) // an older state file: the server's clock
	}
	p.Start()
	res, err := e.poll(ctx, deadline, p)
	p.Stop()
	if err != nil {
		switch {
		case errors.Is(err, errTimedOut):
			exp := ""
			if st.ExpiresAt != nil {
				exp = " (until " + st.ExpiresAt.Local().Format("15:04:05") + ")"
			}
			return fail(StatusTimeout, fmt.Errorf("no decision after %s: enrollment %s is still waiting for approval on the OMA. Run vma-enroll again to keep waiting%s, or ask the admin to approve it", e.cfg.Timeout, st.EnrollmentID, exp))
		case errors.Is(err, context.Canceled):
			return fail(StatusInterrupted, fmt.Errorf("interrupted while waiting: enrollment %s is saved in %s; run vma-enroll again to resume waiting", st.EnrollmentID, statePath(e.dir)))
		case enroll.ErrorCode(err) == enroll.CodeUnauthorized || enroll.ErrorCode(err) == enroll.CodeNotFound:
			return fail(StatusError, fmt.Errorf("the OMA no longer knows enrollment %s (%s): run vma-enroll --force with a new pairing code", st.EnrollmentID, cleanMessage(err.Error())))
		}
		return e.failed(err, "waiting for approval")
	}
	return e.decided(res)
}

var errTimedOut = errors.New("timed out")

// reason is the gist of a failed request in a few words, for the live
// status line ("connection refused", "no such host", "HTTP 503").
func reason(err error) string {
	var dns *net.DNSError
	var se *os.SyscallError
	var ne net.Error
	switch {
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return "no such host"
		}
		return "name lookup failed"
	case errors.As(err, &se):
		return se.Err.Error()
	case errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case client.StatusCode(err) > 0:
		return fmt.Sprintf("HTTP %d", client.StatusCode(err))
	}
	return shortError(err)
}

// poll asks for the result: long polls of up to longPollWait, or plain polls
// every --poll-interval when the server does not hold the request; network
// errors and 429/5xx answers are retried with backoff until the deadline.
func (e *enroller) poll(ctx context.Context, deadline time.Time, p *progress) (*api.ResultResponse, error) {
	st := e.st
	longPoll := true
	backoff := time.Second
	maxBackoff := min(e.cfg.PollInterval, 30*time.Second)
	for {
		left := deadline.Sub(e.f.Now())
		if left <= 0 {
			return nil, errTimedOut
		}
		wait := time.Duration(0)
		if longPoll {
			wait = min(longPollWait, left.Truncate(time.Second))
			if wait < time.Second {
				wait = 0
			}
		}
		began := e.f.Now()
		res, err := e.c.Result(ctx, st.EnrollmentID, st.PollToken, wait)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var fm *client.FingerprintMismatchError
			if errors.As(err, &fm) {
				return nil, err
			}
			if longPoll && enroll.ErrorCode(err) == enroll.CodeInvalidRequest {
				longPoll = false // a server without long polls
				continue
			}
			if !client.IsRetryable(err) && client.StatusCode(err) < 500 {
				return nil, err
			}
			d := backoff
			if ra := client.RetryAfter(err); ra > 0 {
				d = ra
			}
			d = min(d, max(deadline.Sub(e.f.Now()), 0))
			what := "OMA unavailable"
			if client.IsNetwork(err) {
				what = "OMA unreachable"
			}
			p.SetBoth(fmt.Sprintf("%s: %s; retry in %s", what, reason(err), d.Round(time.Second)),
				fmt.Sprintf("%s (%s), retrying in %s", what, shortError(err), d.Round(time.Second)))
			if !sleep(ctx, d) {
				return nil, ctx.Err()
			}
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		backoff = time.Second
		p.Set("waiting for approval")
		if res.ExpiresAt != nil {
			st.ExpiresAt = res.ExpiresAt
		}
		if end, ok := e.windowEnd(res.ExpiresInSeconds, res.ExpiresAt); ok {
			p.SetWindow(end)
		}
		if !enroll.Status(res.Status).Undecided() {
			return res, nil // decided (or a status this vma-enroll does not know)
		}
		if took := e.f.Now().Sub(began); !longPoll || wait == 0 || took < wait/2 {
			// A plain poll (asked for, or too close to the deadline for a
			// long one), or the server did not hold the request: pace them.
			pause := min(e.cfg.PollInterval-took, deadline.Sub(e.f.Now()))
			if !sleep(ctx, pause) {
				return nil, ctx.Err()
			}
		}
	}
}

// windowEnd turns the server's answer about the approval window into its
// end by this VMA's clock, and records it in enrollment.json when it moved
// (so a resumed wait knows it at once). ok is false when the server sent
// nothing (an older oma-server).
func (e *enroller) windowEnd(secs *int64, at *time.Time) (time.Time, bool) {
	var end time.Time
	switch {
	case secs != nil:
		end = e.f.Now().Add(time.Duration(*secs) * time.Second)
	case at != nil:
		end = *at
	default:
		return time.Time{}, false
	}
	st := e.st
	if old := st.WindowEndsAt; old == nil || old.Sub(end).Abs() > 5*time.Second {
		u := end.UTC().Truncate(time.Second)
		st.WindowEndsAt = &u
		if err := saveState(e.dir, st, e.f.Now().UTC()); err != nil {
			e.note("Warning: %v", err)
		}
	}
	return end, true
}

// decided acts on the admin's decision.
func (e *enroller) decided(res *api.ResultResponse) outcome {
	st := e.st
	now := e.f.Now().UTC()
	st.Status = res.Status
	st.PollToken = ""
	switch res.Status {
	case StatusApproved:
		if res.Tunnel == nil {
			st.Status = string(enroll.StatusAwaitingApproval) // keep the token: a fixed server can still answer
			return fail(StatusError, errors.New("the OMA approved this VMA but sent no tunnel settings: ask the OMA admin to check oma-server, then run vma-enroll again"))
		}
		cfg := vmaclient.VMAConfig{
			Dir:          e.dir,
			EnrollmentID: st.EnrollmentID,
			OMAHost:      e.addr.Host,
			OMAPort:      e.addr.Port,
			Tunnel:       *res.Tunnel,
			Binary:       e.binary(),
		}
		files, err := vmaclient.WriteVMAConfig(cfg)
		if err != nil {
			return fail(StatusError, fmt.Errorf("the OMA approved this VMA, but the tunnel configuration cannot be written: %w", err))
		}
		st.Tunnel = res.Tunnel
		st.ApprovedAt = res.ApprovedAt
		if st.ApprovedAt == nil {
			st.ApprovedAt = &now
		}
		if err := saveState(e.dir, st, now); err != nil {
			return fail(StatusError, err)
		}
		e.files = append([]string{e.key.PrivatePath, e.key.PublicPath}, files...)
		e.files = append(e.files, statePath(e.dir))
		if probs := vmaclient.UnitProblems(cfg); len(probs) > 0 {
			e.note("Warning: %s cannot start the tunnel as written: %s. Re-enroll with --config-dir under /etc (the default is /etc/vma-enroll) and vma-enroll installed under /usr/local/bin, or run `vma-enroll tunnel --config-dir %s` under a supervisor of your own.",
				vmaclient.FileUnit, strings.Join(probs, "; "), e.dir)
		}
		if res.Tunnel.HostKey == "" {
			e.note("Note: the OMA sent no SSH host key (its tunnel mode is not 'embedded'): add the OMA sshd's host key to %s before starting the tunnel.", filepath.Join(e.dir, vmaclient.FileKnownHosts))
		}
		return outcome{status: StatusApproved}
	case StatusRejected:
		st.Reason = res.Reason
		if err := saveState(e.dir, st, now); err != nil {
			e.note("Warning: %v", err)
		}
		reason := "no reason given"
		if res.Reason != "" {
			reason = "reason: " + cleanMessage(res.Reason)
		}
		return fail(StatusRejected, fmt.Errorf("the OMA admin rejected this VMA (%s). A new attempt needs a new pairing code", reason))
	case StatusExpired:
		if err := saveState(e.dir, st, now); err != nil {
			e.note("Warning: %v", err)
		}
		return fail(StatusExpired, errors.New("the enrollment expired before the OMA admin approved it: ask for a new pairing code and run vma-enroll again"))
	case StatusRevoked:
		if err := saveState(e.dir, st, now); err != nil {
			e.note("Warning: %v", err)
		}
		return fail(StatusRevoked, errors.New("the enrollment was revoked: ask the OMA admin for a new pairing code and run vma-enroll --force"))
	}
	return fail(StatusError, fmt.Errorf("the OMA reports the unknown status %q: is oma-server newer than this vma-enroll?", enroll.Printable(res.Status)))
}

// binary is the absolute path of this program, for the systemd unit.
func (e *enroller) binary() string {
	p, err := e.f.Executable()
	if err != nil {
		return ""
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	if !filepath.IsAbs(p) {
		return ""
	}
	return p
}
