package e2e

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // test only: to age a pairing code in the server's database

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

func (s *server) pairingCode() api.PairingCodeResponse {
	s.t.Helper()
	var pc api.PairingCodeResponse
	s.omactlJSON(&pc, "pairing-code")
	if pc.PairingCode == "" || !strings.HasPrefix(pc.OMAFingerprint, "sha256:") {
		s.t.Fatalf("pairing-code answer %+v", pc)
	}
	return pc
}

// enrollArgs are the vma-enroll flags for a code, as the join command has them.
func (s *server) enrollArgs(pc api.PairingCodeResponse, name string, extra ...string) []string {
	return append([]string{"--oma", s.public, "--code", pc.PairingCode, "--fingerprint", pc.OMAFingerprint, "--name", name, "-o", "json"}, extra...)
}

// waitPending waits until name is awaiting approval and returns it.
func (s *server) waitPending(name string) api.Enrollment {
	s.t.Helper()
	var found api.Enrollment
	eventually(s.t, 20*time.Second, name+" in omactl pending", func() bool {
		var list []api.Enrollment
		s.omactlJSON(&list, "pending")
		for _, e := range list {
			if e.VMAName == name {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

func TestHappyPath(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startServer(t, b)
		pc := s.pairingCode()
		if !strings.Contains(pc.JoinCommand, "--code "+pc.PairingCode) || !strings.Contains(pc.JoinCommand, pc.OMAFingerprint) {
			t.Errorf("join command %q lacks the code or the fingerprint", pc.JoinCommand)
		}
		dir := filepath.Join(t.TempDir(), "vma")
		v := startVMA(t, dir, s.enrollArgs(pc, "vma-e2e-01", "--vma-version", "2.4.1", "--timeout", "60s")...)

		pending := s.waitPending("vma-e2e-01")
		if pending.VMAIPAddress != "127.0.0.1" || pending.VMAVersion != "2.4.1" || pending.Status != "awaiting_approval" {
			t.Errorf("pending = %+v", pending)
		}
		// The admin sees the fingerprint ssh-keygen computes from the VMA's key.
		out, err := exec.Command("ssh-keygen", "-lf", filepath.Join(dir, "id_ed25519.pub")).Output()
		if err != nil {
			t.Fatalf("ssh-keygen -lf: %v", err)
		}
		if f := strings.Fields(string(out)); len(f) < 2 || f[1] != pending.VMAFingerprint {
			t.Errorf("pending fingerprint %s, ssh-keygen says %q", pending.VMAFingerprint, out)
		}

		if r := s.omactl("approve", "vma-e2e-01", "--notes", "fingerprint checked"); r.code != 0 || !strings.Contains(r.stdout, "Approved") {
			t.Fatalf("approve: %s", r)
		}
		r := v.wait(30 * time.Second)
		if r.code != 0 {
			t.Fatalf("vma-enroll: %s", r)
		}
		res := r.result(t)
		if res.Status != "approved" || res.EnrollmentID != pending.ID || res.VMAFingerprint != pending.VMAFingerprint || res.ConfigDir != dir || len(res.Files) != 6 {
			t.Errorf("vma-enroll result = %+v", res)
		}
		for name, mode := range map[string]os.FileMode{"id_ed25519": 0o600, "id_ed25519.pub": 0o644, "enrollment.json": 0o600, "known_hosts": 0o644, "ssh_config": 0o644, "vma-tunnel.service": 0o644} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else if fi.Mode().Perm() != mode {
				t.Errorf("%s has mode %o, want %o", name, fi.Mode().Perm(), mode)
			}
		}
		var left []api.Enrollment
		if s.omactlJSON(&left, "pending"); len(left) != 0 {
			t.Errorf("pending after approval = %+v", left)
		}
		sshConfig, _ := os.ReadFile(filepath.Join(dir, "ssh_config"))
		host, port, _ := strings.Cut(s.public, ":")
		for _, want := range []string{"Host oma", "HostName " + host, "Port " + port, "User vma_tunnel", "StrictHostKeyChecking yes",
			"LocalForward 127.0.0.1:10808 127.0.0.1:10809", "RemoteForward 127.0.0.1:9081 127.0.0.1:8081", "ExitOnForwardFailure yes"} {
			if !strings.Contains(string(sshConfig), "\n    "+want+"\n") && !strings.Contains(string(sshConfig), "\n"+want+"\n") {
				t.Errorf("ssh_config lacks %q:\n%s", want, sshConfig)
			}
		}
		unit, _ := os.ReadFile(filepath.Join(dir, "vma-tunnel.service"))
		if !strings.Contains(string(unit), "tunnel --config-dir "+dir) || !strings.Contains(string(unit), "Restart=always") {
			t.Errorf("vma-tunnel.service:\n%s", unit)
		}
		st := runBin(t, "vma-enroll", "status", "--config-dir", dir, "-o", "json")
		if st.code != 0 || !strings.Contains(st.stdout, `"status": "approved"`) || strings.Contains(st.stdout, "poll_token") {
			t.Errorf("vma-enroll status: %s", st)
		}

		var active []api.Connection
		s.omactlJSON(&active, "active")
		if len(active) != 1 || active[0].EnrollmentID != pending.ID || active[0].TunnelPort == nil || *active[0].TunnelPort != 9081 {
			t.Fatalf("active = %+v", active)
		}
		if r := s.omactl("active"); r.code != 0 || !strings.Contains(r.stdout, "vma-e2e-01") {
			t.Errorf("active table: %s", r)
		}

		if r := s.omactl("revoke", "vma-e2e-01", "--reason", "end of test", "--yes"); r.code != 0 {
			t.Fatalf("revoke: %s", r)
		}
		s.omactlJSON(&active, "active")
		for _, c := range active {
			if c.EnrollmentID == pending.ID && c.ConnectionStatus != "revoked" {
				t.Errorf("revoked VMA still active: %+v", c)
			}
		}

		var events []api.AuditEvent
		s.omactlJSON(&events, "audit", "--enrollment", pending.ID)
		var types []string
		for _, e := range events {
			types = append(types, e.EventType)
		}
		if got, want := strings.Join(types, ","), "enrollment,verification,approval,revocation"; got != want {
			t.Errorf("audit of the enrollment = %s, want %s", got, want)
		}
		for i := 1; i < len(events); i++ {
			if events[i].ID <= events[i-1].ID {
				t.Errorf("audit not in order: %d after %d", events[i].ID, events[i-1].ID)
			}
		}
		if len(events) > 2 && events[2].ApprovedBy != "admin" {
			t.Errorf("approval actor = %q, want the token's name", events[2].ApprovedBy)
		}
		if r := s.omactl("audit"); r.code != 0 || !strings.Contains(r.stdout, "revocation") {
			t.Errorf("audit table: %s", r)
		}
		if r := s.omactl("audit", "verify"); r.code != 0 || !strings.HasPrefix(r.stdout, "OK") {
			t.Errorf("audit verify: %s", r)
		}
	})
}

func TestRejected(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startServer(t, b)
		pc := s.pairingCode()
		v := startVMA(t, t.TempDir(), s.enrollArgs(pc, "vma-unknown", "--timeout", "60s")...)
		e := s.waitPending("vma-unknown")
		if r := s.omactl("reject", e.ID[:8], "--reason", "not one of ours", "--yes"); r.code != 0 {
			t.Fatalf("reject: %s", r)
		}
		r := v.wait(30 * time.Second)
		if r.code != 3 || r.result(t).Status != "rejected" || !strings.Contains(r.stderr, "not one of ours") {
			t.Fatalf("vma-enroll after rejection: %s", r)
		}
	})
}

