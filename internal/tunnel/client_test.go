package tunnel_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/omatest"
	"github.com/oma-enroll/oma-enroll/internal/server"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/store"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/endpoint"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/vmaclient"
)

// omaInstance is an in-process OMA (server + embedded endpoint) that a test
// can stop and start again on the same addresses.
type omaInstance struct {
	*oma
	stop func()
}

// omaSetup is what an in-process OMA listens on and forwards to. The
// tunnel port pool is one free port, not the default 9081-9999: other test
// runs on the same machine may hold 9081.
type omaSetup struct {
	keys      string // host key and TLS certificate directory
	public    string // public listener (SSH + HTTPS)
	nbd       string // NBD target on the OMA
	vmaAPI    string // VMA API target on the VMA
	nbdLocal  string // VMA-side listen address of the NBD forward
	pool      [2]int // tunnel port pool
	keepalive time.Duration
}

// newSetup picks fresh addresses around the given targets.
func newSetup(t *testing.T, nbd, vmaAPI string) omaSetup {
	t.Helper()
	return omaSetup{keys: t.TempDir(), public: "127.0.0.1:0", nbd: nbd, vmaAPI: vmaAPI, nbdLocal: testbin.FreeAddr(t), pool: testbin.FreePorts(t, 1)}
}

// runOMA starts the server and the endpoint with s's addresses, tunnel port
// pool and keepalive period, and returns it with a stop function.
func runOMA(t *testing.T, db *store.DB, s omaSetup) *omaInstance {
	t.Helper()
	keys, public, nbd, vmaAPI, nbdLocal := s.keys, s.public, s.nbd, s.vmaAPI, s.nbdLocal
	cert, err := server.LoadOrCreateCertificate("", "", keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := sshkey.LoadOrGenerateFile(filepath.Join(keys, "ssh_host_ed25519_key"), "oma")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(kp.Private)
	svc := enroll.New(db, enroll.Config{PollInterval: 50 * time.Millisecond, PortMin: s.pool[0], PortMax: s.pool[1]}, auditKey, nil)
	ep := endpoint.New(endpoint.Config{HostKey: signer, NBDTarget: nbd, RecheckEvery: 200 * time.Millisecond, KeepaliveEvery: s.keepalive}, svc, nil)
	metrics := server.NewMetrics(svc) // fed by the service, as internal/app wires it
	svc.OnAudit = metrics.ObserveAudit
	srv, err := server.New(server.Config{
		AdminListen: "127.0.0.1:0", PublicListen: public, TLS: cert,
		Tunnel: server.TunnelConfig{HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))),
			NBDListen: nbdLocal, NBDTarget: nbd, VMAAPITarget: vmaAPI},
		RatePerSecond: 1000, RateBurst: 1000, Reactions: disconnectOnRevoke{ep}, Metrics: metrics,
	}, svc, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.SetTLSProtocol(tunnel.ALPNData, endpoint.DataTLSConfig, func(c *tls.Conn) { ep.ServeData(ctx, c) })
	epDone, srvDone := make(chan struct{}), make(chan error, 1)
	go func() { ep.Run(ctx); close(epDone) }()
	go func() { srvDone <- srv.Run(ctx, ep.Listener(ctx, time.Second)) }()
	select {
	case <-srv.Ready():
	case err := <-srvDone:
		cancel()
		t.Fatalf("server did not start: %v", err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-srvDone; <-epDone }) }
	t.Cleanup(stop)
	tok, err := svc.CreateAdminToken(context.Background(), fmt.Sprintf("admin%d", seq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	o := &oma{t: t, svc: svc, srv: srv, ep: ep, token: tok.Reveal(), nbd: nbd, vmaAPI: vmaAPI, nbdLocal: nbdLocal,
		client: pinnedClient(srv.Fingerprint())}
	return &omaInstance{oma: o, stop: stop}
}

// disconnectOnRevoke closes a revoked VMA's tunnels, as internal/app's
// embedded tunnel driver does.
type disconnectOnRevoke struct{ ep *endpoint.Endpoint }

func (disconnectOnRevoke) OnApprove(*enroll.Enrollment)    {}
func (d disconnectOnRevoke) OnRevoke(e *enroll.Enrollment) { d.ep.Disconnect(e.ID, "revoked") }

// pinnedClient is an HTTPS client that trusts exactly the OMA's key.
func pinnedClient(fp string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			sum := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
			if "sha256:"+hex.EncodeToString(sum[:]) != fp {
				return fmt.Errorf("pin mismatch")
			}
			return nil
		}}}}
}

