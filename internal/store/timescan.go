package store

import (
	"fmt"
	"time"
)

// dbTime scans a DATETIME column in either form the drivers return it:
// time.Time (MySQL with parseTime, and SQLite columns read directly, whose
// declared type makes the driver parse them) or the text that timeFormat
// wrote (SQLite expressions such as CAST(col AS TEXT), which carry no
// declared type). Large lists read SQLite times as text: the driver tries
// its layouts one after the other for every value, which was half the cost
// of listing 10,000 VMAs (make bench, row 5).
type dbTime struct {
	t     time.Time
	valid bool
}

func (d *dbTime) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*d = dbTime{}
		return nil
	case time.Time:
		*d = dbTime{x.UTC(), true}
		return nil
	case string:
		return d.parse(x)
	case []byte:
		return d.parse(string(x))
	}
	return fmt.Errorf("cannot read %T as a time", v)
}

func (d *dbTime) parse(s string) error {
	t, err := parseDBTime(s)
	if err != nil {
		return err
	}
	*d = dbTime{t, true}
	return nil
}

// ptr is the time, or nil for NULL.
func (d dbTime) ptr() *time.Time {
	if !d.valid {
		return nil
	}
	t := d.t
	return &t
}

// textLayouts are the other forms a stored time may have: SQLite's own
// CURRENT_TIMESTAMP, and times with a zone.
var textLayouts = []string{"2006-01-02 15:04:05.999999999", "2006-01-02 15:04:05.999999999-07:00", time.RFC3339Nano}

// parseDBTime reads a stored time as UTC: timeFormat by hand (fixed
// width, digits at known places), anything else with time.Parse.
func parseDBTime(s string) (time.Time, error) {
	if len(s) == len(timeFormat) && s[4] == '-' && s[7] == '-' && s[10] == ' ' && s[13] == ':' && s[16] == ':' && s[19] == '.' {
		num := func(i, j int) int {
			n := 0
			for ; i < j; i++ {
				c := s[i]
				if c < '0' || c > '9' {
					return -1
				}
				n = n*10 + int(c-'0')
			}
			return n
		}
		y, mo, dd, h, mi, sec, us := num(0, 4), num(5, 7), num(8, 10), num(11, 13), num(14, 16), num(17, 19), num(20, 26)
		if y >= 0 && mo >= 1 && mo <= 12 && dd >= 1 && dd <= 31 && h >= 0 && h < 24 && mi >= 0 && mi < 60 && sec >= 0 && sec < 60 && us >= 0 {
			t := time.Date(y, time.Month(mo), dd, h, mi, sec, us*1000, time.UTC)
			if t.Day() == dd { // not 31 February
				return t, nil
			}
		}
	}
	for _, l := range textLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("stored time %q is not in the form %s", s, timeFormat)
}
