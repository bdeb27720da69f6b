package hardening_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/app"
)

// headerTimeout is oma-server's ReadHeaderTimeout (and so its TLS
// handshake timeout).
const headerTimeout = 5 * time.Second

// slowloris opens a connection with dial, then sends msg one byte every
// 200ms, forever; it returns how long the server let it live.
func slowloris(dial func() (net.Conn, error), msg string) (time.Duration, error) {
	start := time.Now()
	c, err := dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c) // returns when the server closes
		close(closed)
	}()
	for i := 0; ; i++ {
		select {
		case <-closed:
			return time.Since(start), nil
		case <-time.After(200 * time.Millisecond):
		}
		if time.Since(start) > 60*time.Second {
			return time.Since(start), errors.New("still open after 60s")
		}
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte{msg[i%len(msg)]}); err != nil {
			<-closed
			return time.Since(start), nil
		}
	}
}

// TestSlowClientsAreCut: connections that dribble their request headers,
// or their TLS handshake, byte by byte are cut by the header timeout, on
// the in-process listeners and on oma-server's embedded-mode public port
// (where the first bytes are sniffed to tell TLS from SSH).
func TestSlowClientsAreCut(t *testing.T) {
	t.Parallel()
	e := startEnv(t, envOpts{})
	p := startOMA(t, procOpts{name: "oma-server (embedded)", tunnelMode: "embedded"})
	headers := "POST /api/v1/vma/enroll HTTP/1.1\r\nHost: oma\r\nX-Slow: " + string(make([]byte, 0)) + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	tlsDial := func(addr string) func() (net.Conn, error) {
		return func() (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		}
	}
	tcpDial := func(addr string) func() (net.Conn, error) {
		return func() (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }
	}
	// A TLS ClientHello record header, then its body byte by byte.
	hello := "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + string(make([]byte, 200))
	cases := []struct {
		name string
		dial func() (net.Conn, error)
		msg  string
	}{
		{"public headers", tlsDial(e.app.PublicAddr()), headers},
		{"public TLS handshake", tcpDial(e.app.PublicAddr()), hello},
		{"admin headers", tcpDial(e.app.AdminAddr()), headers},
		{"embedded public headers", tlsDial(p.publicAddr()), headers},
		{"embedded public TLS handshake", tcpDial(p.publicAddr()), hello},
		{"embedded admin headers", tcpDial(p.adminAddr()), headers},
	}
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lived, err := slowloris(c.dial, c.msg)
			switch {
			case err != nil:
				t.Errorf("%s: %v", c.name, err)
			case lived < headerTimeout-time.Second:
				t.Errorf("%s: cut after %s, sooner than the header timeout (%s)?", c.name, lived.Round(time.Millisecond), headerTimeout)
			case lived > 3*headerTimeout:
				t.Errorf("%s: lived %s, want it cut by the %s header timeout", c.name, lived.Round(time.Millisecond), headerTimeout)
			default:
				t.Logf("%s: cut after %s", c.name, lived.Round(time.Millisecond))
			}
		}()
	}
	wg.Wait()
	// Meanwhile and after, the servers work.
	e.enrollVerified(t, newVMAKey(t, "after-slowloris"))
	p.enrollVerified(t, newVMAKey(t, "after-slowloris"))
}

// TestIdleConnectionsDoNotStopEnrollment: 1,000 TCP connections that send
// nothing do not keep a new VMA from enrolling, on the in-process public
// listener and on oma-server's embedded-mode public port.
func TestIdleConnectionsDoNotStopEnrollment(t *testing.T) {
	t.Parallel()
	const idle = 1000
	e := startEnv(t, envOpts{})
	p := startOMA(t, procOpts{name: "oma-server (embedded)", tunnelMode: "embedded"})
	for name, target := range map[string]*apiClient{"in-process": e.apiClient, "embedded": p.apiClient} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			idleConnections(t, target, idle)
		})
	}
}

