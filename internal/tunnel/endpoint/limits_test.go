package endpoint_test

// The embedded endpoint's limits, probed as the attacker of issue 13 did:
// a refused login with a huge user name, repeated; stalled pre-auth
// connections from one address; an approved VMA that floods refused
// requests and channels. The endpoint runs in process on the public port's
// demultiplexer over a real SQLite store; the attacker is the Go SSH
// client (it lets a test choose a 100 KB user name, six keys per login or
// a 200 KB forward host, which the OpenSSH client would not send).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/omatest"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/endpoint"
)

// auditKey is the audit HMAC key of the tests' enrollment services.
var auditKey = bytes.Repeat([]byte{9}, 32)

type limitsFixture struct {
	ep      *endpoint.Endpoint
	svc     *enroll.Service
	addr    string
	log     *testbin.Buffer
	hostKey ssh.PublicKey
}

// startLimitsEndpoint runs an endpoint (configured by cfg, host key and
// NBD target filled in) on a loopback demultiplexer, logging at Info into
// a buffer as oma-server logs by default.
func startLimitsEndpoint(t *testing.T, cfg endpoint.Config) *limitsFixture {
	t.Helper()
	db, _ := omatest.OpenStore(t, "sqlite")
	pool := testbin.FreePorts(t, 2)
	svc := enroll.New(db, enroll.Config{PortMin: pool[0], PortMax: pool[1]}, auditKey, nil)
	kp, err := sshkey.LoadOrGenerateFile(filepath.Join(t.TempDir(), "host"), "oma")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(kp.Private)
	cfg.HostKey = signer
	buf := &testbin.Buffer{}
	ep := endpoint.New(cfg, svc, slog.New(slog.NewTextHandler(buf, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := ep.Listener(ctx, 2*time.Second)(ln)
	epDone := make(chan struct{})
	go func() { ep.Run(ctx); close(epDone) }()
	t.Cleanup(func() { d.Close(); cancel(); <-epDone })
	return &limitsFixture{ep: ep, svc: svc, addr: ln.Addr().String(), log: buf, hostKey: signer.PublicKey()}
}

// dialFrom connects to addr from the loopback address src (any 127/8
// address is a distinct client address to the limits).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	return c
}

func newSigners(t *testing.T, n int) []ssh.Signer {
	t.Helper()
	var out []ssh.Signer
	for i := 0; i < n; i++ {
		kp, err := sshkey.LoadOrGenerate(t.TempDir(), "k")
		if err != nil {
			t.Fatal(err)
		}
		s, _ := ssh.NewSignerFromKey(kp.Private)
		out = append(out, s)
	}
	return out
}

// sshLogin runs an SSH login over c and returns the client or the error.
func sshLogin(c net.Conn, user string, hostKey ssh.PublicKey, signers ...ssh.Signer) (ssh.Conn, <-chan ssh.NewChannel, error) {
	c.SetDeadline(time.Now().Add(15 * time.Second))
	conn, chans, reqs, err := ssh.NewClientConn(c, "oma", &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyCallback: ssh.FixedHostKey(hostKey), Timeout: 15 * time.Second,
	})
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	c.SetDeadline(time.Time{})
	go ssh.DiscardRequests(reqs)
	return conn, chans, nil
}

// Finding 1: a refused login used to log the whole client-chosen user name
// once per attempt (20 connections with a 100 KB name grew the log by 24 MB).
// Now: one bounded line per connection, a counter, and a failed-login
// budget per address after which its connections are closed unheard.
func TestSSHRefusedLoginLogsOneBoundedLine(t *testing.T) {
	f := startLimitsEndpoint(t, endpoint.Config{})
	huge := strings.Repeat("A", 100<<10)
	keys := newSigners(t, 6)
	refused, unheard := 0, 0
	for i := 0; i < 20; i++ {
		_, _, err := sshLogin(dialFrom(t, "127.0.0.11", f.addr), huge, f.hostKey, keys...)
		switch {
		case err == nil:
			t.Fatal("a login with an unknown user and keys succeeded")
		case strings.Contains(err.Error(), "unable to authenticate"):
			refused++
		default:
			unheard++ // closed before or during the login: the budget is gone
		}
	}
	logText := f.log.String()
	if len(logText) > 20*1024 {
		t.Fatalf("20 refused logins with a 100 KB user name wrote %d bytes of log, want at most 20 KB", len(logText))
	}
	lines := 0
	for _, l := range strings.Split(logText, "\n") {
		if strings.Contains(l, "tunnel login refused") {
			lines++
			if len(l) > 600 || !strings.Contains(l, "...") || strings.Contains(l, strings.Repeat("A", 100)) {
				t.Errorf("refused-login line not bounded (%d bytes): %.300s", len(l), l)
			}
		}
	}
	if lines > 20 {
		t.Errorf("%d refused-login lines for 20 connections, want at most one each", lines)
	}
	st := f.ep.Stats()
	if st.AuthFailures < 10 {
		t.Errorf("login failures counted: %d, want at least the budget of 10", st.AuthFailures)
	}
	// The budget (burst 10) is spent within the first two connections of
	// six keys each; the others are closed before the handshake.
	if unheard == 0 || st.AuthLocked == 0 {
		t.Errorf("all %d connections got to log in (locked %d); want the address cut off after 10 failed logins", refused, st.AuthLocked)
	}
	// Another address is not affected.
	_, _, err := sshLogin(dialFrom(t, "127.0.0.12", f.addr), "vma_tunnel", f.hostKey, keys[0])
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("a login from another address was not heard: %v", err)
	}
}