// copyEcho echoes every connection with io.Copy: it answers only once the
// peer half-closes, so it proves that half-closes travel through.
func copyEcho(t *testing.T) string {
	t.Helper()
	return testbin.Serve(t, "127.0.0.1:0", func(c net.Conn) {
		b, _ := io.ReadAll(c)
		c.Write(b)
	})
}

// events collects a client's events for assertions.
type events struct {
	mu  sync.Mutex
	all []vmaclient.Event
	ch  chan vmaclient.Event
}

func newEvents() *events { return &events{ch: make(chan vmaclient.Event, 1000)} }

func (e *events) add(ev vmaclient.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
	select {
	case e.ch <- ev:
	default:
	}
}

func (e *events) count(typ vmaclient.EventType) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.all {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, ev := range e.all {
		fmt.Fprintf(&b, "  %s %s\n", ev.Type, ev.Message)
	}
	return b.String()
}

// forwardsUp reports whether the latest session (since the last
// connected event) has its local and its remote forward up.
func (e *events) forwardsUp() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	local, remote := false, false
	for _, ev := range e.all {
		switch {
		case ev.Type == vmaclient.EventConnected:
			local, remote = false, false
		case ev.Type == vmaclient.EventForwardUp && ev.Direction == "local":
			local = true
		case ev.Type == vmaclient.EventForwardUp && ev.Direction == "remote":
			remote = true
		}
	}
	return local && remote
}

// waitFor waits for the n-th event of typ (counting all seen so far).
func (e *events) waitFor(t *testing.T, typ vmaclient.EventType, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for e.count(typ) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %d× %s within %s; events:\n%s", n, typ, timeout, e)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func vmaSigner(t *testing.T, dir string) ssh.Signer {
	t.Helper()
	s, err := ssh.NewSignerFromKey(testbin.PrivateKey(t, filepath.Join(dir, "id_ed25519")))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type runningClient struct {
	ev     *events
	cancel context.CancelFunc
	done   chan error
}

// startClient runs the native client for v against o's public address,
// with fast test timings; change lets a test adjust the config.
func startClient(t *testing.T, o *oma, v *vma, change func(*vmaclient.ClientConfig)) *runningClient {
	t.Helper()
	hk, err := vmaclient.ParseHostKey(v.tun.HostKey)
	if err != nil {
		t.Fatal(err)
	}
	ev := newEvents()
	cfg := vmaclient.ClientConfig{
		Addr: o.srv.PublicAddr(), User: v.tun.User, HostKey: hk, Signer: vmaSigner(t, v.dir),
		LocalForwards: v.tun.LocalForwards, RemoteForwards: v.tun.RemoteForwards,
		ClientVersion:  "SSH-2.0-vma-enroll_test",
		ConnectTimeout: 10 * time.Second,
		MinBackoff:     100 * time.Millisecond, MaxBackoff: time.Second,
		RefusedRetry: time.Second,
		OnEvent:      ev.add,
	}
	if change != nil {
		change(&cfg)
	}
	c, err := vmaclient.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc := &runningClient{ev: ev, cancel: cancel, done: make(chan error, 1)}
	go func() { rc.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-rc.done:
		case <-time.After(10 * time.Second):
			t.Errorf("the client did not stop within 10s of its context ending")
		}
	})
	return rc
}

