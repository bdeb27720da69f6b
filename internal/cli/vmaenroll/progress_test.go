package vmaenroll

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// TestStatusLineFits: the live line never exceeds the width it is given;
// the key shows only whole, a long state is cut with "...", the times
// always show.
func TestStatusLineFits(t *testing.T) {
	const key = "SHA256:veZ1w9usXu0YuN9CYZBgoogxPVb9p7c1KAht1/Yo2c8"
	waiting := "waiting for approval"
	unreachable := "OMA unreachable: dial tcp 203.0.113.5:443: connect: connection refused; retry in 16s"
	cases := []struct {
		state string
		width int
		want  string
	}{
		{waiting, 200, "waiting for approval - 01m02s elapsed, 28m58s left - key " + key},
		{waiting, 79, "waiting for approval - 01m02s elapsed, 28m58s left"},
		{unreachable, 79, "OMA unreachable: dial tcp 203.0.113.5:443: con... - 01m02s elapsed, 28m58s left"},
		{waiting, 39, "waitin... - 01m02s elapsed, 28m58s left"},
		{waiting, 20, "01m02s elapsed, 2..."},
	}
	for _, c := range cases {
		got := statusLine(c.state, "01m02s", "28m58s", key, c.width)
		if n := utf8.RuneCountInString(got); n > c.width {
			t.Errorf("width %d: %d columns: %q", c.width, n, got)
		}
		if c.width >= 39 && !strings.Contains(got, "28m58s left") {
			t.Errorf("width %d: the time left is missing: %q", c.width, got)
		}
		if got != c.want {
			t.Errorf("width %d:\n got %q\nwant %q", c.width, got, c.want)
		}
	}
}

// TestProgressModes: a terminal of unknown width gets plain lines (no
// carriage return), one of known width a live line that fits; "left"
// counts down the approval window when it ends before --timeout.
func TestProgressModes(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := start.Add(90 * time.Second)
	clock := func() time.Time { return now }
	for _, width := range []int{0, 80} {
		ios, _, _, errOut := cmdutil.Test()
		ios.ErrTTY = true
		ios.ErrWidth = func() int { return width }
		p := newProgress(ios, clock, start, start.Add(50*time.Minute), "SHA256:veZ1w9usXu0YuN9CYZBgoogxPVb9p7c1KAht1/Yo2c8")
		p.SetWindow(start.Add(10 * time.Minute))
		p.mu.Lock()
		p.render(true)
		p.mu.Unlock()
		p.SetBoth("OMA unreachable: connection refused; retry in 2s", "OMA unreachable (dial tcp 192.0.2.1:443: connect: connection refused), retrying in 2s")
		got := errOut.String()
		if !strings.Contains(got, "08m30s left") {
			t.Errorf("width %d: left is not the window's 08m30s: %q", width, got)
		}
		if width == 0 {
			if strings.Contains(got, "\r") || strings.Count(got, "\n") != 2 || !strings.Contains(got, "dial tcp 192.0.2.1:443") {
				t.Errorf("unknown width: want two plain lines with the full reason, got %q", got)
			}
			continue
		}
		for _, l := range strings.Split(got, "\r") {
			if n := utf8.RuneCountInString(l); n > width-1 {
				t.Errorf("width %d: a redraw of %d columns: %q", width, n, l)
			}
		}
		if strings.Contains(got, "\n") {
			t.Errorf("width %d: the live line printed a newline: %q", width, got)
		}
	}
}
