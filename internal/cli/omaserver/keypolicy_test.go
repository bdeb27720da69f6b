package omaserver

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// TestServeKeyPolicy: serve's key expiry flags, from the command line and
// the config file (days accepted), the defaults, and the combinations
// refused with a usage error naming the flag.
func TestServeKeyPolicy(t *testing.T) {
	t.Setenv("OMA_CONFIG", "")
	day := 24 * time.Hour
	policy := func(args ...string) (enroll.KeyPolicy, error) {
		v, err := loadConfig(serveCmdWith(t, args...))
		if err != nil {
			t.Fatal(err)
		}
		return keyPolicyFrom(v)
	}
	file := filepath.Join(t.TempDir(), "oma-server.yaml")
	if err := os.WriteFile(file, []byte("key_max_age: 30d\nkey_expiry_grace: 36h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want enroll.KeyPolicy
	}{
		{nil, enroll.KeyPolicy{}},
		{[]string{"--key-max-age", "90d"}, enroll.KeyPolicy{MaxAge: 90 * day, RotationWindow: 14 * day, Grace: 7 * day}},
		{[]string{"--key-max-age", "30s", "--key-rotation-window", "20s", "--key-expiry-grace", "0"}, enroll.KeyPolicy{MaxAge: 30 * time.Second, RotationWindow: 20 * time.Second}},
		{[]string{"--config", file}, enroll.KeyPolicy{MaxAge: 30 * day, RotationWindow: 10 * day, Grace: 36 * time.Hour}},
		{[]string{"--key-rotation-window", "-5s"}, enroll.KeyPolicy{}}, // off: not used
	} {
		got, err := policy(tc.args...)
		if err != nil || got != tc.want {
			t.Errorf("%v: %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
	for _, args := range [][]string{
		{"--key-max-age", "90"}, {"--key-max-age", "-1d"}, {"--key-max-age", "90d", "--key-rotation-window", "90d"},
		{"--key-max-age", "90d", "--key-expiry-grace", "soon"}, {"--key-max-age", "500ms"},
	} {
		_, err := policy(args...)
		var fe *cmdutil.FlagError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "--key-") {
			t.Errorf("%v: %v, want a usage error naming the flag", args, err)
		}
	}
}