// Finding 1: new SSH connections per address are rate limited (burst 30,
// 5/s); the limit is per address.
func TestSSHConnectionRatePerAddress(t *testing.T) {
	f := startLimitsEndpoint(t, endpoint.Config{})
	served := 0
	start := time.Now()
	for i := 0; i < 80; i++ {
		c := dialFrom(t, "127.0.0.13", f.addr)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("SSH-2.0-probe\r\n"))
		line, _ := bufio.NewReader(c).ReadString('\n')
		if strings.HasPrefix(line, "SSH-2.0-") {
			served++
		}
		c.Close()
	}
	allowed := 30 + int(5*time.Since(start).Seconds()) + 1
	if served > allowed || f.ep.Stats().ConnRateLimited == 0 {
		t.Fatalf("%d of 80 connections from one address were served within %s (refused %d); want at most %d",
			served, time.Since(start).Round(time.Millisecond), f.ep.Stats().ConnRateLimited, allowed)
	}
	c := dialFrom(t, "127.0.0.14", f.addr)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("SSH-2.0-probe\r\n"))
	if line, _ := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(line, "SSH-2.0-") {
		t.Fatalf("another address was refused too: %q", line)
	}
}

// Finding 9: 400 stalled pre-authentication SSH connections from one
// address were all held ~20 s. Now at most 32 per address are held, and
// for at most the 10 s pre-auth deadline.
func TestPreAuthConnectionsCappedPerAddress(t *testing.T) {
	f := startLimitsEndpoint(t, endpoint.Config{Limits: endpoint.Limits{ConnPerSecond: 1000, ConnBurst: 1000}})
	const n = 100
	var mu sync.Mutex
	held := 0
	var wg sync.WaitGroup
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c := dialFrom(t, "127.0.0.15", f.addr)
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("SSH-2.0-stalled\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			if strings.HasPrefix(line, "SSH-2.0-") {
				mu.Lock()
				held++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if held > 32 {
		t.Fatalf("%d of %d stalled pre-auth connections from one address were taken on, want at most 32", held, n)
	}
	if f.ep.Stats().PreAuthCapped == 0 {
		t.Error("no connection counted as capped")
	}
	// Another address still gets in.
	other := dialFrom(t, "127.0.0.16", f.addr)
	other.SetDeadline(time.Now().Add(5 * time.Second))
	other.Write([]byte("SSH-2.0-probe\r\n"))
	if line, _ := bufio.NewReader(other).ReadString('\n'); !strings.HasPrefix(line, "SSH-2.0-") {
		t.Fatalf("another address was refused: %q", line)
	}
	other.Close()
	// The held ones are cut at the pre-auth deadline (10 s, was 20 s).
	start := time.Now()
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
		c.Close()
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("stalled pre-auth connections held for %s, want the 10 s deadline", d.Round(time.Second))
	}
	// Their slots are free again.
	testbin.Eventually(t, 10*time.Second, "a new connection from the capped address", func() bool {
		c := dialFrom(t, "127.0.0.15", f.addr)
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("SSH-2.0-probe\r\n"))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return strings.HasPrefix(line, "SSH-2.0-")
	})
}