func TestTimeoutAndExpiry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startServer(t, b, "--approval-window", "3s")
		// Nobody approves: vma-enroll gives up after --timeout.
		pc := s.pairingCode()
		dir := t.TempDir()
		start := time.Now()
		r := runBin(t, "vma-enroll", append(s.enrollArgs(pc, "vma-slow", "--timeout", "2s"), "--config-dir", dir)...)
		if r.code != 4 || r.result(t).Status != "timeout" {
			t.Fatalf("vma-enroll --timeout 2s: %s", r)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("--timeout 2s took %s", d)
		}
		// Resumed after the approval window, it learns the enrollment expired.
		time.Sleep(1500 * time.Millisecond)
		r = runBin(t, "vma-enroll", "--config-dir", dir, "-o", "json", "--timeout", "30s")
		if r.code != 4 || r.result(t).Status != "expired" {
			t.Fatalf("vma-enroll after expiry: %s", r)
		}
	})
}

// expireCode ages a pairing code in the server's database.
func (s *server) expireCode(code string) {
	s.t.Helper()
	canon, err := enroll.NormalizePairingCode(code)
	if err != nil {
		s.t.Fatal(err)
	}
	db := s.openDB()
	defer db.Close()
	// The stored hash is keyed by the server's audit key (its data dir).
	keyHex, err := os.ReadFile(filepath.Join(s.dataDir, "audit.key"))
	if err != nil {
		s.t.Fatal(err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(keyHex)))
	if err != nil {
		s.t.Fatal(err)
	}
	res, err := db.Exec("UPDATE vma_pairing_codes SET expires_at = created_at WHERE pairing_code_hash = ?", enroll.PairingCodeHash(key, canon))
	if err != nil {
		s.t.Fatalf("age the pairing code: %v", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		s.t.Fatalf("age the pairing code: %d rows", n)
	}
}

func TestPairingCodeRejected(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startServer(t, b)
		pc := s.pairingCode()
		fp := pc.OMAFingerprint
		try := func(code, name string) res {
			return runBin(t, "vma-enroll", "--oma", s.public, "--code", code, "--fingerprint", fp, "--name", name, "--config-dir", t.TempDir(), "-o", "json", "--timeout", "1s")
		}
		// A code is good once: the first run enrolls (and times out waiting) ...
		if r := try(strings.ToLower(strings.ReplaceAll(pc.PairingCode, "-", "")), "vma-first"); r.code != 4 {
			t.Fatalf("first use of the code: %s", r)
		}
		// ... a second use is rejected.
		if r := try(pc.PairingCode, "vma-second"); r.code != 5 || r.result(t).Status != "pairing_code_rejected" {
			t.Fatalf("used code: %s", r)
		}
		// A code nobody made.
		if r := try("ZZZZ-ZZZZ-ZZZZ", "vma-third"); r.code != 5 || !strings.Contains(r.stderr, "new one") {
			t.Fatalf("unknown code: %s", r)
		}
		// An expired code.
		old := s.pairingCode()
		s.expireCode(old.PairingCode)
		if r := try(old.PairingCode, "vma-fourth"); r.code != 5 {
			t.Fatalf("expired code: %s", r)
		}
		// The admin sees why, with the source IP.
		var events []api.AuditEvent
		s.omactlJSON(&events, "audit", "--type", "enrollment_failed")
		if len(events) != 3 || events[0].SourceIP != "127.0.0.1" {
			t.Errorf("enrollment_failed events = %+v", events)
		}
	})
}