// idleConnections opens idle connections to target's public port from
// another loopback address (127.0.0.2: the embedded public port holds at
// most 32 unauthenticated connections per address, so the idle ones only
// shut out their own address), then enrolls a VMA through it.
func idleConnections(t *testing.T, target *apiClient, idle int) {
	addr := target.public[len("https://"):]
	conns := make([]net.Conn, 0, idle)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	for i := 0; i < idle; i++ {
		c, err := dialer.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("idle connection %d to %s: %v", i, addr, err)
		}
		conns = append(conns, c)
	}
	start := time.Now()
	v := newVMAKey(t, "busy-vma")
	r, en := target.enroll(v, target.mustCode(t), nil)
	if en == nil {
		t.Fatalf("enroll with %d idle connections open on %s: %s", idle, addr, r)
	}
	if r := target.verify(v, en); r.status != 200 {
		t.Fatalf("verify with %d idle connections open: %s", idle, r)
	}
	took := time.Since(start)
	t.Logf("%s: enrolled and verified in %s with %d idle connections open", addr, took.Round(time.Millisecond), idle)
	if took > 10*time.Second {
		t.Errorf("enrollment took %s with idle connections open", took)
	}
	// The server does not keep them: it closes them after the handshake
	// (or sniffing) timeout.
	closed := 0
	deadline := time.Now().Add(20 * time.Second)
	for _, c := range conns[:50] {
		c.SetReadDeadline(deadline)
		if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			closed++
		}
	}
	if closed != 50 {
		t.Errorf("%s: %d of 50 sampled idle connections were closed by the server within 20s", addr, closed)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestLongPollsAreBoundedPerIP: one address may hold at most
// MaxWaitersPerIP long polls; beyond that it gets 429, while plain polls
// and other addresses still work.
func TestLongPollsAreBoundedPerIP(t *testing.T) {
	t.Parallel()
	const max = 3
	e := startEnv(t, envOpts{cfg: func(c *app.Config) {
		c.MaxWaitersPerIP = max
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}})
	en := e.enrollVerified(t, newVMAKey(t, "waiter"))
	poll := func(ip, wait string) resp {
		u := e.public + api.PathResult + "?enrollment_id=" + en.id
		if wait != "" {
			u += "&wait=" + wait
		}
		return e.send(req{method: "GET", url: u, token: en.pollToken, header: map[string]string{"X-Forwarded-For": ip}})
	}
	const a, b = "198.51.100.1", "198.51.100.2"
	held := make(chan resp, max)
	for i := 0; i < max; i++ {
		go func() {
			for { // until admitted: a probe below may hold a slot a moment
				r := poll(a, "30s")
				if r.status != 429 {
					held <- r
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	// Once the three are waiting, a fourth from the same address is refused.
	var refused resp
	eventually(t, 20*time.Second, "a long poll beyond the limit to be refused", func() bool {
		refused = poll(a, "1s")
		return refused.status == 429
	})
	if refused.code() != "rate_limited" || refused.header.Get("Retry-After") == "" {
		t.Fatalf("long poll beyond the limit: %s (Retry-After %q)", refused, refused.header.Get("Retry-After"))
	}
	select {
	case r := <-held:
		t.Fatalf("a held long poll returned early: %s", r)
	default:
	}
	// A plain poll from the same address, and a long poll from another.
	if r := poll(a, ""); r.status != 200 {
		t.Fatalf("plain poll from the limited address: %s", r)
	}
	other := make(chan resp, 1)
	go func() { other <- poll(b, "30s") }()

	// The approval ends every long poll at once.
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if r := e.adminDo("POST", api.PathApprove+en.id, nil); r.status != 200 {
		t.Fatalf("approve: %s", r)
	}
	for i := 0; i < max+1; i++ {
		var r resp
		select {
		case r = <-held:
		case r = <-other:
		case <-time.After(15 * time.Second):
			t.Fatalf("long polls did not return after the approval")
		}
		if r.status != 200 || decodeAs[api.ResultResponse](t, r).Status != "approved" {
			t.Fatalf("long poll after approval: %s", r)
		}
	}
	t.Logf("all long polls answered %s after the approval", time.Since(start).Round(time.Millisecond))
	// The slots are free again.
	if r := poll(a, "5s"); r.status != 200 {
		t.Fatalf("long poll after the others ended: %s", r)
	}
}
