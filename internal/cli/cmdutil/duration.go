package cmdutil

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads a duration setting: a Go duration (36h, 90m, 30s),
// a number of days with a d suffix (90d), days followed by a Go duration
// (1d12h), or 0. It is for settings measured in days (key ages), which
// time.ParseDuration cannot say.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil || i == 0 {
			return 0, fmt.Errorf("%q is not a duration: use e.g. 90d, 36h, 1d12h or 30s", s)
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || (days > 0 && d < 0) {
		return 0, fmt.Errorf("%q is not a duration: use e.g. 90d, 36h, 1d12h or 30s", s)
	}
	return days + d, nil
}

// FormatDuration writes d the way ParseDuration reads it, with whole days
// as days (90d, 1d12h0m0s, 36m0s).
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == 0:
		return "0"
	case d > 0 && d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	case d > day:
		return strconv.FormatInt(int64(d/day), 10) + "d" + (d % day).String()
	}
	return d.String()
}
