package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// prefixEcho listens on a free loopback port and answers each connection
// with prefix and everything it read, once the peer half-closed. It
// returns the address.
func prefixEcho(t *testing.T, prefix string) string {
	t.Helper()
	return testbin.Serve(t, "127.0.0.1:0", func(c net.Conn) {
		b, _ := io.ReadAll(c)
		c.Write(append([]byte(prefix), b...))
	})
}

// through sends msg to addr, half-closes and returns the whole answer.
func through(addr, msg string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	return string(b), err
}

// tunnelEvent is one line of `vma-enroll tunnel -o json` on stdout.
type tunnelEvent struct {
	Time    time.Time `json:"time"`
	Event   string    `json:"event"`
	Message string    `json:"message"`
	OMA     string    `json:"oma"`
	Reason  string    `json:"reason"`
	Listen  string    `json:"listen"`
	Target  string    `json:"target"`
}

// tunnelEvents parses the JSON lines of stdout: every line is an event.
func tunnelEvents(t *testing.T, stdout string) []tunnelEvent {
	t.Helper()
	var evs []tunnelEvent
	for _, line := range strings.Split(stdout, "\n") {
		if line == "" {
			continue
		}
		var ev tunnelEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("stdout line %q is not a JSON event: %v", line, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func countEvents(evs []tunnelEvent, typ string) int {
	n := 0
	for _, ev := range evs {
		if ev.Event == typ {
			n++
		}
	}
	return n
}

// waitTunnel waits until the tunnel process logged its n-th connection with
// both forwards up and the OMA lists the VMA as connected.
func waitTunnel(t *testing.T, s *server, tun *vma, n int) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("connection %d with both forwards up", n), func() bool {
		select {
		case <-tun.done:
			t.Fatalf("vma-enroll tunnel ended: exit %d\n%s", tun.cmd.ProcessState.ExitCode(), tun.stderr.String())
		default:
		}
		evs := tunnelEvents(t, tun.stdout.String())
		return countEvents(evs, "connected") >= n && countEvents(evs, "forward_up") >= 2*n
	})
	eventually(t, 10*time.Second, "omactl active to show the tunnel connected", func() bool {
		var active []api.Connection
		s.omactlJSON(&active, "active")
		return len(active) == 1 && active[0].ConnectionStatus == "connected"
	})
}

// checkForwards sends bytes both ways through the tunnel.
func checkForwards(t *testing.T, nbdListen, tport, what string) {
	t.Helper()
	// VMA-local NBD listen -> OMA NBD target.
	var got string
	eventually(t, 10*time.Second, "the NBD forward "+what, func() bool {
		var err error
		got, err = through(nbdListen, "nbd request "+what)
		return err == nil && got != ""
	})
	if got != "nbd:nbd request "+what {
		t.Fatalf("through the NBD forward %s: %q", what, got)
	}
	// OMA 127.0.0.1:<tunnel_port> -> VMA API.
	eventually(t, 10*time.Second, "the reverse forward "+what, func() bool {
		var err error
		got, err = through("127.0.0.1:"+tport, "api request "+what)
		return err == nil && got != ""
	})
	if got != "vma-api:api request "+what {
		t.Fatalf("through the reverse forward %s: %q", what, got)
	}
}

// TestTunnelNativeClient runs `vma-enroll tunnel` (the built-in client)
// against the real oma-server: traffic both ways, a reconnect after the
// server is killed and restarted, a clean stop on SIGTERM, the --openssh
// path, and exit 7 once the VMA is revoked.
func TestTunnelNativeClient(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { testNativeTunnel(t, b) })
	}
}

