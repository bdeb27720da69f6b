package cmdutil

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	day := 24 * time.Hour
	for in, want := range map[string]time.Duration{
		"0": 0, "": 0, "90d": 90 * day, "1d12h": day + 12*time.Hour, "36h": 36 * time.Hour,
		"30s": 30 * time.Second, " 7d ": 7 * day, "0d": 0, "2160h": 90 * day, "-1s": -time.Second,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"d", "90", "x", "-3d", "1.5d", "90dd", "1d-1h", "99999999d"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
	for d, want := range map[time.Duration]string{0: "0", 90 * day: "90d", day + time.Hour: "1d1h0m0s", 20 * time.Second: "20s"} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := ParseDuration(FormatDuration(d)); err != nil || back != d {
			t.Errorf("ParseDuration(FormatDuration(%v)) = %v, %v", d, back, err)
		}
	}
}
