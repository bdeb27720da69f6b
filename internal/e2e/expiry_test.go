package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// The key expiry policy (docs/rotation.md, "Key expiry") with the real
// binaries, on short test policies: the tunnel rotates by itself inside
// the window, and a VMA that does not rotate is refused after max age +
// grace (the OpenSSH client too), audited once.

// auditOf returns the audit events of one VMA.
func auditOf(t *testing.T, s *server, name string) []api.AuditEvent {
	t.Helper()
	var evs []api.AuditEvent
	s.omactlJSON(&evs, "audit", "--vma", name)
	return evs
}

func countType(evs []api.AuditEvent, typ string) int {
	n := 0
	for _, ev := range evs {
		if ev.EventType == typ {
			n++
		}
	}
	return n
}

// metric returns the value of one series of the admin /metrics.
func metric(t *testing.T, s *server, series string) string {
	t.Helper()
	if s.adminTLS {
		t.Fatal("metric: the test server's admin listener is HTTPS")
	}
	req, _ := http.NewRequest(http.MethodGet, s.adminURL()+api.PathMetrics, nil)
	req.Header.Set("Authorization", "Bearer "+s.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	t.Fatalf("/metrics has no %s:\n%s", series, b)
	return ""
}

// TestKeyExpirySelfRotation: under --key-max-age 30s with a 20s window, a
// running vma-enroll tunnel rotates its key by itself once it is due,
// reconnects with the new key and keeps carrying traffic; the audit shows
// key_rotation; omactl and /metrics show the key's age and status; the
// OpenSSH client then logs in with the rotated key.
func TestKeyExpirySelfRotation(t *testing.T) {
	testbin.Need(t, "apt-get install openssh-client", "ssh")
	forEachBackend(t, func(t *testing.T, b backend) {
		s, nbdListen, tport := startTunnelServer(t, b, "--key-max-age", "30s", "--key-rotation-window", "20s", "--key-expiry-grace", "1h")
		dir := s.enrolled("vma-exp-01")
		k0 := keyFP(t, filepath.Join(dir, "id_ed25519"))

		var active []api.Connection
		s.omactlJSON(&active, "active")
		if len(active) != 1 || active[0].KeySince == nil || active[0].KeyStatus != "ok" || active[0].KeyRotateAfter == nil ||
			!active[0].KeyRotateAfter.Equal(active[0].KeySince.Add(10*time.Second)) || !active[0].KeyExpiresAt.Equal(active[0].KeySince.Add(30*time.Second)) {
			t.Fatalf("active before the window: %+v", active)
		}
		if rep := rotVMAStatus(t, dir); rep.Self == nil || rep.Self.KeyExpiresAt == nil || rep.Self.KeyRefusedAfter == nil ||
			!rep.Self.KeyRefusedAfter.Equal(rep.Self.KeyExpiresAt.Add(time.Hour)) || rep.Self.KeyStatus != "ok" {
			t.Fatalf("self before the window: %+v", rep.Self)
		}

		tun := startVMA(t, dir, "tunnel", "-o", "json")
		waitTunnel(t, s, tun, 1)
		checkForwards(t, nbdListen, tport, "before the rotation")

		// Due 10s after the approval (plus up to 2s of jitter).
		eventually(t, 25*time.Second, "the tunnel to rotate its key by itself", func() bool {
			return countType(auditOf(t, s, "vma-exp-01"), "key_rotation") >= 1
		})
		waitTunnel(t, s, tun, 2)
		k1 := keyFP(t, filepath.Join(dir, "id_ed25519"))
		if k1 == k0 {
			t.Fatalf("id_ed25519 is still %s after the OMA's key_rotation", k0)
		}
		checkForwards(t, nbdListen, tport, "after the self-rotation")
		if !strings.Contains(tun.stderr.String(), "for rotation (age") || !strings.Contains(tun.stderr.String(), "rotated to") {
			t.Fatalf("the tunnel did not say it rotated:\n%s", tun.stderr.String())
		}
		eventually(t, 10*time.Second, "the active list to show the new key, ok", func() bool {
			s.omactlJSON(&active, "active")
			return len(active) == 1 && active[0].KeyStatus == "ok" && active[0].ConnectionStatus == "connected"
		})
		if got := metric(t, s, `oma_enroll_vma_keys{status="expired"}`); got != "0" {
			t.Fatalf("expired keys = %s, want 0", got)
		}
		if r := s.omactl("audit", "verify"); r.code != 0 {
			t.Fatalf("audit verify: %s", r)
		}

		// The OpenSSH client (ssh_config names id_ed25519) with the
		// rotated key.
		tun.cmd.Process.Signal(syscall.SIGTERM)
		tun.wait(15 * time.Second)
		cur := keyFP(t, filepath.Join(dir, "id_ed25519"))
		sshTun := startVMA(t, dir, "tunnel", "--openssh")
		eventually(t, 20*time.Second, "the OpenSSH tunnel with the rotated key", func() bool {
			s.omactlJSON(&active, "active")
			return len(active) == 1 && active[0].ConnectionStatus == "connected" && active[0].VMAFingerprint == cur
		})
		sshTun.cmd.Process.Signal(syscall.SIGTERM)
		sshTun.wait(15 * time.Second)
	})
}

// TestKeyExpiryRefusal: under --key-max-age 3s, --key-expiry-grace 1s, a
// VMA without a running tunnel is refused once its key is older than 4s:
// the OpenSSH client's login fails, self answers 401 (vma-enroll status:
// refused, with what to do), rotate exits 7; one key_expired event for all
// these attempts; omactl and /metrics show the key expired.
func TestKeyExpiryRefusal(t *testing.T) {
	testbin.Need(t, "apt-get install openssh-client", "ssh")
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startServer(t, b, "--tunnel-mode", "embedded", "--key-max-age", "3s", "--key-expiry-grace", "1s")
		dir := s.enrolled("vma-exp-02")
		var active []api.Connection
		s.omactlJSON(&active, "active")
		if len(active) != 1 || active[0].KeyRefusedAfter == nil {
			t.Fatalf("active: %+v", active)
		}
		// Wait out max age + grace on the OMA's clock.
		time.Sleep(time.Until(active[0].KeyRefusedAfter.Add(200 * time.Millisecond)))

		for i := range 2 {
			r := runBin(t, "vma-enroll", "tunnel", "--openssh", "--config-dir", dir)
			if r.code != 1 || !strings.Contains(r.stderr, "Permission denied") {
				t.Fatalf("OpenSSH login %d with the expired key: %s", i, r)
			}
		}
		var st struct {
			OMACheck struct {
				Result string `json:"result"`
				Via    string `json:"via"`
				Error  string `json:"error"`
			} `json:"oma_check"`
		}
		r := runBin(t, "vma-enroll", "status", "--config-dir", dir, "-o", "json")
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatalf("status: %v\n%s", err, r)
		}
		if st.OMACheck.Via != "self" || st.OMACheck.Result != "refused" || !strings.Contains(st.OMACheck.Error, "expired") || !strings.Contains(st.OMACheck.Error, "pairing code") {
			t.Fatalf("status of an expired key: %+v", st.OMACheck)
		}
		if r := runBin(t, "vma-enroll", "rotate", "--config-dir", dir); r.code != 7 {
			t.Fatalf("rotate with an expired key: %s", r)
		}

		evs := auditOf(t, s, "vma-exp-02")
		if n := countType(evs, "key_expired"); n != 1 {
			t.Fatalf("%d key_expired events, want 1", n)
		}
		for _, ev := range evs {
			if ev.EventType == "key_expired" && ev.EventDetails["fingerprint"] != keyFP(t, filepath.Join(dir, "id_ed25519")) {
				t.Fatalf("key_expired event: %+v", ev)
			}
		}
		r = s.omactl("active", "--key-status", "expired")
		if r.code != 0 || !strings.Contains(r.stdout, "vma-exp-02") || !strings.Contains(r.stdout, "expired") {
			t.Fatalf("omactl active --key-status expired: %s", r)
		}
		if got := metric(t, s, `oma_enroll_vma_keys{status="expired"}`); got != "1" {
			t.Fatalf("expired keys = %s, want 1", got)
		}
		if r := s.omactl("audit", "verify"); r.code != 0 {
			t.Fatalf("audit verify: %s", r)
		}
	})
}
