package app

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestWarnAdminListener(t *testing.T) {
	for _, c := range []struct {
		addr string
		tls  bool
		want string // "" for no warning
	}{
		{"127.0.0.1:8082", false, ""},
		{"[::1]:8082", false, ""},
		{"localhost:8082", false, ""},
		{"0.0.0.0:8082", false, "plain HTTP"},
		{":8082", false, "plain HTTP"},
		{"10.0.0.5:8082", true, "private network"},
		{"192.0.2.1:8082", false, "plain HTTP"},
		// A name that does not resolve is not known to be loopback.
		{"admin.invalid:8082", false, "plain HTTP"},
	} {
		var buf bytes.Buffer
		warnAdminListener(slog.New(slog.NewTextHandler(&buf, nil)), c.addr, c.tls)
		got := buf.String()
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%s (tls %v): logged %q, want %q", c.addr, c.tls, got, c.want)
		}
	}
}
