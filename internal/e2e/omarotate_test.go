package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// The rotation of the OMA's own SSH host key and TLS certificate (issue
// 16, docs/rotation.md) with the real binaries: oma-server rotate, an
// enrolled VMA whose native tunnel stays up, and the real OpenSSH client
// with the ssh_config vma-enroll wrote (UpdateHostKeys).

// rotateOMA runs oma-server rotate against s's data directory and database.
func (s *server) rotateOMA(args ...string) res {
	s.t.Helper()
	args = append([]string{"rotate"}, args...)
	args = append(args, "--data-dir", s.dataDir, "--db-driver", s.backend.name)
	if s.dsn != "" {
		args = append(args, "--db-dsn", s.dsn)
	}
	return runBin(s.t, "oma-server", args...)
}

// omaRotation is what oma-server rotate -o json prints.
type omaRotation struct {
	Key, Phase         string
	CurrentFingerprint string `json:"current_fingerprint"`
	NextFingerprint    string `json:"next_fingerprint"`
}

func (s *server) rotateOMAJSON(args ...string) omaRotation {
	s.t.Helper()
	r := s.rotateOMA(append(args, "-o", "json")...)
	var out omaRotation
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil {
		s.t.Fatalf("oma-server rotate %v: %s", args, r)
	}
	return out
}

// vmaState is the part of enrollment.json about the OMA's keys.
type vmaState struct {
	OMAFingerprint     string   `json:"oma_fingerprint"`
	OMANextFingerprint string   `json:"oma_next_fingerprint"`
	OMANextHostKeys    []string `json:"oma_next_host_keys"`
	Tunnel             struct {
		HostKey string `json:"host_key"`
	} `json:"tunnel"`
}

func readVMAState(t *testing.T, dir string) vmaState {
	t.Helper()
	var st vmaState
	data, err := os.ReadFile(filepath.Join(dir, "enrollment.json"))
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil {
		t.Fatalf("enrollment.json: %v", err)
	}
	return st
}

// hostKeyFP is the fingerprint of an authorized_keys line ("" if none).
func hostKeyFP(line string) string {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return ""
	}
	return ssh.FingerprintSHA256(k)
}

// knownHostsFPs are the fingerprints of the keys in a known_hosts file.
func knownHostsFPs(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line == "" || line[0] == '#' {
			continue
		}
		if _, _, k, _, _, err := ssh.ParseKnownHosts([]byte(line)); err == nil {
			out = append(out, ssh.FingerprintSHA256(k))
		}
	}
	return out
}