// waitUp waits until both forwards are up after the n-th connection.
func (rc *runningClient) waitUp(t *testing.T, n int) {
	t.Helper()
	rc.ev.waitFor(t, vmaclient.EventConnected, n, 20*time.Second)
	// Both forwards of the latest session: a session whose local listen
	// failed (its port taken meanwhile on a busy machine) is retried, and
	// its remote forward_up must not count for the next one's local.
	deadline := time.Now().Add(10 * time.Second)
	for !rc.ev.forwardsUp() {
		if time.Now().After(deadline) {
			t.Fatalf("the latest session's forwards did not both come up within 10s; events:\n%s", rc.ev)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bulkEcho sends size random bytes through addr, half-closes, and checks
// the same bytes come back.
func bulkEcho(t *testing.T, addr string, size int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	want := make([]byte, size)
	rand.Read(want)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		c.(*net.TCPConn).CloseWrite()
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read through %s: %v", addr, err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write through %s: %v", addr, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("through %s: got %d bytes back, want the %d sent", addr, len(got), len(want))
	}
}

func connectionOf(t *testing.T, o *oma, id string) enroll.Connection {
	t.Helper()
	conns, err := o.svc.Active(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		if c.EnrollmentID == id {
			return c
		}
	}
	t.Fatalf("enrollment %s is not in the active list", id)
	return enroll.Connection{}
}

func TestClientCarriesBothWays(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	nbd := copyEcho(t)
	o := runOMA(t, db, newSetup(t, nbd, echoServer(t, "vma-api:")))
	v := o.enrollVMA("vma-native", nil)
	rc := startClient(t, o.oma, v, nil)
	rc.waitUp(t, 1)

	// VMA 127.0.0.1:<nbd listen> -> OMA NBD target, with a half-close.
	bulkEcho(t, o.nbdLocal, 1<<20)
	// OMA 127.0.0.1:<tunnel_port> -> VMA API.
	if got := roundTrip(t, fmt.Sprintf("127.0.0.1:%d", v.port), "ping"); got != "vma-api:ping" {
		t.Fatalf("through the reverse forward: %q", got)
	}
	// Several at once.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); bulkEcho(t, o.nbdLocal, 64<<10) }()
	}
	wg.Wait()

	c := connectionOf(t, o.oma, v.id)
	if c.ConnectionStatus != "connected" || c.LastSeenAt == nil || c.TunnelPort == nil || *c.TunnelPort != v.port {
		t.Fatalf("active = %+v, want connected on port %d", c, v.port)
	}
	evs, _ := o.svc.Audit(context.Background(), enroll.AuditFilter{EnrollmentID: v.id, EventType: enroll.EventForwardRefused})
	if len(evs) != 0 {
		t.Fatalf("the endpoint refused %d requests of the native client", len(evs))
	}

	// A stop ends Run with nil, closes the VMA-side listener and the OMA
	// records the disconnection.
	rc.cancel()
	select {
	case err := <-rc.done:
		if err != nil {
			t.Fatalf("Run after stop = %v, want nil", err)
		}
		rc.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of the stop")
	}
	if rc.ev.count(vmaclient.EventStopped) != 1 {
		t.Fatalf("events:\n%s", rc.ev)
	}
	if c, err := net.DialTimeout("tcp", o.nbdLocal, time.Second); err == nil {
		c.Close()
		t.Fatal("the VMA-side NBD listener is still open after the stop")
	}
	eventuallyT(t, 5*time.Second, "the OMA to record the disconnection", func() bool {
		return connectionOf(t, o.oma, v.id).ConnectionStatus == "disconnected"
	})
}

func eventuallyT(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testbin.Eventually(t, timeout, what, cond)
}

func TestClientRefusesAnotherHostKey(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	o := runOMA(t, db, newSetup(t, echoServer(t, "nbd:"), echoServer(t, "api:")))
	v := o.enrollVMA("vma-mitm", nil)
	pub, _, _ := sshkey.Generate(nil)
	other, _ := ssh.NewPublicKey(pub)
	rc := startClient(t, o.oma, v, func(c *vmaclient.ClientConfig) { c.HostKey = other })
	var err error
	select {
	case err = <-rc.done:
		rc.done <- err
	case <-time.After(15 * time.Second):
		t.Fatalf("the client still runs 15s after meeting another host key; events:\n%s", rc.ev)
	}
	var hk *vmaclient.HostKeyMismatchError
	if !errors.As(err, &hk) || !strings.Contains(err.Error(), "OMA host key mismatch") {
		t.Fatalf("Run = %v, want a host key mismatch", err)
	}
	if hk.Want != ssh.FingerprintSHA256(other) || !strings.HasPrefix(hk.Got, "SHA256:") || hk.Got == hk.Want {
		t.Fatalf("mismatch = %+v", hk)
	}
	if n := rc.ev.count(vmaclient.EventConnecting); n != 1 {
		t.Fatalf("%d connection attempts, want exactly 1 (no retry); events:\n%s", n, rc.ev)
	}
	if rc.ev.count(vmaclient.EventHostKeyMismatch) != 1 || o.ep.Connected(v.id) {
		t.Fatalf("events:\n%s", rc.ev)
	}
}

func TestClientGivesUpAfterRevocation(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	o := runOMA(t, db, newSetup(t, echoServer(t, "nbd:"), echoServer(t, "api:")))
	v := o.enrollVMA("vma-revoked", nil)
	rc := startClient(t, o.oma, v, nil)
	rc.waitUp(t, 1)
	start := time.Now()
	if st := o.call("DELETE", "http://"+o.srv.AdminAddr()+api.PathRevoke+v.id, o.token, nil, nil); st != 200 {
		t.Fatalf("revoke %d", st)
	}
	var err error
	select {
	case err = <-rc.done:
		rc.done <- err
	case <-time.After(15 * time.Second):
		t.Fatalf("the client still retries 15s after the revocation; events:\n%s", rc.ev)
	}
	if !errors.Is(err, vmaclient.ErrKeyRefused) {
		t.Fatalf("Run = %v, want ErrKeyRefused; events:\n%s", err, rc.ev)
	}
	// Refused twice, RefusedRetry (1s) apart, then it gave up.
	if d := time.Since(start); d < time.Second {
		t.Fatalf("gave up %s after the revocation: the refusal was not checked twice", d)
	}
	if n := rc.ev.count(vmaclient.EventKeyRefused); n != 2 {
		t.Fatalf("%d key_refused events, want 2; events:\n%s", n, rc.ev)
	}
	if rc.ev.count(vmaclient.EventDisconnected) != 1 {
		t.Fatalf("events:\n%s", rc.ev)
	}
	t.Logf("events:\n%s", rc.ev)
}

// TestClientSurvivesOneRefusal checks the anti-flapping rule: a key refused
// once (here: not approved yet) is tried again, and the tunnel comes up
// when the second attempt is accepted.
func TestClientSurvivesOneRefusal(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	setup := newSetup(t, echoServer(t, "nbd:"), echoServer(t, "vma-api:"))
	o := runOMA(t, db, setup)
	tport := fmt.Sprintf("127.0.0.1:%d", setup.pool[0])
	dir := t.TempDir()
	kp, err := sshkey.LoadOrGenerate(dir, "vma-late")
	if err != nil {
		t.Fatal(err)
	}
	pub := "https://" + o.srv.PublicAddr()
	var pc api.PairingCodeResponse
	if st := o.call("POST", "http://"+o.srv.AdminAddr()+api.PathPairingCode, o.token, nil, &pc); st != 201 {
		t.Fatalf("pairing code %d", st)
	}
	var er api.EnrollResponse
	if st := o.call("POST", pub+api.PathEnroll, "", api.EnrollRequest{PairingCode: pc.PairingCode, VMAPublicKey: sshkey.AuthorizedKey(kp.Public, ""), VMAName: "vma-late"}, &er); st != 201 {
		t.Fatalf("enroll %d", st)
	}
	ch, _ := base64.StdEncoding.DecodeString(er.Challenge)
	if st := o.call("POST", pub+api.PathVerify, "", api.VerifyRequest{EnrollmentID: er.EnrollmentID, Signature: base64.StdEncoding.EncodeToString(enroll.SignChallenge(kp.Private, er.EnrollmentID, ch))}, nil); st != 200 {
		t.Fatalf("verify %d", st)
	}
	hkp, err := sshkey.LoadOrGenerateFile(filepath.Join(setup.keys, "ssh_host_ed25519_key"), "oma")
	if err != nil {
		t.Fatal(err)
	}
	hostKey, _ := ssh.NewSignerFromKey(hkp.Private)
	// The tunnel object the approval will hand out (the pool has one port).
	v := &vma{dir: dir, id: er.EnrollmentID, port: setup.pool[0], tun: api.Tunnel{
		User: "vma_tunnel", HostKey: string(ssh.MarshalAuthorizedKey(hostKey.PublicKey())),
		LocalForwards:  []api.Forward{{Listen: setup.nbdLocal, Target: o.nbd}},
		RemoteForwards: []api.Forward{{Listen: tport, Target: o.vmaAPI}},
	}}
	rc := startClient(t, o.oma, v, func(c *vmaclient.ClientConfig) { c.RefusedRetry = 10 * time.Second }) // time to approve on a busy machine
	rc.ev.waitFor(t, vmaclient.EventKeyRefused, 1, 10*time.Second)
	if st := o.call("POST", "http://"+o.srv.AdminAddr()+api.PathApprove+er.EnrollmentID, o.token, nil, nil); st != 200 {
		t.Fatalf("approve %d", st)
	}
	rc.waitUp(t, 1)
	if got := roundTrip(t, tport, "late"); got != "vma-api:late" {
		t.Fatalf("through the reverse forward: %q", got)
	}
	select {
	case err := <-rc.done:
		t.Fatalf("Run returned %v after one refusal", err)
	default:
	}
}

func TestClientReconnectsAfterServerRestart(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	setup := newSetup(t, echoServer(t, "nbd:"), echoServer(t, "vma-api:"))
	setup.public = testbin.FreeAddr(t) // the same address after the restart
	nbdLocal := setup.nbdLocal
	first := runOMA(t, db, setup)
	v := first.enrollVMA("vma-restart", nil)
	rc := startClient(t, first.oma, v, nil)
	rc.waitUp(t, 1)
	if got := roundTrip(t, nbdLocal, "one"); got != "nbd:one" {
		t.Fatalf("before the restart: %q", got)
	}

	first.stop()
	rc.ev.waitFor(t, vmaclient.EventDisconnected, 1, 10*time.Second)
	rc.ev.waitFor(t, vmaclient.EventConnectFailed, 1, 10*time.Second) // while it is down
	second := runOMA(t, db, setup)
	rc.waitUp(t, 2)
	if got := roundTrip(t, nbdLocal, "two"); got != "nbd:two" {
		t.Fatalf("through the NBD forward after the restart: %q", got)
	}
	if got := roundTrip(t, fmt.Sprintf("127.0.0.1:%d", v.port), "again"); got != "vma-api:again" {
		t.Fatalf("through the reverse forward after the restart: %q", got)
	}
	if c := connectionOf(t, second.oma, v.id); c.ConnectionStatus != "connected" {
		t.Fatalf("active after the restart = %+v", c)
	}
	if rc.ev.count(vmaclient.EventRetrying) < 2 {
		t.Fatalf("events:\n%s", rc.ev)
	}
	t.Logf("events:\n%s", rc.ev)
}

// blackhole is a TCP relay in front of the OMA that can silently stop
// passing bytes, like a NAT that forgot the connection.
type blackhole struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	dead   map[net.Conn]bool
	conns  []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target, dead: map[net.Conn]bool{}}
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			b.mu.Lock()
			b.conns = append(b.conns, c, u)
			b.mu.Unlock()
			go b.relay(c, u)
			go b.relay(u, c)
		}
	}()
	return b
}