// Finding 2: an approved VMA flooded the audit table: every refused channel
// or forward wrote a row with the requested host untruncated and echoed it
// back. Now: strings are bounded, the first 3 refusals of a connection are
// audited one by one and the rest in one summary, the 10th closes the
// connection, and a connection holds at most 64 forward channels.
func TestApprovedVMARefusalsAreBoundedAndCapped(t *testing.T) {
	hold := testbin.Serve(t, "127.0.0.1:0", func(c net.Conn) {
		c.SetDeadline(time.Now().Add(60 * time.Second))
		buf := make([]byte, 64)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	})
	f := startLimitsEndpoint(t, endpoint.Config{NBDTarget: hold})
	e, kp := approveVMA(t, f.svc, "vma-flood")
	signer, _ := ssh.NewSignerFromKey(kp.Private)
	conn, _, err := sshLogin(dialFrom(t, "127.0.0.17", f.addr), "vma_tunnel", f.hostKey, signer)
	if err != nil {
		t.Fatalf("the approved VMA cannot log in: %v", err)
	}
	type directTCPIP struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	bigHost := strings.Repeat("h", 200<<10)
	_, _, err = conn.OpenChannel("direct-tcpip", ssh.Marshal(directTCPIP{Host: bigHost, Port: 22, OriginHost: "127.0.0.1", OriginPort: 1}))
	var oce *ssh.OpenChannelError
	if !errors.As(err, &oce) || oce.Reason != ssh.Prohibited {
		t.Fatalf("direct-tcpip to a 200 KB host: %v, want prohibited", err)
	}
	if len(oce.Message) > 300 {
		t.Errorf("the refusal echoed %d bytes back, want at most 300", len(oce.Message))
	}
	opened := 1
	for i := 0; i < 40; i++ {
		_, _, err := conn.OpenChannel("session", nil)
		if !errors.As(err, &oce) {
			break // the connection is gone
		}
		opened++
	}
	if opened > 10 {
		t.Errorf("%d refused requests on one connection, want it closed at the 10th", opened)
	}
	conn.Close()
	var rows []enroll.AuditEvent
	testbin.Eventually(t, 10*time.Second, "the refusal summary in the audit", func() bool {
		rows, err = f.svc.Audit(context.Background(), enroll.AuditFilter{EventType: enroll.EventForwardRefused, EnrollmentID: e.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.Details()["summary"] == true {
				return true
			}
		}
		return len(rows) > 4
	})
	if len(rows) != 4 {
		t.Errorf("%d forward_refused rows for one connection, want 3 and one summary", len(rows))
	}
	for _, r := range rows {
		if len(r.EventDetails) > 512 {
			t.Errorf("audit row %d stores %d bytes of details, want at most 512", r.ID, len(r.EventDetails))
		}
	}
	if n, _ := rows[len(rows)-1].Details()["count"].(float64); n < 7 {
		t.Errorf("summary = %s, want a count of at least 7", rows[len(rows)-1].EventDetails)
	}
	if len(f.log.String()) > 8*1024 {
		t.Errorf("the flood wrote %d bytes of log, want at most 8 KB", len(f.log.String()))
	}

	// The channel cap: 64 open forwards, the 65th refused; one closed
	// makes room again.
	conn, _, err = sshLogin(dialFrom(t, "127.0.0.17", f.addr), "vma_tunnel", f.hostKey, signer)
	if err != nil {
		t.Fatalf("the VMA cannot log in again: %v", err)
	}
	defer conn.Close()
	host, port := splitHostPort(t, hold)
	var chans []ssh.Channel
	for i := 0; i < 64; i++ {
		ch, reqs, err := conn.OpenChannel("direct-tcpip", ssh.Marshal(directTCPIP{Host: host, Port: port, OriginHost: "127.0.0.1", OriginPort: 1}))
		if err != nil {
			t.Fatalf("forward channel %d refused: %v", i+1, err)
		}
		go ssh.DiscardRequests(reqs)
		chans = append(chans, ch)
	}
	_, _, err = conn.OpenChannel("direct-tcpip", ssh.Marshal(directTCPIP{Host: host, Port: port, OriginHost: "127.0.0.1", OriginPort: 1}))
	if !errors.As(err, &oce) || oce.Reason != ssh.ResourceShortage {
		t.Fatalf("the 65th open forward channel: %v, want refused for resource shortage", err)
	}
	chans[0].Close()
	testbin.Eventually(t, 10*time.Second, "a forward channel after one closed", func() bool {
		ch, reqs, err := conn.OpenChannel("direct-tcpip", ssh.Marshal(directTCPIP{Host: host, Port: port, OriginHost: "127.0.0.1", OriginPort: 1}))
		if err != nil {
			return false
		}
		go ssh.DiscardRequests(reqs)
		ch.Close()
		return true
	})
}

func splitHostPort(t *testing.T, addr string) (string, uint32) {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a.IP.String(), uint32(a.Port)
}

// approveVMA enrolls a fresh key in svc and approves it, as an admin would.
func approveVMA(t *testing.T, svc *enroll.Service, name string) (*enroll.Enrollment, *sshkey.KeyPair) {
	t.Helper()
	kp, err := sshkey.LoadOrGenerate(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	return omatest.EnrollApproved(t, svc, omatest.VMA{Name: name, Key: kp.Private}), kp
}