// TestOMARotation: with an enrolled VMA's native tunnel up and an OpenSSH
// session of the ssh_config vma-enroll wrote, the OMA stages its next SSH
// host key: both learn it at once (enrollment.json, both known_hosts
// files); after the switch and a restart of the OMA, the tunnel comes
// back by itself and a new ssh connects. Then the TLS certificate: status
// learns the next pin from self, the switch, and the tunnel's TLS data
// path and status work with the new certificate. No step on the VMA.
func TestOMARotation(t *testing.T) {
	testbin.Need(t, "apt-get install openssh-client", "ssh")
	t.Parallel()
	b := backends()[len(backends())-1] // MariaDB when there is one
	s, nbdListen, tport := startTunnelServer(t, b)
	dir := s.enrolled("vma-omarot-01")
	st0 := readVMAState(t, dir)
	hk0 := hostKeyFP(st0.Tunnel.HostKey)

	tun := startVMA(t, dir, "tunnel", "-o", "json")
	waitTunnel(t, s, tun, 1)
	checkForwards(t, nbdListen, tport, "before the rotations")

	// An OpenSSH session, with its own copy of known_hosts (the native
	// tunnel rewrites the one in dir) and no forwards (the tunnel holds them).
	kh := filepath.Join(t.TempDir(), "known_hosts")
	copyFile(t, filepath.Join(dir, "known_hosts"), kh)
	sshArgs := []string{"-F", filepath.Join(dir, "ssh_config"), "-o", "UserKnownHostsFile=" + kh,
		"-o", "ClearAllForwardings=yes", "-N", "oma"}
	logins := func() int { return strings.Count(s.log.String(), "tunnel connected") }
	before := logins()
	ssh1 := exec.Command("ssh", sshArgs...)
	sshOut := &testbin.Buffer{}
	ssh1.Stdout, ssh1.Stderr = sshOut, sshOut
	ssh1Done := testbin.StartGroup(t, ssh1)
	eventually(t, 20*time.Second, "the OpenSSH session to log in", func() bool { return logins() > before })

	// Stage the next host key: announced at once to both live sessions.
	rot := s.rotateOMAJSON("ssh-host-key")
	if rot.Phase != "started" || rot.CurrentFingerprint != hk0 || rot.NextFingerprint == "" || rot.NextFingerprint == hk0 {
		t.Fatalf("rotate ssh-host-key: %+v (host key %s)", rot, hk0)
	}
	hk1 := rot.NextFingerprint
	eventually(t, 10*time.Second, "the native tunnel to record the next host key", func() bool {
		st := readVMAState(t, dir)
		return len(st.OMANextHostKeys) == 1 && hostKeyFP(st.OMANextHostKeys[0]) == hk1 && hostKeyFP(st.Tunnel.HostKey) == hk0 &&
			slices.Contains(knownHostsFPs(t, filepath.Join(dir, "known_hosts")), hk1)
	})
	eventually(t, 10*time.Second, "OpenSSH (UpdateHostKeys) to record the next host key", func() bool {
		fps := knownHostsFPs(t, kh)
		return slices.Contains(fps, hk0) && slices.Contains(fps, hk1)
	})
	if r := s.rotateOMA("ssh-host-key"); r.code != 1 || !strings.Contains(r.stderr, "already staged") {
		t.Fatalf("a second rotate while one is staged: %s", r)
	}
	if r := s.rotateOMA("ssh-host-key", "--complete"); r.code != 1 || !strings.Contains(r.stderr, "overlap lasts until") {
		t.Fatalf("--complete inside the overlap: %s", r)
	}

	// The switch, then a restart of the OMA: every session reconnects and
	// meets the new key.
	if rot := s.rotateOMAJSON("ssh-host-key", "--complete", "--force"); rot.Phase != "completed" || rot.NextFingerprint != hk1 {
		t.Fatalf("rotate ssh-host-key --complete: %+v", rot)
	}
	if r := s.rotateOMA("ssh-host-key", "--complete"); r.code != 1 || !strings.Contains(r.stderr, "no rotation of the SSH host key is staged") {
		t.Fatalf("--complete with nothing staged: %s", r)
	}
	s.restart(0)
	<-ssh1Done
	waitTunnel(t, s, tun, 2)
	eventually(t, 10*time.Second, "the tunnel to pin the new host key", func() bool {
		st := readVMAState(t, dir)
		return hostKeyFP(st.Tunnel.HostKey) == hk1 && len(st.OMANextHostKeys) == 0 &&
			strings.Join(knownHostsFPs(t, filepath.Join(dir, "known_hosts")), " ") == hk1
	})
	if evs := tunnelEvents(t, wholeLines(tun.stdout.String())); countEvents(evs, "host_key_learned") != 1 || countEvents(evs, "host_key_switched") != 1 {
		t.Fatalf("tunnel events: want one host_key_learned and one host_key_switched:\n%s", tun.stdout.String())
	}
	checkForwards(t, nbdListen, tport, "after the host key rotation")
	before = logins()
	ssh2 := exec.Command("ssh", sshArgs...)
	ssh2Out := &testbin.Buffer{}
	ssh2.Stdout, ssh2.Stderr = ssh2Out, ssh2Out
	ssh2Done := testbin.StartGroup(t, ssh2)
	eventually(t, 20*time.Second, "OpenSSH to log in with the new host key", func() bool {
		select {
		case <-ssh2Done:
			t.Fatalf("ssh ended: %s", ssh2Out.String())
		default:
		}
		return logins() > before
	})
	testbin.KillGroup(ssh2)

	// The TLS certificate: status learns the next pin from self.
	pin0 := readVMAState(t, dir).OMAFingerprint
	rot = s.rotateOMAJSON("tls-cert", "--overlap", "1h")
	if rot.Phase != "started" || rot.CurrentFingerprint != pin0 || rot.NextFingerprint == "" || rot.NextFingerprint == pin0 {
		t.Fatalf("rotate tls-cert: %+v (pin %s)", rot, pin0)
	}
	pin1 := rot.NextFingerprint
	eventually(t, 10*time.Second, "self to announce the next pin and status to record it", func() bool {
		rep := rotVMAStatus(t, dir)
		st := readVMAState(t, dir)
		return rep.Self != nil && rep.Self.OMANextFingerprint == pin1 && st.OMAFingerprint == pin0 && st.OMANextFingerprint == pin1
	})
	s.rotateOMAJSON("tls-cert", "--complete", "--force")
	eventually(t, 10*time.Second, "the OMA to present the new certificate", func() bool {
		fp, err := client.FetchFingerprint(context.Background(), s.public)
		return err == nil && fp == pin1
	})

	// A new tunnel process: its NBD connection rides the TLS data path,
	// pinned to the learned certificate; status switches its pin.
	testbin.KillGroup(tun.cmd)
	<-tun.done
	tun2 := startVMA(t, dir, "tunnel", "-o", "json")
	waitTunnel(t, s, tun2, 1)
	checkForwards(t, nbdListen, tport, "after the certificate rotation")
	eventually(t, 10*time.Second, "a data_path event", func() bool {
		for _, ev := range tunnelEvents(t, wholeLines(tun2.stdout.String())) {
			if ev.Event == "data_path" {
				if ev.Reason != "" {
					t.Fatalf("the NBD connection did not take the TLS data path: %s", ev.Message)
				}
				return true
			}
		}
		return false
	})
	eventually(t, 10*time.Second, "status to pin the new certificate", func() bool {
		rep := rotVMAStatus(t, dir)
		st := readVMAState(t, dir)
		return rep.OMACheck.Via == "self" && rep.OMACheck.Result == "accepted" && st.OMAFingerprint == pin1 && st.OMANextFingerprint == ""
	})

	// The audit: every step, with both fingerprints; the chain holds.
	var audit []struct {
		ID        int64          `json:"id"`
		EventType string         `json:"event_type"`
		Actor     string         `json:"actor"`
		Details   map[string]any `json:"event_details"`
	}
	s.omactlJSON(&audit, "audit", "--type", "oma_key_rotation")
	sort.Slice(audit, func(i, j int) bool { return audit[i].ID < audit[j].ID })
	var steps []string
	for _, ev := range audit {
		steps = append(steps, ev.Details["key"].(string)+":"+ev.Details["phase"].(string))
		if !strings.HasPrefix(ev.Actor, "local:") || ev.Details["next_fingerprint"] == "" || ev.Details["current_fingerprint"] == "" {
			t.Fatalf("audit event %+v", ev)
		}
	}
	if got := strings.Join(steps, " "); got != "ssh_host_key:started ssh_host_key:completed tls_cert:started tls_cert:completed" {
		t.Fatalf("oma_key_rotation events: %s\n%+v", got, audit)
	}
	if r := s.omactl("audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify: %s", r)
	}
}

// wholeLines drops a last, unfinished line.
func wholeLines(s string) string { return s[:strings.LastIndex(s, "\n")+1] }
