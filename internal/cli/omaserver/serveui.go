package omaserver

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/server"
	"github.com/oma-enroll/oma-enroll/internal/webui"
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

// adminTLSConfig is the admin listener's TLS configuration, or nil for
// plain HTTP (the default, which omactl uses).
func (o adminUIOptions) adminTLSConfig(public tls.Certificate) (*tls.Config, error) {
	cert := public
	switch {
	case o.AdminTLSCert != "":
		c, err := server.LoadOrCreateCertificate(o.AdminTLSCert, o.AdminTLSKey, "", nil)
		if err != nil {
			return nil, err
		}
		cert = c
	case !o.AdminTLS:
		return nil, nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: server.TLS12CipherSuites, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}, nil
}

// mountUI serves the admin web UI on srv's admin listener.
func mountUI(srv *server.Server, svc *enroll.Service, log *slog.Logger) error {
	ui, err := webui.New(webui.Config{Service: svc, Actions: srv, Log: log})
	if err != nil {
		return err
	}
	srv.SetUI(ui)
	return nil
}

// warnAdminListener warns when the admin listener is reachable from the
// network, louder when it speaks plain HTTP.
func warnAdminListener(log *slog.Logger, addr string, tlsOn bool) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || loopbackOnly(host) {
		return
	}
	if tlsOn {
		log.Warn("the admin listener is not on a loopback address; keep it on a private network", "admin_listen", addr)
		return
	}
	log.Warn("the admin listener is not on a loopback address and serves plain HTTP: admin tokens and web UI sessions cross the network unencrypted; "+
		"keep it on a private network and turn on --admin-tls (or --admin-tls-cert/--admin-tls-key)", "admin_listen", addr)
}

// loopbackOnly reports whether host ("" is every address) names loopback
// addresses only; a name is resolved, and one that does not resolve is
// taken as not loopback (the listener would not start anyway).
func loopbackOnly(host string) bool {
	if host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false
		}
	}
	return true
}
