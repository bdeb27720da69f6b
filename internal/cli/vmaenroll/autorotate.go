package vmaenroll

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// The tunnel's self-rotation (docs/rotation.md, "Key expiry"): with a key
// expiry policy on the OMA, GET /api/v1/vma/self tells when this VMA's key
// is due; vma-enroll tunnel asks at its start and again when the answer
// says, and inside the rotation window runs the rotation of vma-enroll
// rotate (same key lock). The tunnel then follows the new key as after a
// manual rotation (watchKey). A failed rotation is retried with backoff;
// the tunnel keeps running with the current key meanwhile.

const (
	// maxKeyCheck is the longest time between two asks of self: a policy
	// turned on (or shortened) on the OMA is seen within it.
	maxKeyCheck = time.Hour
	// minKeyCheck is the shortest.
	minKeyCheck = time.Second
	// maxRotateJitter bounds the random delay after the window opens, so
	// that VMAs approved together do not all rotate at the same second.
	maxRotateJitter = time.Hour
	// maxRotateBackoff bounds the wait between failed attempts.
	maxRotateBackoff = 5 * time.Minute
)

// lockedWriter serializes the lines of the tunnel's goroutines on one
// stream.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// untilRotation is how long until the key is due at the OMA, measured on
// the OMA's clock (its key_age_seconds against its own times, so a VMA
// clock that is off does not matter), and the rotation window's length;
// ok is false when the OMA has no key expiry policy.
func untilRotation(me *api.VMASelf) (until, window time.Duration, ok bool) {
	if me == nil || me.KeyRotateAfter == nil || me.KeySince == nil {
		return 0, 0, false
	}
	if me.KeyExpiresAt != nil {
		window = me.KeyExpiresAt.Sub(*me.KeyRotateAfter)
	}
	age := time.Duration(me.KeyAgeSeconds) * time.Second
	return me.KeyRotateAfter.Sub(*me.KeySince) - age, window, true
}

// rotateJitter is a random delay into the window: at most a tenth of it,
// at most maxRotateJitter.
func rotateJitter(window time.Duration) time.Duration {
	limit := min(window/10, maxRotateJitter)
	if limit <= 0 {
		return 0
	}
	return rand.N(limit)
}

// nextKeyCheck says whether to rotate now and, if not, when to ask again.
func nextKeyCheck(me *api.VMASelf, jitter time.Duration) (rotate bool, wait time.Duration) {
	until, _, ok := untilRotation(me)
	switch {
	case !ok:
		return false, maxKeyCheck
	case me.KeyStatus == string(enroll.KeyDue) || me.KeyStatus == string(enroll.KeyOverdue) || until+jitter <= 0:
		return true, 0
	}
	return false, min(max(until+jitter, minKeyCheck), maxKeyCheck)
}

// autoRotate keeps the key of the enrollment in dir inside the OMA's
// policy until ctx ends, one line on log per thing it does.
func autoRotate(ctx context.Context, f *Factory, dir string, log io.Writer) {
	var (
		wait      time.Duration // the first ask at once
		backoff   time.Duration
		jitter    = map[string]time.Duration{} // per key: drawn once
		checkErrs int                          // failed checks in a row
	)
	stamp := func() string { return f.Now().Local().Format(time.DateTime) }
	retry := func() {
		backoff = min(max(2*backoff, 5*time.Second), maxRotateBackoff)
		wait = backoff
	}
	failed := func(format string, args ...any) {
		retry()
		fmt.Fprintf(log, "%s %s; retrying in %s (the tunnel keeps the current key)\n", stamp(), fmt.Sprintf(format, args...), backoff)
	}
	// A check that cannot reach the OMA is said once, when it failed
	// three times in a row (the tunnel reports the OMA's reachability
	// itself), and then not again until one succeeds.
	checkFailed := func(err error) {
		checkErrs++
		if checkErrs != 3 {
			retry()
			return
		}
		failed("cannot ask the OMA when this VMA's key is due for rotation (3 tries): %v", err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		st, err := loadState(dir)
		if err != nil || st == nil {
			checkFailed(err)
			continue
		}
		cur, err := readKey(keyPath(dir))
		if err != nil {
			checkFailed(err)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		me, err := selfCall(cctx, st, cur)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errRefused):
			// The tunnel itself says what to do (re-enroll); ask again
			// later, in case a rotation elsewhere settles it.
			wait = maxKeyCheck
			continue
		case err != nil:
			var ae *vmaAPIError
			if errors.As(err, &ae) && ae.Status == 404 {
				wait = maxKeyCheck // an OMA without the VMA endpoints
				continue
			}
			checkFailed(err)
			continue
		}
		checkErrs = 0
		fp := fingerprintOf(cur)
		if _, ok := jitter[fp]; !ok {
			_, window, _ := untilRotation(me)
			jitter = map[string]time.Duration{fp: rotateJitter(window)}
		}
		rotate, next := nextKeyCheck(me, jitter[fp])
		if !rotate {
			backoff, wait = 0, next
			continue
		}
		cctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		rep, err := rotateKey(cctx, io.Discard, dir)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ee *cmdutil.ExitError
			if errors.As(err, &ee) && ee.Code == ExitKeyRefused {
				wait = maxKeyCheck
				continue
			}
			failed("the key is %s (age %s): rotation failed: %v", me.KeyStatus, cmdutil.FormatDuration(time.Duration(me.KeyAgeSeconds)*time.Second), err)
			continue
		}
		backoff, wait = 0, minKeyCheck // learn the new key's times
		if rep.Result == "recovered" {
			fmt.Fprintf(log, "%s finished an interrupted key rotation: the key is now %s\n", stamp(), rep.KeyFingerprint)
			continue
		}
		fmt.Fprintf(log, "%s the key was %s for rotation (age %s, the OMA's key expiry policy): rotated to %s\n",
			stamp(), me.KeyStatus, cmdutil.FormatDuration(time.Duration(me.KeyAgeSeconds)*time.Second), rep.KeyFingerprint)
	}
}