func TestWrongFingerprint(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startServer(t, b)
		pc := s.pairingCode()
		wrong := "sha256:" + strings.Repeat("0", 64)
		r := runBin(t, "vma-enroll", "--oma", s.public, "--code", pc.PairingCode, "--fingerprint", wrong, "--config-dir", t.TempDir(), "-o", "json")
		if r.code != 6 || r.result(t).Status != "identity_mismatch" || !strings.Contains(r.stderr, pc.OMAFingerprint) {
			t.Fatalf("wrong fingerprint: %s", r)
		}
		// Nothing reached the server: the code is still good.
		v := startVMA(t, t.TempDir(), s.enrollArgs(pc, "vma-right", "--timeout", "1s")...)
		if r := v.wait(30 * time.Second); r.code != 4 {
			t.Fatalf("the code was consumed by the refused attempt: %s", r)
		}
	})
}

func TestResume(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startServer(t, b)
		pc := s.pairingCode()
		dir := t.TempDir()
		v := startVMA(t, dir, s.enrollArgs(pc, "vma-resume", "--timeout", "60s")...)
		e := s.waitPending("vma-resume")
		// Interrupted while waiting (the worst way).
		v.cmd.Process.Kill()
		v.wait(10 * time.Second)

		if r := s.omactl("approve", "vma-resume"); r.code != 0 {
			t.Fatalf("approve: %s", r)
		}
		// The rerun needs no code: it resumes from enrollment.json.
		r := runBin(t, "vma-enroll", "--config-dir", dir, "-o", "json", "--timeout", "30s")
		if r.code != 0 {
			t.Fatalf("resumed vma-enroll: %s", r)
		}
		if res := r.result(t); res.Status != "approved" || res.EnrollmentID != e.ID {
			t.Fatalf("resumed result = %+v, want enrollment %s", res, e.ID)
		}
		var events []api.AuditEvent
		s.omactlJSON(&events, "audit", "--type", "enrollment")
		if len(events) != 1 {
			t.Fatalf("%d enrollment events, want 1 (no new enrollment)", len(events))
		}
		// Once enrolled, a rerun says so and exits 0.
		r = runBin(t, "vma-enroll", "--config-dir", dir)
		if r.code != 0 || !strings.Contains(r.stdout, "Already enrolled") {
			t.Fatalf("rerun after approval: %s", r)
		}
	})
}

