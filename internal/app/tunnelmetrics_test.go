package app

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/endpoint"
)

// The embedded endpoint's limit counters register together (one name with
// three reasons) and are exported.
func TestTunnelLimitMetrics(t *testing.T) {
	kp, err := sshkey.LoadOrGenerate(t.TempDir(), "host")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(kp.Private)
	ep := endpoint.New(endpoint.Config{HostKey: signer}, nil, nil)
	reg := prometheus.NewRegistry()
	for _, c := range tunnelLimitMetrics(ep) {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		if mf.GetName() == "oma_enroll_tunnel_connections_refused_total" && len(mf.GetMetric()) != 3 {
			t.Errorf("%s has %d series, want 3 reasons", mf.GetName(), len(mf.GetMetric()))
		}
	}
	for _, want := range []string{"oma_enroll_tunnel_connections_refused_total", "oma_enroll_tunnel_login_failures_total",
		"oma_enroll_tunnel_requests_refused_total", "oma_enroll_tunnel_closed_for_refusals_total"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("metrics lack %s: %v", want, names)
		}
	}
}