func (b *blackhole) relay(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		b.mu.Lock()
		drop := b.dead[src] || b.dead[dst]
		b.mu.Unlock()
		if !drop {
			dst.Write(buf[:n])
		}
	}
}

// swallow makes every current connection drop its bytes from now on.
func (b *blackhole) swallow() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		b.dead[c] = true
	}
}

func TestClientKeepaliveDetectsSilentDrop(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	o := runOMA(t, db, newSetup(t, echoServer(t, "nbd:"), echoServer(t, "vma-api:")))
	v := o.enrollVMA("vma-silent", nil)
	bh := newBlackhole(t, o.srv.PublicAddr())
	rc := startClient(t, o.oma, v, func(c *vmaclient.ClientConfig) {
		c.Addr = bh.ln.Addr().String()
		c.Keepalive = 200 * time.Millisecond
	})
	rc.waitUp(t, 1)
	bh.swallow()
	rc.ev.waitFor(t, vmaclient.EventDisconnected, 1, 10*time.Second)
	rc.ev.mu.Lock()
	var reason string
	for _, ev := range rc.ev.all {
		if ev.Type == vmaclient.EventDisconnected {
			reason = ev.Reason
		}
	}
	rc.ev.mu.Unlock()
	if !strings.Contains(reason, "keepalive timeout") {
		t.Fatalf("disconnected because %q, want the keepalive timeout", reason)
	}
	// New connections pass the relay: the client is back by itself. The
	// endpoint hands the reverse port over from the stale connection.
	rc.waitUp(t, 2)
	eventuallyT(t, 10*time.Second, "the reverse forward after the reconnect", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", v.port), time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		c.Write([]byte("x"))
		b, _ := io.ReadAll(c)
		return string(b) == "vma-api:x"
	})
}