func TestManyVMAs(t *testing.T) {
	const n = 20
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startServer(t, b, "--rate-limit", "1000", "--rate-burst", "1000")
		vmas := make([]*vma, n)
		for i := range vmas {
			pc := s.pairingCode()
			vmas[i] = startVMA(t, t.TempDir(), s.enrollArgs(pc, fmt.Sprintf("vma-many-%02d", i), "--timeout", "90s")...)
		}
		// The admin approves whatever is pending until all are approved.
		approved := map[string]bool{}
		eventually(t, 60*time.Second, "all VMAs approved", func() bool {
			var list []api.Enrollment
			s.omactlJSON(&list, "pending")
			for _, e := range list {
				if r := s.omactl("approve", e.ID); r.code != 0 {
					t.Fatalf("approve %s: %s", e.VMAName, r)
				}
				approved[e.VMAName] = true
			}
			return len(approved) == n
		})
		var wg sync.WaitGroup
		results := make([]res, n)
		for i, v := range vmas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case <-v.done:
				case <-time.After(60 * time.Second):
					v.cmd.Process.Kill()
					<-v.done
				}
				results[i] = res{v.stdout.String(), v.stderr.String(), v.cmd.ProcessState.ExitCode()}
			}()
		}
		wg.Wait()
		for i, r := range results {
			if r.code != 0 {
				t.Errorf("vma-many-%02d: %s", i, r)
			}
		}
		var active []api.Connection
		s.omactlJSON(&active, "active")
		ports := map[int]bool{}
		for _, c := range active {
			if c.TunnelPort != nil {
				ports[*c.TunnelPort] = true
			}
		}
		if len(active) != n || len(ports) != n {
			t.Errorf("%d active VMAs with %d distinct tunnel ports, want %d", len(active), len(ports), n)
		}
	})
}

// TestInterruptAndRestart: Ctrl-C while waiting keeps the enrollment for a
// rerun, and an OMA that restarts while a VMA waits is waited for.
func TestInterruptAndRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startServer(t, b)
		pc := s.pairingCode()
		dir := t.TempDir()
		v := startVMA(t, dir, s.enrollArgs(pc, "vma-patient", "--timeout", "60s", "--poll-interval", "1s")...)
		s.waitPending("vma-patient")
		v.cmd.Process.Signal(syscall.SIGINT)
		r := v.wait(10 * time.Second)
		if r.code != 130 || r.result(t).Status != "interrupted" || !strings.Contains(r.stderr, "resume") {
			t.Fatalf("SIGINT while waiting: %s", r)
		}

		v = startVMA(t, dir, "-o", "json", "--timeout", "60s", "--poll-interval", "1s")
		time.Sleep(500 * time.Millisecond) // let it start its long poll
		s.restart(time.Second)
		if r := s.omactl("approve", "vma-patient"); r.code != 0 {
			t.Fatalf("approve after restart: %s", r)
		}
		r = v.wait(30 * time.Second)
		if r.code != 0 || r.result(t).Status != "approved" {
			t.Fatalf("vma-enroll across a server restart: %s", r)
		}
		if !strings.Contains(r.stderr, "retrying") {
			t.Errorf("no retry reported while the OMA was down:\n%s", r.stderr)
		}
	})
}
