package omaserver

import (
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// addKeyPolicyFlags adds the key expiry policy's flags (serve, and
// authorized-keys, which must refuse the same keys).
func addKeyPolicyFlags(f *pflag.FlagSet) {
	f.String("key-max-age", "0", "age at which a VMA's key is overdue, counted from its approval or last rotation, like 90d or 2160h (0: keys never expire)")
	f.String("key-rotation-window", "", "how long before --key-max-age a key is due and vma-enroll tunnel rotates it (default: a third of --key-max-age, at most 14d)")
	f.String("key-expiry-grace", "7d", "how long past --key-max-age an overdue key still works; then it is refused and the VMA needs a new pairing code")
}

// keyPolicyFrom reads and checks the key expiry policy (a usage error,
// exit 2, when the combination does not hold).
func keyPolicyFrom(v *viper.Viper) (enroll.KeyPolicy, error) {
	var (
		p   enroll.KeyPolicy
		err error
	)
	if p.MaxAge, err = cmdutil.ParseDuration(v.GetString("key_max_age")); err != nil {
		return p, cmdutil.FlagErrorf("--key-max-age: %v", err)
	}
	if p.Grace, err = cmdutil.ParseDuration(v.GetString("key_expiry_grace")); err != nil {
		return p, cmdutil.FlagErrorf("--key-expiry-grace: %v", err)
	}
	if w := v.GetString("key_rotation_window"); w != "" {
		if p.RotationWindow, err = cmdutil.ParseDuration(w); err != nil {
			return p, cmdutil.FlagErrorf("--key-rotation-window: %v", err)
		}
	} else {
		p.RotationWindow = enroll.DefaultRotationWindow(p.MaxAge)
	}
	if err := p.Validate(); err != nil {
		return p, cmdutil.FlagErrorf("%v", err)
	}
	if !p.Enabled() {
		return enroll.KeyPolicy{}, nil
	}
	return p, nil
}