func TestHostKeyFromKnownHosts(t *testing.T) {
	pub, _, _ := sshkey.Generate(nil)
	k, _ := ssh.NewPublicKey(pub)
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	data := []byte("# comment\n\n[other]:443 " + line + "\n[oma.example]:443 " + line + "\n")
	got, err := vmaclient.HostKeyFromKnownHosts(data, "oma.example", 443)
	if err != nil || !bytes.Equal(got.Marshal(), k.Marshal()) {
		t.Fatalf("HostKeyFromKnownHosts = %v, %v", got, err)
	}
	if _, err := vmaclient.HostKeyFromKnownHosts(data, "oma.example", 22); err == nil {
		t.Fatal("found a key for port 22, which has no line")
	}
}

func TestClientBackoff(t *testing.T) {
	pub, priv, _ := sshkey.Generate(nil)
	hk, _ := ssh.NewPublicKey(pub)
	signer, _ := ssh.NewSignerFromKey(priv)
	for _, tc := range []struct {
		jitter float64
		want   []float64
	}{
		{0, []float64{0.1, 0.2, 0.4, 0.4, 0.4}},     // doubles up to the cap
		{0.5, []float64{0.0875, 0.175, 0.35, 0.35}}, // less up to a quarter
	} {
		ev := newEvents()
		c, err := vmaclient.NewClient(vmaclient.ClientConfig{
			Addr: testbin.FreeAddr(t), HostKey: hk, Signer: signer, // nothing listens there
			LocalForwards: []api.Forward{{Listen: "127.0.0.1:10808", Target: "127.0.0.1:10809"}},
			MinBackoff:    100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond,
			Jitter: func() float64 { return tc.jitter }, OnEvent: ev.add,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		ev.waitFor(t, vmaclient.EventRetrying, len(tc.want), 10*time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run after stop = %v", err)
		}
		var got []float64
		ev.mu.Lock()
		for _, e := range ev.all {
			if e.Type == vmaclient.EventRetrying && len(got) < len(tc.want) {
				got = append(got, e.RetryIn)
			}
		}
		ev.mu.Unlock()
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("jitter %v: pauses %v, want %v", tc.jitter, got, tc.want)
		}
		if ev.count(vmaclient.EventConnectFailed) < len(tc.want) {
			t.Errorf("events:\n%s", ev)
		}
	}
}

func TestClientForwardFailure(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	o := runOMA(t, db, newSetup(t, echoServer(t, "nbd:"), echoServer(t, "vma-api:")))
	v := o.enrollVMA("vma-busy", nil)
	// Something else holds the VMA-side NBD port.
	busy, err := net.Listen("tcp", o.nbdLocal)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	rc := startClient(t, o.oma, v, func(c *vmaclient.ClientConfig) { c.Once = true })
	var runErr error
	select {
	case runErr = <-rc.done:
		rc.done <- runErr
	case <-time.After(15 * time.Second):
		t.Fatalf("Run still going; events:\n%s", rc.ev)
	}
	if runErr == nil || !strings.Contains(runErr.Error(), "cannot listen on "+o.nbdLocal) {
		t.Fatalf("Run = %v, want the listen failure", runErr)
	}
	if rc.ev.count(vmaclient.EventForwardFailed) != 1 || rc.ev.count(vmaclient.EventDisconnected) != 1 {
		t.Fatalf("events:\n%s", rc.ev)
	}
	// The connection was dropped: the OMA released the reverse port.
	eventuallyT(t, 5*time.Second, "the OMA to release the reverse port", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", v.port), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil && !o.ep.Connected(v.id)
	})
}
