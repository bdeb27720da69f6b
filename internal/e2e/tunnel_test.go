package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// TestTunnelEmbedded checks the files vma-enroll writes against the real
// OpenSSH client and oma-server's embedded endpoint: the tunnel comes up
// with the pinned host key, the reverse forward reaches the VMA, and a
// revocation drops it.
func TestTunnelEmbedded(t *testing.T) {
	testbin.Need(t, "apt-get install openssh-client", "ssh")
	t.Parallel()
	// One backend after the other: each tunnel binds VMA-local ports.
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { testTunnel(t, b) })
	}
}

func testTunnel(t *testing.T, b backend) {
	vmaAPI := testbin.FreeAddr(t)    // the "VMA API" the OMA reaches through the tunnel
	nbdListen := testbin.FreeAddr(t) // VMA-local end of the NBD forward
	tport := strconv.Itoa(testbin.FreePort(t))
	s := startServer(t, b, "--tunnel-mode", "embedded",
		"--vma-api-target", vmaAPI, "--vma-nbd-listen", nbdListen, "--tunnel-port-range", tport+"-"+tport)
	pc := s.pairingCode()
	dir := t.TempDir()
	v := startVMA(t, dir, s.enrollArgs(pc, "vma-tunnel-01", "--timeout", "60s")...)
	s.waitPending("vma-tunnel-01")
	if r := s.omactl("approve", "vma-tunnel-01"); r.code != 0 {
		t.Fatalf("approve: %s", r)
	}
	if r := v.wait(30 * time.Second); r.code != 0 {
		t.Fatalf("vma-enroll: %s", r)
	}

	// The forwards are those of the tunnel object; the echo server stands
	// in for the VMA API behind the reverse forward.
	var st struct {
		Tunnel api.Tunnel `json:"tunnel"`
	}
	data, _ := os.ReadFile(filepath.Join(dir, "enrollment.json"))
	if err := json.Unmarshal(data, &st); err != nil || len(st.Tunnel.RemoteForwards) != 1 || len(st.Tunnel.LocalForwards) != 1 {
		t.Fatalf("enrollment.json tunnel: %v\n%s", err, data)
	}
	if got := st.Tunnel.RemoteForwards[0].Target; got != vmaAPI {
		t.Errorf("the tunnel's reverse target is %s, not --vma-api-target %s", got, vmaAPI)
	}
	if got := st.Tunnel.LocalForwards[0].Listen; got != nbdListen {
		t.Errorf("the tunnel's NBD listen address is %s, not --vma-nbd-listen %s", got, nbdListen)
	}
	testbin.Serve(t, st.Tunnel.RemoteForwards[0].Target, func(c net.Conn) { io.Copy(c, c) }) // echo
	kh, _ := os.ReadFile(filepath.Join(dir, "known_hosts"))
	if !strings.Contains(string(kh), "[127.0.0.1]:"+strings.Split(s.public, ":")[1]+" ssh-ed25519 ") {
		t.Fatalf("known_hosts does not pin the OMA's host key:\n%s", kh)
	}

	tun := startVMA(t, dir, "tunnel")
	var conn api.Connection
	eventually(t, 20*time.Second, "the tunnel to be connected", func() bool {
		select {
		case <-tun.done:
			t.Fatalf("vma-enroll tunnel ended: %s", tun.stderr.String())
		default:
		}
		var active []api.Connection
		s.omactlJSON(&active, "active")
		if len(active) == 1 && active[0].ConnectionStatus == "connected" {
			conn = active[0]
			return true
		}
		return false
	})
	if conn.TunnelPort == nil || strconv.Itoa(*conn.TunnelPort) != tport {
		t.Fatalf("tunnel port = %v, want %s", conn.TunnelPort, tport)
	}

	// OMA 127.0.0.1:<tunnel_port> -> VMA API, through the tunnel.
	var c net.Conn
	eventually(t, 10*time.Second, "the reverse forward", func() bool {
		var err error
		c, err = net.DialTimeout("tcp", "127.0.0.1:"+tport, time.Second)
		return err == nil
	})
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "hello through the tunnel\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil || line != "hello through the tunnel\n" {
		t.Fatalf("reverse forward echo = %q, %v", line, err)
	}

	// Revocation drops the live tunnel.
	if r := s.omactl("revoke", "vma-tunnel-01", "--reason", "test", "--yes"); r.code != 0 {
		t.Fatalf("revoke: %s", r)
	}
	select {
	case <-tun.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the tunnel is still up 10s after the revocation")
	}
}
