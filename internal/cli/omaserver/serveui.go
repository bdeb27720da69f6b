package omaserver

import (
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// adminUIOptions are serve's flags for the admin web UI and the admin
// listener's optional TLS.
type adminUIOptions struct {
	UI                        bool
	AdminTLS                  bool
	AdminTLSCert, AdminTLSKey string
}

func addAdminUIFlags(f *pflag.FlagSet) {
	f.Bool("ui", true, "serve the admin web UI at / on the admin listener (sign in with an admin token)")
	f.Bool("admin-tls", false, "serve the admin listener over HTTPS with the public listener's certificate (the self-signed one of the data dir unless --tls-cert)")
	f.String("admin-tls-cert", "", "PEM certificate for HTTPS on the admin listener (implies --admin-tls)")
	f.String("admin-tls-key", "", "PEM private key for --admin-tls-cert")
}

func adminUIOptionsFrom(v *viper.Viper) (adminUIOptions, error) {
	o := adminUIOptions{
		UI:           v.GetBool("ui"),
		AdminTLS:     v.GetBool("admin_tls"),
		AdminTLSCert: v.GetString("admin_tls_cert"),
		AdminTLSKey:  v.GetString("admin_tls_key"),
	}
	if (o.AdminTLSCert == "") != (o.AdminTLSKey == "") {
		return o, cmdutil.FlagErrorf("give both --admin-tls-cert and --admin-tls-key, or neither")
	}
	return o, nil
}
