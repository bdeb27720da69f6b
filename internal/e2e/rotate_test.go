package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
	"github.com/oma-enroll/oma-enroll/internal/vmaauth"
)

// Key rotation (issue 16, docs/rotation.md) with the real binaries: the
// OMA, vma-enroll rotate/status/tunnel, and the OpenSSH client.

// TestRotateWithTunnel: self for an approved VMA, two rotations in a row
// while the native tunnel runs (it reconnects with each new key, the
// forwards carry traffic after each), the key_rotation audit events, the
// old key refused once the new one was used, the OpenSSH client with the
// rotated key, and a revoked VMA: self 401, rotation refused (exit 7).
func TestRotateWithTunnel(t *testing.T) {
	testbin.Need(t, "apt-get install openssh-client", "ssh")
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { testRotateWithTunnel(t, b) })
	}
}

func testRotateWithTunnel(t *testing.T, b backend) {
	s, nbdListen, tport := startTunnelServer(t, b, "--rotation-grace", "10m")
	dir := s.enrolled("vma-rot-01")
	k0 := keyFP(t, filepath.Join(dir, "id_ed25519"))
	old := saveKey(t, filepath.Join(dir, "id_ed25519"))

	// self, live: approved, the key, the tunnel port, the OMA's pin.
	rep := rotVMAStatus(t, dir)
	_, _, pin := readState(t, dir)
	if rep.OMACheck.Via != "self" || rep.OMACheck.Result != "accepted" || rep.Self == nil ||
		rep.Self.Status != "approved" || rep.Self.KeyFingerprint != k0 || rep.Self.TunnelPort == nil ||
		strconv.Itoa(*rep.Self.TunnelPort) != tport || rep.Self.OMAFingerprint != pin || rep.Self.KeySince == nil ||
		rep.Self.AuthenticatedWith != "current" || rep.Self.KeyExpiresAt != nil {
		t.Fatalf("status before the rotation: %+v self %+v", rep, rep.Self)
	}

	tun := startVMA(t, dir, "tunnel", "-o", "json")
	waitTunnel(t, s, tun, 1)
	checkForwards(t, nbdListen, tport, "before the rotation")

	fps := []string{k0}
	for i := 1; i <= 2; i++ {
		rr := rotate(t, dir)
		if rr.Result != "rotated" || rr.PreviousKeyFingerprint != fps[i-1] || rr.KeyFingerprint == fps[i-1] {
			t.Fatalf("rotation %d: %+v (key was %s)", i, rr, fps[i-1])
		}
		fps = append(fps, rr.KeyFingerprint)
		if got := keyFP(t, filepath.Join(dir, "id_ed25519")); got != rr.KeyFingerprint {
			t.Fatalf("rotation %d: id_ed25519 is %s, the OMA has %s", i, got, rr.KeyFingerprint)
		}
		if _, err := os.Stat(filepath.Join(dir, "id_ed25519.next")); !os.IsNotExist(err) {
			t.Fatalf("rotation %d left id_ed25519.next: %v", i, err)
		}
		waitTunnel(t, s, tun, i+1)
		eventually(t, 10*time.Second, "the OMA to list the connection with the new key", func() bool {
			var active []api.Connection
			s.omactlJSON(&active, "active")
			return len(active) == 1 && active[0].VMAFingerprint == rr.KeyFingerprint && active[0].ConnectionStatus == "connected"
		})
		checkForwards(t, nbdListen, tport, "after rotation "+strconv.Itoa(i))
	}
	if !strings.Contains(tun.stderr.String(), "reconnecting with the new key") {
		t.Fatalf("the tunnel did not say why it reconnected:\n%s", tun.stderr.String())
	}

	// The audit trail: two key_rotation events with both fingerprints.
	var audit []struct {
		EventType string         `json:"event_type"`
		Details   map[string]any `json:"event_details"`
	}
	r := s.omactl("audit", "--vma", "vma-rot-01", "-o", "json")
	if r.code != 0 {
		t.Fatalf("audit: %s", r)
	}
	if err := json.Unmarshal([]byte(r.stdout), &audit); err != nil {
		t.Fatalf("audit -o json: %v\n%s", err, r.stdout)
	}
	var seen []string
	for _, ev := range audit {
		if ev.EventType == "key_rotation" {
			seen = append(seen, ev.Details["old_fingerprint"].(string)+">"+ev.Details["new_fingerprint"].(string))
		}
	}
	if len(seen) != 2 || !strings.Contains(strings.Join(seen, " "), fps[0]+">"+fps[1]) || !strings.Contains(strings.Join(seen, " "), fps[1]+">"+fps[2]) {
		t.Fatalf("key_rotation events %v, want %s>%s and %s>%s\n%s", seen, fps[0], fps[1], fps[1], fps[2], r.stdout)
	}
	if r := s.omactl("audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify: %s", r)
	}

	// The first key was rotated away and the new one used: refused.
	if r := runBin(t, "vma-enroll", "status", "--config-dir", withKey(t, dir, old), "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, `"status": "revoked"`) {
		t.Fatalf("status with the rotated-away key: %s", r)
	}

	// The OpenSSH client with the rotated key (ssh_config is unchanged).
	tun.cmd.Process.Signal(syscall.SIGTERM)
	tun.wait(15 * time.Second)
	sshTun := startVMA(t, dir, "tunnel", "--openssh")
	eventually(t, 20*time.Second, "the OpenSSH tunnel with the rotated key", func() bool {
		var active []api.Connection
		s.omactlJSON(&active, "active")
		return len(active) == 1 && active[0].ConnectionStatus == "connected" && active[0].VMAFingerprint == fps[2]
	})
	checkForwards(t, nbdListen, tport, "over OpenSSH after the rotations")
	// OpenSSH keeps its session of the old key across a rotation: the OMA
	// closes it once the new key was used (rotate's own check with it
	// ends the previous key's grace).
	rr := rotate(t, dir)
	fps = append(fps, rr.KeyFingerprint)
	select {
	case <-sshTun.done:
		// The OMA logs the disconnection after it closed the connection:
		// ssh may have exited first.
		eventually(t, 10*time.Second, "the OMA to log why it ended the OpenSSH session", func() bool {
			return strings.Contains(s.log.String(), "previous key's grace ended")
		})
	case <-time.After(15 * time.Second):
		t.Fatalf("the OMA kept the OpenSSH session of the rotated-away key open")
	}

	// curl with the key as a client certificate (vma-enroll client-cert),
	// the OMA pinned as docs/rotation.md shows; without one: 401.
	if testbin.LookPath("curl") != "" {
		if r := runBin(t, "vma-enroll", "client-cert", "--config-dir", dir); r.code != 0 {
			t.Fatalf("client-cert: %s", r)
		}
		raw, _ := hex.DecodeString(strings.TrimPrefix(pin, "sha256:"))
		pinArg := "sha256//" + base64.StdEncoding.EncodeToString(raw)
		out, err := exec.Command("curl", "-sS", "-k", "--pinnedpubkey", pinArg,
			"--cert", filepath.Join(dir, "vma-client.crt"), "--key", filepath.Join(dir, "vma-client.key"),
			"https://"+s.public+api.PathVMASelf).Output()
		var me api.VMASelf
		if err != nil || json.Unmarshal(out, &me) != nil || me.KeyFingerprint != fps[3] || me.VMAName != "vma-rot-01" {
			t.Fatalf("curl self: %v\n%s", err, out)
		}
		out, _ = exec.Command("curl", "-sS", "-k", "--pinnedpubkey", pinArg, "-w", "%{http_code}",
			"https://"+s.public+api.PathVMASelf).Output()
		if !strings.Contains(string(out), `"code":"unauthorized"`) || !strings.HasSuffix(string(out), "401") {
			t.Fatalf("curl self without a certificate: %s", out)
		}
	}

	// Revoked: self refuses (401 → status revoked), rotate exits 7 and
	// leaves the key as it was.
	if r := s.omactl("revoke", "vma-rot-01", "--reason", "test", "--yes"); r.code != 0 {
		t.Fatalf("revoke: %s", r)
	}
	if rep := rotVMAStatus(t, dir); rep.Status != "revoked" || rep.OMACheck.Via != "self" || rep.OMACheck.Result != "refused" {
		t.Fatalf("status after the revocation: %+v", rep)
	}
	if r := runBin(t, "vma-enroll", "rotate", "--config-dir", dir); r.code != 7 {
		t.Fatalf("rotate of a revoked VMA: %s", r)
	}
	if got := keyFP(t, filepath.Join(dir, "id_ed25519")); got != fps[3] {
		t.Fatalf("the refused rotation changed the key: %s", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "id_ed25519.next")); !os.IsNotExist(err) {
		t.Fatalf("the refused rotation left id_ed25519.next: %v", err)
	}
}

