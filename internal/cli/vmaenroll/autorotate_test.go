package vmaenroll

import (
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

// TestNextKeyCheck: when the tunnel asks the OMA again, and when it
// rotates, from self's answer (on the OMA's clock: a VMA clock that is
// off changes nothing).
func TestNextKeyCheck(t *testing.T) {
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	self := func(age, rotateAfter, expires time.Duration, status string) *api.VMASelf {
		r, e := since.Add(rotateAfter), since.Add(expires)
		return &api.VMASelf{KeySince: &since, KeyAgeSeconds: int64(age / time.Second), KeyRotateAfter: &r, KeyExpiresAt: &e, KeyStatus: status}
	}
	day := 24 * time.Hour
	for _, tc := range []struct {
		name   string
		me     *api.VMASelf
		jitter time.Duration
		rotate bool
		wait   time.Duration
	}{
		{"no policy", &api.VMASelf{KeySince: &since, KeyStatus: "ok"}, 0, false, maxKeyCheck},
		{"far from the window: hourly", self(day, 76*day, 90*day, "ok"), 0, false, maxKeyCheck},
		{"short policy: at the window", self(3*time.Second, 10*time.Second, 30*time.Second, "ok"), 0, false, 7 * time.Second},
		{"short policy with jitter", self(3*time.Second, 10*time.Second, 30*time.Second, "ok"), time.Second, false, 8 * time.Second},
		{"at least a second", self(10*time.Second, 10*time.Second+300*time.Millisecond, 30*time.Second, "ok"), 0, false, minKeyCheck},
		{"due", self(12*time.Second, 10*time.Second, 30*time.Second, "due"), 2 * time.Second, true, 0},
		{"overdue", self(31*time.Second, 10*time.Second, 30*time.Second, "overdue"), 0, true, 0},
		{"window reached by the age", self(11*time.Second, 10*time.Second, 30*time.Second, "ok"), 0, true, 0},
	} {
		rotate, wait := nextKeyCheck(tc.me, tc.jitter)
		if rotate != tc.rotate || wait != tc.wait {
			t.Errorf("%s: rotate, wait = %v, %v; want %v, %v", tc.name, rotate, wait, tc.rotate, tc.wait)
		}
	}
	for _, w := range []time.Duration{0, 20 * time.Second, 14 * day} {
		for range 50 {
			if j := rotateJitter(w); j < 0 || j > min(w/10, maxRotateJitter) {
				t.Fatalf("rotateJitter(%s) = %s", w, j)
			}
		}
	}
}
