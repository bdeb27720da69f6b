package hardening_test

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestSSHFloodsOnThePublicPort replays two probes of issue 13 against a
// real oma-server in embedded mode. Finding 1: 20 SSH logins with a 100 KB
// user name and six keys each grew the log by 24 MB; now the log grows by a
// bounded line per connection and the address is cut off after its
// failed-login budget. Finding 9: 400 stalled pre-authentication SSH
// connections from one address were all held ~20 s; now 32 are.
func TestSSHFloodsOnThePublicPort(t *testing.T) {
	t.Parallel()
	p := startOMA(t, procOpts{name: "oma-server (embedded)", tunnelMode: "embedded"})
	addr := p.publicAddr()
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %s from %s: %v", addr, src, err)
		}
		return c
	}

	// Finding 1.
	var signers []ssh.Signer
	for i := 0; i < 6; i++ {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		s, _ := ssh.NewSignerFromKey(priv)
		signers = append(signers, s)
	}
	before := len(p.log.String())
	for i := 0; i < 20; i++ {
		c := dial("127.0.0.21")
		c.SetDeadline(time.Now().Add(15 * time.Second))
		if cc, _, _, err := ssh.NewClientConn(c, addr, &ssh.ClientConfig{User: strings.Repeat("A", 100<<10),
			Auth: []ssh.AuthMethod{ssh.PublicKeys(signers...)}, HostKeyCallback: ssh.InsecureIgnoreHostKey()}); err == nil {
			cc.Close()
			t.Fatal("a login with an unknown user and keys succeeded")
		}
		c.Close()
	}
	grew := len(p.log.String()) - before
	t.Logf("20 refused logins with a 100 KB user name grew the log by %d bytes", grew)
	if grew > 20*1024 {
		t.Errorf("20 refused logins with a 100 KB user name grew the log by %d bytes, want at most 20 KB", grew)
	}

	// Finding 9.
	const stalled = 400
	var mu sync.Mutex
	held := 0
	var wg sync.WaitGroup
	conns := make([]net.Conn, 0, stalled)
	for i := 0; i < stalled; i++ {
		c := dial("127.0.0.22")
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("SSH-2.0-stalled\r\n"))
			if line, _ := bufio.NewReader(c).ReadString('\n'); strings.HasPrefix(line, "SSH-2.0-") {
				mu.Lock()
				held++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	t.Logf("%d of %d stalled pre-auth connections from one address were taken on", held, stalled)
	if held > 32 {
		t.Errorf("%d of %d stalled pre-auth SSH connections from one address were taken on, want at most 32", held, stalled)
	}
	// Meanwhile another address enrolls.
	v := newVMAKey(t, "after-ssh-flood")
	if r, en := p.enroll(v, p.mustCode(t), nil); en == nil {
		t.Fatalf("enroll after the floods: %s", r)
	}
}
