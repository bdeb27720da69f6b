package server_test

import (
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/server"
)

// TestSelfSignedSANsOnce: --public-host 127.0.0.1 (or localhost) is not
// listed twice beside the built-in loopback names, and the validity is
// the documented one.
func TestSelfSignedSANsOnce(t *testing.T) {
	c, err := server.LoadOrCreateCertificate("", "", t.TempDir(), []string{"127.0.0.1", "LOCALHOST", "oma.example", "::0001"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ip := range c.Leaf.IPAddresses {
		if seen[ip.String()] {
			t.Errorf("IP SAN %s listed twice: %v", ip, c.Leaf.IPAddresses)
		}
		seen[ip.String()] = true
	}
	if len(c.Leaf.IPAddresses) != 2 {
		t.Errorf("IP SANs %v, want 127.0.0.1 and ::1", c.Leaf.IPAddresses)
	}
	if len(c.Leaf.DNSNames) != 2 {
		t.Errorf("DNS SANs %v, want LOCALHOST (once, any case) and oma.example", c.Leaf.DNSNames)
	}
	years := c.Leaf.NotAfter.Sub(c.Leaf.NotBefore).Hours() / 24 / 365
	if years < float64(server.SelfSignedYears)-0.1 || years > float64(server.SelfSignedYears)+0.1 || time.Until(c.Leaf.NotAfter) < 0 {
		t.Errorf("valid %.1f years, want %d", years, server.SelfSignedYears)
	}
}
