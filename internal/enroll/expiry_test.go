package enroll

import (
	"strings"
	"testing"
	"time"
)

func TestKeyPolicyCheck(t *testing.T) {
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	p := KeyPolicy{MaxAge: 90 * day, RotationWindow: 14 * day, Grace: 7 * day}
	for _, tc := range []struct {
		name string
		p    KeyPolicy
		age  time.Duration
		want KeyStatus
	}{
		{"fresh", p, 0, KeyOK},
		{"clock behind since", p, -time.Hour, KeyOK},
		{"just before the window", p, 76*day - time.Nanosecond, KeyOK},
		{"window starts", p, 76 * day, KeyDue},
		{"inside the window", p, 80 * day, KeyDue},
		{"max age", p, 90 * day, KeyOverdue},
		{"inside the grace", p, 96 * day, KeyOverdue},
		{"grace ends", p, 97 * day, KeyExpired},
		{"long expired", p, 900 * day, KeyExpired},
		{"no grace: refused at max age", KeyPolicy{MaxAge: 30 * time.Second, RotationWindow: 20 * time.Second}, 30 * time.Second, KeyExpired},
		{"off", KeyPolicy{}, 9000 * day, KeyOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.p.Check(since, since.Add(tc.age))
			if k.Status != tc.want {
				t.Fatalf("status = %q, want %q", k.Status, tc.want)
			}
			if got := tc.p.Expired(since, since.Add(tc.age)); got != (tc.want == KeyExpired) {
				t.Fatalf("Expired = %v, want %v", got, tc.want == KeyExpired)
			}
			if k.Since != since || k.Age != max(tc.age, 0) {
				t.Fatalf("since, age = %v, %v; want %v, %v", k.Since, k.Age, since, max(tc.age, 0))
			}
			if !tc.p.Enabled() {
				if k.RotateAfter != nil || k.ExpiresAt != nil || k.RefusedAfter != nil {
					t.Fatalf("policy off but times %v %v %v", k.RotateAfter, k.ExpiresAt, k.RefusedAfter)
				}
				return
			}
			wantRotate, wantExp := since.Add(tc.p.MaxAge-tc.p.RotationWindow), since.Add(tc.p.MaxAge)
			if !k.RotateAfter.Equal(wantRotate) || !k.ExpiresAt.Equal(wantExp) || !k.RefusedAfter.Equal(wantExp.Add(tc.p.Grace)) {
				t.Fatalf("times = %v %v %v; want %v %v %v", k.RotateAfter, k.ExpiresAt, k.RefusedAfter, wantRotate, wantExp, wantExp.Add(tc.p.Grace))
			}
		})
	}
}

func TestKeyPolicyValidate(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		p    KeyPolicy
		want string // "" valid, else a part of the message
	}{
		{KeyPolicy{}, ""},
		{KeyPolicy{RotationWindow: -1, Grace: -1}, ""}, // off: the others do not matter
		{KeyPolicy{MaxAge: 90 * day, RotationWindow: 14 * day, Grace: 7 * day}, ""},
		{KeyPolicy{MaxAge: 30 * time.Second, RotationWindow: 20 * time.Second}, ""},
		{KeyPolicy{MaxAge: -time.Second}, "--key-max-age"},
		{KeyPolicy{MaxAge: time.Millisecond, RotationWindow: time.Microsecond}, "--key-max-age"},
		{KeyPolicy{MaxAge: day, RotationWindow: day}, "--key-rotation-window"},
		{KeyPolicy{MaxAge: day, RotationWindow: 2 * day}, "--key-rotation-window"},
		{KeyPolicy{MaxAge: day}, "--key-rotation-window"},
		{KeyPolicy{MaxAge: day, RotationWindow: time.Hour, Grace: -time.Second}, "--key-expiry-grace"},
	} {
		err := tc.p.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v, want valid", tc.p, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want an error about %s", tc.p, err, tc.want)
		}
	}
}

func TestDefaultRotationWindow(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct{ max, want time.Duration }{
		{90 * day, 14 * day}, {30 * day, 10 * day}, {42 * day, 14 * day}, {30 * time.Second, 10 * time.Second},
	} {
		if got := DefaultRotationWindow(tc.max); got != tc.want {
			t.Errorf("DefaultRotationWindow(%s) = %s, want %s", tc.max, got, tc.want)
		}
	}
}