// TestRotateRefusals: the 401 of the VMA endpoints without a certificate
// or with an unknown key (the enrollment endpoints are unchanged), a
// replayed rotation (signed for another connection) refused, a rotation to
// a key approved under another VMA refused with 409, and two concurrent
// vma-enroll rotate: one wins, the VMA keeps one working key.
func TestRotateRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startServer(t, b)
		a := s.enrolled("vma-rot-a")
		bdir := s.enrolled("vma-rot-b")
		id, fp, pin := readState(t, a)
		akey := readPriv(t, filepath.Join(a, "id_ed25519"))

		// No certificate, and an unknown key: 401 with the error object.
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: client.TLSConfig(pin, false)}}
		resp, err := hc.Get("https://" + s.public + api.PathVMASelf)
		if err != nil {
			t.Fatal(err)
		}
		var eb api.ErrorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != 401 || eb.Error.Code != "unauthorized" {
			t.Fatalf("self without a certificate: %d %+v", resp.StatusCode, eb)
		}
		// The enrolled key over TLS 1.2 (the certificate would travel in
		// clear): 401 too.
		cert, _ := vmaauth.ClientCertificate(akey)
		tls12 := client.TLSConfig(pin, false)
		tls12.MaxVersion, tls12.Certificates = tls.VersionTLS12, []tls.Certificate{cert}
		hc12 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tls12}}
		resp, err = hc12.Get("https://" + s.public + api.PathVMASelf)
		if err != nil {
			t.Fatal(err)
		}
		eb = api.ErrorBody{}
		json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != 401 || eb.Error.Code != "unauthorized" || !strings.Contains(eb.Error.Message, "TLS 1.3") {
			t.Fatalf("self over TLS 1.2: %d %+v", resp.StatusCode, eb)
		}
		_, stranger, _ := sshkey.Generate(nil)
		c := mtls(t, s, pin, stranger)
		if code, ec := rawRotate(t, c, id, fp, stranger, nil); code != 401 || ec != "unauthorized" {
			t.Fatalf("rotate with an unknown key: %d %s", code, ec)
		}
		c.Close()

		// A replay: signed over another connection's binding.
		_, next, _ := sshkey.Generate(nil)
		c1, c2 := mtls(t, s, pin, akey), mtls(t, s, pin, akey)
		st1 := c1.ConnectionState()
		b1, err := st1.ExportKeyingMaterial(enroll.RotationExporterLabel, nil, enroll.RotationBindingSize)
		if err != nil {
			t.Fatal(err)
		}
		if code, ec := rawRotate(t, c2, id, fp, next, b1); code != 400 || ec != "invalid_signature" {
			t.Fatalf("replayed rotation: %d %s", code, ec)
		}
		c1.Close()
		c2.Close()

		// B's key for A: 409, one key one VMA.
		c = mtls(t, s, pin, akey)
		if code, ec := rawRotate(t, c, id, fp, readPriv(t, filepath.Join(bdir, "id_ed25519")), nil); code != 409 || ec != "conflict" {
			t.Fatalf("rotation to another VMA's key: %d %s", code, ec)
		}
		c.Close()
		if rep := rotVMAStatus(t, a); rep.Self == nil || rep.Self.KeyFingerprint != fp {
			t.Fatalf("A after the refusals: %+v", rep)
		}

		// Two at once: one rotates, the other is turned away; one key works.
		var runs [2]*exec.Cmd
		var outs [2]bytes.Buffer
		for i := range runs {
			runs[i] = exec.Command(bin("vma-enroll"), "rotate", "--config-dir", a, "-o", "json")
			runs[i].Env = testbin.Env()
			runs[i].Stdout, runs[i].Stderr = &outs[i], &outs[i]
			if err := runs[i].Start(); err != nil {
				t.Fatal(err)
			}
		}
		wins := 0
		for i := range runs {
			runs[i].Wait()
			if runs[i].ProcessState.ExitCode() == 0 {
				wins++
			}
		}
		if wins < 1 {
			t.Fatalf("no concurrent rotation won:\n%s\n%s", outs[0].String(), outs[1].String())
		}
		rep := rotVMAStatus(t, a)
		if rep.Self == nil || rep.Self.KeyFingerprint != keyFP(t, filepath.Join(a, "id_ed25519")) || rep.Self.KeyFingerprint == fp || rep.VMAFingerprint != rep.Self.KeyFingerprint {
			t.Fatalf("after concurrent rotations: %+v self %+v\n%s\n%s", rep, rep.Self, outs[0].String(), outs[1].String())
		}
		if _, err := os.Stat(filepath.Join(a, "id_ed25519.next")); !os.IsNotExist(err) {
			t.Fatalf("concurrent rotations left id_ed25519.next: %v", err)
		}
	})
}

