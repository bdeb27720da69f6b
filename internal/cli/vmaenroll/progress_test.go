package vmaenroll

import (
	"strings"
	"testing"
	"unicode/utf8"
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
