package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestOmactlAdminTLS runs oma-server with --admin-tls (its self-signed
// certificate) and omactl against it: refused without a pin, with a
// message that says where the pin comes from; refused with a wrong pin;
// working with the admin_fingerprint that oma-server logs.
func TestOmactlAdminTLS(t *testing.T) {
	s := startServer(t, backend{name: "sqlite"}, "--admin-tls")
	// The line is logged just after the listeners start serving, so it
	// may trail the first healthy answer.
	var m []string
	eventually(t, 10*time.Second, "admin_fingerprint in the oma-server log", func() bool {
		m = regexp.MustCompile(`admin_fingerprint=(sha256:[0-9a-f]{64})`).FindStringSubmatch(s.log.String())
		return m != nil
	})
	fp := m[1]

	r := s.omactl("pending")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "does not trust") ||
		!strings.Contains(r.stderr, "--fingerprint") || !strings.Contains(r.stderr, "admin_fingerprint") {
		t.Fatalf("omactl without a pin: %s", r)
	}

	wrong := "sha256:" + strings.Repeat("ab", 32)
	r = s.omactl("pending", "--fingerprint", wrong)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, fp) || !strings.Contains(r.stderr, wrong) {
		t.Fatalf("omactl with a wrong pin: %s", r)
	}

	// The pin in any case and with colons, as people paste it.
	hexFP := strings.TrimPrefix(fp, "sha256:")
	upper := "SHA256:" + strings.ToUpper(hexFP)
	var pairs []string
	for i := 0; i < len(hexFP); i += 2 {
		pairs = append(pairs, hexFP[i:i+2])
	}
	colons := "sha256:" + strings.Join(pairs, ":")
	for _, pin := range []string{fp, upper, colons} {
		r = s.omactl("pairing-code", "-o", "json", "--fingerprint", pin)
		var pc struct {
			PairingCode string `json:"pairing_code"`
		}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &pc) != nil || pc.PairingCode == "" {
			t.Fatalf("omactl with the pin %s: %s", pin, r)
		}
	}
	// From the environment too, with the server given without a scheme
	// (a pin means https).
	r = runBinEnv(t, []string{"OMACTL_FINGERPRINT=" + fp}, "omactl", "--server", s.admin, "--token-file", s.tokenFile, "pending", "-o", "json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("omactl with OMACTL_FINGERPRINT: %s", r)
	}

	// A pin on a plain-HTTP address is a usage error, before any request.
	r = runBin(t, "omactl", "--server", "http://"+s.admin, "--token-file", s.tokenFile, "--fingerprint", fp, "pending")
	if r.code != 2 || !strings.Contains(r.stderr, "https://") {
		t.Fatalf("omactl --fingerprint with http://: %s", r)
	}
}