func testNativeTunnel(t *testing.T, b backend) {
	s, nbdListen, tport := startTunnelServer(t, b)
	pc := s.pairingCode()
	dir := t.TempDir()
	v := startVMA(t, dir, s.enrollArgs(pc, "vma-native-01", "--timeout", "60s")...)
	s.waitPending("vma-native-01")
	if r := s.omactl("approve", "vma-native-01"); r.code != 0 {
		t.Fatalf("approve: %s", r)
	}
	if r := v.wait(30 * time.Second); r.code != 0 {
		t.Fatalf("vma-enroll: %s", r)
	}

	tun := startVMA(t, dir, "tunnel", "-o", "json")
	waitTunnel(t, s, tun, 1)
	checkForwards(t, nbdListen, tport, "at first")
	for _, ev := range tunnelEvents(t, tun.stdout.String()) {
		if ev.OMA != s.public || ev.Time.IsZero() || ev.Message == "" {
			t.Fatalf("event %+v lacks its OMA, time or message", ev)
		}
	}
	// The NBD connection took the TLS data path (issue 12).
	eventually(t, 10*time.Second, "a data_path event for the TLS data path", func() bool {
		out := tun.stdout.String()
		out = out[:strings.LastIndex(out, "\n")+1] // whole lines only
		for _, ev := range tunnelEvents(t, out) {
			if ev.Event == "data_path" {
				if ev.Reason != "" {
					t.Fatalf("the NBD connection did not take the TLS data path: %s", ev.Message)
				}
				return true
			}
		}
		return false
	})

	// Kill oma-server and start it again on the same ports and data:
	// the tunnel comes back by itself.
	s.kill()
	if err := s.start(); err != nil {
		t.Fatalf("oma-server did not restart: %v\n%s", err, s.log.String())
	}
	waitTunnel(t, s, tun, 2)
	checkForwards(t, nbdListen, tport, "after the restart")
	evs := tunnelEvents(t, tun.stdout.String())
	if countEvents(evs, "disconnected") < 1 || countEvents(evs, "retrying") < 1 {
		t.Fatalf("no disconnected/retrying events around the restart:\n%s", tun.stdout.String())
	}

	// SIGTERM stops it cleanly.
	tun.cmd.Process.Signal(syscall.SIGTERM)
	if r := tun.wait(15 * time.Second); r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, `"event":"stopped"`) {
		t.Fatalf("tunnel after SIGTERM: %s", r)
	}
	eventually(t, 10*time.Second, "omactl active to show the tunnel disconnected", func() bool {
		var active []api.Connection
		s.omactlJSON(&active, "active")
		return len(active) == 1 && active[0].ConnectionStatus == "disconnected"
	})

	// --openssh runs the system's ssh with the written ssh_config.
	if _, err := exec.LookPath("ssh"); err == nil {
		ossh := startVMA(t, dir, "tunnel", "--openssh")
		eventually(t, 30*time.Second, "the OpenSSH tunnel", func() bool {
			select {
			case <-ossh.done:
				t.Fatalf("vma-enroll tunnel --openssh ended: %s", ossh.stderr.String())
			default:
			}
			got, err := through("127.0.0.1:"+tport, "via openssh")
			return err == nil && got == "vma-api:via openssh"
		})
		ossh.cmd.Process.Signal(syscall.SIGTERM)
		if r := ossh.wait(15 * time.Second); r.code != 0 {
			t.Fatalf("tunnel --openssh after SIGTERM: %s", r)
		}
	} else {
		t.Logf("no OpenSSH client: skipping the --openssh part")
	}

	// Revocation: the key is refused twice, then it exits 7 and says how
	// to re-enroll, in text mode this time.
	tun = startVMA(t, dir, "tunnel")
	eventually(t, 30*time.Second, "the tunnel again", func() bool {
		select {
		case <-tun.done:
			t.Fatalf("vma-enroll tunnel ended: %s", tun.stderr.String())
		default:
		}
		return strings.Count(tun.stderr.String(), "forward up:") == 2
	})
	if r := s.omactl("revoke", "vma-native-01", "--reason", "test", "--yes"); r.code != 0 {
		t.Fatalf("revoke: %s", r)
	}
	start := time.Now()
	r := tun.wait(30 * time.Second)
	if r.code != 7 {
		t.Fatalf("tunnel after revocation: want exit 7, got %s", r)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("exit 7 came %s after the revocation", d)
	}
	for _, want := range []string{"disconnected after", "checking once more", "Error: the OMA refused this VMA's key: it was revoked or replaced",
		"vma-enroll --force", "--code"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "enrollment.json")); err != nil {
		t.Fatalf("the enrollment state is gone: %v", err)
	}
}

// startTunnelServer starts oma-server in the embedded tunnel mode with
// echo targets that prefix their answers ("nbd:" for NBD, "vma-api:" for
// the VMA API), a free address for the VMA's end of the NBD forward and
// one tunnel port, plus the flags in extra; it returns the server, that
// address and the port (for checkForwards).
func startTunnelServer(t *testing.T, b backend, extra ...string) (s *server, nbdListen, tport string) {
	t.Helper()
	nbdListen = testbin.FreeAddr(t)
	tport = strconv.Itoa(testbin.FreePort(t))
	args := append([]string{"--tunnel-mode", "embedded", "--nbd-target", prefixEcho(t, "nbd:"),
		"--vma-api-target", prefixEcho(t, "vma-api:"), "--vma-nbd-listen", nbdListen, "--tunnel-port-range", tport + "-" + tport}, extra...)
	return startServer(t, b, args...), nbdListen, tport
}
