package store

import (
	"testing"
	"time"
)

func TestParseDBTime(t *testing.T) {
	want := time.Date(2026, 11, 28, 13, 4, 5, 123456000, time.UTC)
	for in, exp := range map[string]time.Time{
		"2026-11-28 13:04:05.123456":       want,
		"2026-11-28 13:04:05":              want.Truncate(time.Second),
		"2026-11-28 14:04:05.123456+01:00": want,
		"2026-11-28T13:04:05.123456Z":      want,
		"2024-02-29 00:00:00.000000":       time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseDBTime(in)
		if err != nil || !got.Equal(exp) || got.Location() != time.UTC {
			t.Errorf("parseDBTime(%q) = %v, %v; want %v", in, got, err, exp)
		}
	}
	for _, bad := range []string{"", "2026-02-31 00:00:00.000000", "2026-13-01 00:00:00.000000", "2026-11-28 13:04:05.12345x", "yesterday"} {
		if got, err := parseDBTime(bad); err == nil {
			t.Errorf("parseDBTime(%q) = %v, want an error", bad, got)
		}
	}
	// The fast path agrees with time.Parse over a range of times.
	for ts := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC); ts.Year() < 2029; ts = ts.Add(97*time.Hour + 13*time.Minute + 7*time.Second + 1234*time.Microsecond) {
		s := ts.Format(timeFormat)
		got, err := parseDBTime(s)
		if err != nil || !got.Equal(ts) {
			t.Fatalf("parseDBTime(%q) = %v, %v; want %v", s, got, err, ts)
		}
	}
}
