package omactl

import (
	"testing"
	"time"
)

func TestRelative(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "just now"},
		{-3 * time.Second, "just now"},
		{45 * time.Second, "45s ago"},
		{3*time.Minute + 10*time.Second, "3m ago"},
		{-(9*time.Minute + 59*time.Second), "in 10m"},
		{59*time.Minute + 50*time.Second, "1h ago"},
		{90 * time.Minute, "1h30m ago"},
		{20 * time.Hour, "20h ago"},
		{72 * time.Hour, "3d ago"},
	} {
		if got := relative(now, now.Add(-tt.d)); got != tt.want {
			t.Errorf("relative(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