// TestRotateCrash: kill -9 of vma-enroll rotate after it wrote the next
// key and before the OMA answered (the OMA is stopped with SIGSTOP so the
// request hangs): the rerun drops the key the OMA never took and rotates.
// Then, twice, the disk state of a crash after the OMA's swap and before
// the promotion (id_ed25519 old, id_ed25519.next new, rebuilt from a real
// rotation): the start of `vma-enroll tunnel` finishes the rotation and
// connects with the new key; a rerun of `vma-enroll rotate` reports it
// recovered.
func TestRotateCrash(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, nbdListen, tport := startTunnelServer(t, b)
		dir := s.enrolled("vma-rot-crash")
		k0 := keyFP(t, filepath.Join(dir, "id_ed25519"))

		v := startRotateStopped(t, s, dir)
		time.Sleep(200 * time.Millisecond) // let it reach the (stopped) OMA
		v.cmd.Process.Kill()
		<-v.done
		s.Cmd.Process.Signal(syscall.SIGCONT)
		if got := keyFP(t, filepath.Join(dir, "id_ed25519")); got != k0 {
			t.Fatalf("the key changed before the OMA answered: %s", got)
		}
		rr := rotate(t, dir)
		if rr.Result != "rotated" || rr.PreviousKeyFingerprint != k0 {
			t.Fatalf("rerun after kill -9: %+v", rr)
		}
		if got := keyFP(t, filepath.Join(dir, "id_ed25519")); got != rr.KeyFingerprint {
			t.Fatalf("after the rerun id_ed25519 is %s, the OMA has %s", got, rr.KeyFingerprint)
		}

		// Crash after the swap, before the promotion: rebuild that disk
		// state (id_ed25519 the old key, id_ed25519.next the new one the
		// OMA holds, enrollment.json the old fingerprint) from a real
		// rotation, twice: `vma-enroll tunnel` and then `vma-enroll rotate`
		// must each find the working key.
		crashAfterSwap := func() string {
			t.Helper()
			before := filepath.Join(t.TempDir(), "before")
			copyFile(t, filepath.Join(dir, "id_ed25519"), before)
			stateBefore, _ := os.ReadFile(filepath.Join(dir, "enrollment.json"))
			_, fpBefore, _ := readState(t, dir)
			rr := rotate(t, dir)
			copyFile(t, filepath.Join(dir, "id_ed25519"), filepath.Join(dir, "id_ed25519.next"))
			copyFile(t, before, filepath.Join(dir, "id_ed25519"))
			os.Remove(filepath.Join(dir, "id_ed25519.pub"))
			if err := os.WriteFile(filepath.Join(dir, "enrollment.json"), stateBefore, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, fp, _ := readState(t, dir); fp != fpBefore || keyFP(t, filepath.Join(dir, "id_ed25519")) != fpBefore {
				t.Fatalf("rebuilt state records %s, want %s", fp, fpBefore)
			}
			return rr.KeyFingerprint
		}

		k2 := crashAfterSwap()
		tun := startVMA(t, dir, "tunnel", "-o", "json")
		waitTunnel(t, s, tun, 1)
		eventually(t, 10*time.Second, "the tunnel on the recovered key", func() bool {
			var active []api.Connection
			s.omactlJSON(&active, "active")
			return len(active) == 1 && active[0].VMAFingerprint == k2 && active[0].ConnectionStatus == "connected"
		})
		checkForwards(t, nbdListen, tport, "after the recovery by the tunnel")
		if got := keyFP(t, filepath.Join(dir, "id_ed25519")); got != k2 || !strings.Contains(tun.stderr.String(), "Finished an interrupted key rotation") {
			t.Fatalf("the tunnel did not promote the new key (id_ed25519 %s, want %s):\n%s", got, k2, tun.stderr.String())
		}
		tun.cmd.Process.Signal(syscall.SIGTERM)
		tun.wait(15 * time.Second)

		k3 := crashAfterSwap()
		r := runBin(t, "vma-enroll", "rotate", "--config-dir", dir, "-o", "json")
		if r.code != 0 || !strings.Contains(r.stdout, `"result": "recovered"`) || !strings.Contains(r.stdout, k3) {
			t.Fatalf("rerun after a crash before the promotion: %s", r)
		}
		if rep := rotVMAStatus(t, dir); rep.Self == nil || rep.Self.KeyFingerprint != k3 || rep.VMAFingerprint != k3 {
			t.Fatalf("status after the recovery: %+v", rep)
		}
	})
}
