package tunnel_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
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

var seq atomic.Int64

// echoServer answers every connection with a prefix and the bytes it got.
func echoServer(t *testing.T, prefix string) string {
	t.Helper()
	return testbin.Serve(t, "127.0.0.1:0", func(c net.Conn) { echoOnce(c, prefix) })
}

// echoOnce reads once from c and answers with prefix and what it read.
func echoOnce(c net.Conn, prefix string) {
	buf := make([]byte, 256)
	n, _ := c.Read(buf)
	c.Write(append([]byte(prefix), buf[:n]...))
}

type oma struct {
	t        *testing.T
	svc      *enroll.Service
	srv      *server.Server
	ep       *endpoint.Endpoint
	token    string
	nbd      string
	vmaAPI   string
	nbdLocal string
	client   *http.Client
}

var auditKey = bytes.Repeat([]byte{9}, 32)

// keepaliveEvery is the endpoint's keepalive period in the keepalive test
// (the others keep the 30s default: a busy machine must not make a short
// period drop their tunnels).
const keepaliveEvery = 200 * time.Millisecond

// startOMA starts an in-process OMA (server + embedded endpoint) on fresh
// loopback addresses; see runOMA.
func startOMA(t *testing.T, db *store.DB, hostKeyDir string, pool [2]int, nbd, vmaAPI, nbdLocal string) *oma {
	t.Helper()
	return runOMA(t, db, omaSetup{keys: hostKeyDir, public: "127.0.0.1:0", nbd: nbd, vmaAPI: vmaAPI,
		nbdLocal: nbdLocal, pool: pool}).oma
}

func (o *oma) call(method, url, token string, in, out any) int {
	o.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := o.client.Do(req)
	if err != nil {
		o.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil {
		json.Unmarshal(b, out)
	}
	return res.StatusCode
}

type vma struct {
	dir  string
	id   string
	port int
	tun  api.Tunnel
}

// enrollVMA enrolls and approves a VMA over HTTPS on the shared public
// port, then writes its tunnel configuration with the VMA-side writer.
func (o *oma) enrollVMA(name string, approveVia *oma) *vma {
	o.t.Helper()
	return o.enrollVMAIn(o.t.TempDir(), name, approveVia)
}

// enrollVMAIn is enrollVMA with the VMA's config directory given (its key,
// when dir holds one, is used).
func (o *oma) enrollVMAIn(dir, name string, approveVia *oma) *vma {
	t := o.t
	t.Helper()
	kp, err := sshkey.LoadOrGenerate(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	pub := "https://" + o.srv.PublicAddr()
	var pc api.PairingCodeResponse
	if st := o.call("POST", "http://"+o.srv.AdminAddr()+api.PathPairingCode, o.token, nil, &pc); st != 201 {
		t.Fatalf("pairing code %d", st)
	}
	var er api.EnrollResponse
	if st := o.call("POST", pub+api.PathEnroll, "", api.EnrollRequest{PairingCode: pc.PairingCode, VMAPublicKey: sshkey.AuthorizedKey(kp.Public, ""), VMAName: name}, &er); st != 201 {
		t.Fatalf("enroll %d", st)
	}
	ch, _ := base64.StdEncoding.DecodeString(er.Challenge)
	var vr api.VerifyResponse
	if st := o.call("POST", pub+api.PathVerify, "", api.VerifyRequest{EnrollmentID: er.EnrollmentID, Signature: base64.StdEncoding.EncodeToString(enroll.SignChallenge(kp.Private, er.EnrollmentID, ch))}, &vr); st != 200 {
		t.Fatalf("verify %d", st)
	}
	if approveVia == nil {
		approveVia = o
	}
	if st := approveVia.call("POST", "http://"+approveVia.srv.AdminAddr()+api.PathApprove+er.EnrollmentID, approveVia.token, nil, nil); st != 200 {
		t.Fatalf("approve %d", st)
	}
	var res api.ResultResponse
	if st := o.call("GET", pub+api.PathResult+"?enrollment_id="+er.EnrollmentID, vr.PollToken, nil, &res); st != 200 || res.Tunnel == nil {
		t.Fatalf("result %d %+v", st, res)
	}
	host, port, _ := net.SplitHostPort(o.srv.PublicAddr())
	p, _ := strconv.Atoi(port)
	if _, err := vmaclient.WriteVMAConfig(vmaclient.VMAConfig{Dir: dir, EnrollmentID: er.EnrollmentID, OMAHost: host, OMAPort: p, Tunnel: *res.Tunnel, Binary: "/usr/local/bin/vma-enroll"}); err != nil {
		t.Fatal(err)
	}
	tp, _ := strconv.Atoi(strings.TrimPrefix(res.Tunnel.RemoteForwards[0].Listen, "127.0.0.1:"))
	return &vma{dir: dir, id: er.EnrollmentID, port: tp, tun: *res.Tunnel}
}

func sshCmd(v *vma, args ...string) *exec.Cmd {
	all := append([]string{"-F", filepath.Join(v.dir, "ssh_config")}, args...)
	return exec.Command("ssh", all...)
}

// bareSSH runs ssh with the VMA's identity and pinning but without the
// configured forwards, to try requests the tunnel must refuse. It fails
// the test when ssh is still running after 15s.
func bareSSH(t *testing.T, v *vma, args ...string) (string, error) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(v.dir, "ssh_config"))
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && (f[0] == "LocalForward" || f[0] == "RemoteForward") {
			continue
		}
		keep = append(keep, l)
	}
	cfg := filepath.Join(v.dir, "ssh_config.bare")
	if err := os.WriteFile(cfg, []byte(strings.Join(keep, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", append([]string{"-F", cfg, "-o", "ConnectTimeout=10"}, args...)...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("ssh %v still running after 15s, want it refused", args)
	}
	return string(out), err
}

// startTunnel runs `ssh -F ssh_config -N oma` and waits until it is up.
func startTunnel(t *testing.T, o *oma, v *vma) (*exec.Cmd, chan error) {
	t.Helper()
	cmd := sshCmd(v, "-N", "oma")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("ssh exited early: %v\n%s", err, stderr.String())
		default:
		}
		if o.ep.Connected(v.id) {
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", v.port)); err == nil {
				c.Close()
				return cmd, done
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("tunnel did not come up; ssh said:\n%s", stderr.String())
	return nil, nil
}

func roundTrip(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(msg))
	b, _ := io.ReadAll(c)
	return string(b)
}

func requireSSH(t *testing.T) {
	testbin.Need(t, "apt-get install openssh-client", "ssh")
}

func TestEmbeddedTunnelWithOpenSSH(t *testing.T) {
	requireSSH(t)
	db, _ := omatest.OpenStore(t, "sqlite")
	nbd := echoServer(t, "nbd:")
	vmaAPI := echoServer(t, "vma-api:")
	pool := testbin.FreePorts(t, 4)
	o := startOMA(t, db, t.TempDir(), pool, nbd, vmaAPI, testbin.FreeAddr(t))
	v := o.enrollVMA("vma-a", nil)
	if v.port != pool[0] {
		t.Fatalf("first tunnel port %d, want the first of the pool, %d", v.port, pool[0])
	}
	_, done := startTunnel(t, o, v)

	// Both forwards carry bytes.
	if got := roundTrip(t, o.nbdLocal, "hello"); got != "nbd:hello" {
		t.Fatalf("through the NBD forward: %q", got)
	}
	if got := roundTrip(t, fmt.Sprintf("127.0.0.1:%d", v.port), "ping"); got != "vma-api:ping" {
		t.Fatalf("through the reverse forward: %q", got)
	}
	var act api.ConnectionList
	o.call("GET", "http://"+o.srv.AdminAddr()+api.PathActive, o.token, nil, &act)
	if len(act.Connections) != 1 || act.Connections[0].ConnectionStatus != "connected" || act.Connections[0].LastSeenAt == nil {
		t.Fatalf("active = %+v", act)
	}

	req, _ := http.NewRequest("GET", "http://"+o.srv.AdminAddr()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+o.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"oma_enroll_tunnel_establishment_seconds_count 1", "oma_enroll_connected_vmas 1"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// Everything else is refused.
	refused := map[string][]string{
		"command":            {"oma", "id"},
		"shell":              {"-tt", "oma"},
		"other local target": {"-W", "127.0.0.1:22", "oma"},
		"other remote port":  {"-o", "ExitOnForwardFailure=yes", "-N", "-R", "127.0.0.1:9998:127.0.0.1:1", "oma"},
		"wildcard bind":      {"-o", "ExitOnForwardFailure=yes", "-N", "-R", fmt.Sprintf("0.0.0.0:%d:127.0.0.1:1", v.port), "oma"},
	}
	for name, args := range refused {
		if out, err := bareSSH(t, v, args...); err == nil {
			t.Errorf("%s: ssh succeeded, want refusal; output %s", name, out)
		}
	}
	evs, _ := o.svc.Audit(context.Background(), enroll.AuditFilter{EventType: enroll.EventForwardRefused, EnrollmentID: v.id})
	if len(evs) < 4 {
		t.Fatalf("forward_refused audit events = %d, want at least 4", len(evs))
	}
	// The tunnel is still up after all that.
	if got := roundTrip(t, o.nbdLocal, "again"); got != "nbd:again" {
		t.Fatalf("NBD forward after refusals: %q", got)
	}

	// Revocation drops the live tunnel (how fast: make bench, row 7).
	if st := o.call("DELETE", "http://"+o.srv.AdminAddr()+api.PathRevoke+v.id, o.token, nil, nil); st != 200 {
		t.Fatalf("revoke %d", st)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("tunnel still up 10s after revocation")
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", v.port), time.Second); err == nil {
		c.Close()
		t.Fatal("the reverse port still listens after revocation")
	}
	// The key cannot reconnect.
	out, err := bareSSH(t, v, "-N", "oma")
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("reconnect after revocation: %v %s", err, out)
	}
	// The disconnection event is committed just after the endpoint lets
	// the connection go, so it can trail the ssh client's exit.
	eventuallyT(t, 5*time.Second, "the disconnection event", func() bool {
		evs, _ = o.svc.Audit(context.Background(), enroll.AuditFilter{EnrollmentID: v.id})
		return len(evs) > 0 && evs[len(evs)-1].EventType == enroll.EventDisconnection
	})
	var types []string
	for _, ev := range evs {
		types = append(types, string(ev.EventType))
	}
	joined := strings.Join(types, ",")
	if !strings.Contains(joined, "connection") || !strings.Contains(joined, "revocation") || !strings.HasSuffix(joined, "disconnection") {
		t.Fatalf("audit = %s", joined)
	}
}

func TestTwoVMAsGetTheirOwnPorts(t *testing.T) {
	requireSSH(t)
	db, _ := omatest.OpenStore(t, "sqlite")
	o := startOMA(t, db, t.TempDir(), testbin.FreePorts(t, 4), echoServer(t, "nbd:"), echoServer(t, "api:"), testbin.FreeAddr(t))
	a := o.enrollVMA("vma-one", nil)
	b := o.enrollVMA("vma-two", nil)
	if a.port == b.port {
		t.Fatalf("both VMAs got port %d", a.port)
	}
	startTunnel(t, o, a)
	// Both VMAs run on this one machine here: give B its own NBD listen port.
	cfgPath := filepath.Join(b.dir, "ssh_config")
	cfg, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, []byte(strings.Replace(string(cfg), o.nbdLocal, testbin.FreeAddr(t), 1)), 0o600)
	// B may not listen on A's port.
	if out, err := bareSSH(t, b, "-o", "ExitOnForwardFailure=yes", "-N", "-R", fmt.Sprintf("127.0.0.1:%d:127.0.0.1:1", a.port), "oma"); err == nil {
		t.Fatalf("VMA two listened on VMA one's port: %s", out)
	}
	startTunnel(t, o, b)
}

func TestPublicPortRejectsOtherProtocols(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	o := startOMA(t, db, t.TempDir(), testbin.FreePorts(t, 4), echoServer(t, "nbd:"), echoServer(t, "api:"), testbin.FreeAddr(t))
	addr := o.srv.PublicAddr()
	// Garbage is closed at once.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("\x00\x01garbage\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := c.Read(make([]byte, 10)); err == nil || n > 0 {
		t.Fatalf("garbage on the shared port got an answer (%d bytes, %v)", n, err)
	}
	c.Close()
	// Plain HTTP gets only the fixed 400 that names the listener (so
	// omactl pointed here can say so), then the connection closes.
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET /api/v1/admin/vma/pending HTTP/1.0\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(got), "HTTP/1.0 400 Bad Request\r\n") || !strings.Contains(string(got), "\r\nX-Oma-Listener: public\r\n") ||
		!strings.HasSuffix(string(got), "\r\n\r\nClient sent an HTTP request to an HTTPS server.\n") {
		t.Fatalf("plain HTTP on the shared port got %q", got)
	}
	c.Close()
	// A silent client is cut after the sniff timeout.
	c, _ = net.Dial("tcp", addr)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	c.Read(make([]byte, 1))
	if d := time.Since(start); d > 10*time.Second { // the sniff timeout is 1s
		t.Fatalf("silent client kept for %s", d)
	}
	c.Close()
	// HTTPS still works.
	if st := o.call("GET", "https://"+addr+"/health", "", nil, nil); st != 200 {
		t.Fatalf("health over the shared port: %d", st)
	}
}

func TestRevocationOnAnotherInstanceDropsTunnel(t *testing.T) {
	requireSSH(t)
	db, dsn := omatest.OpenStore(t, "mysql")
	keys := t.TempDir()
	nbd, api2, local := echoServer(t, "nbd:"), echoServer(t, "api:"), testbin.FreeAddr(t)
	pool := testbin.FreePorts(t, 4)
	a := startOMA(t, db, keys, pool, nbd, api2, local)
	db2, err := store.Open(context.Background(), "mysql", dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	b := startOMA(t, db2, keys, pool, nbd, api2, testbin.FreeAddr(t))
	v := a.enrollVMA("vma-multi", b)
	_, done := startTunnel(t, a, v)
	// A re-reads its live tunnels every RecheckEvery (200 ms here); the
	// design's second is measured by make bench (row 7), and the bound
	// here leaves room for a busy test machine while still failing when
	// only the next keepalive or a restart would end the tunnel.
	start := time.Now()
	if st := b.call("DELETE", "http://"+b.srv.AdminAddr()+api.PathRevoke+v.id, b.token, nil, nil); st != 200 {
		t.Fatalf("revoke via B: %d", st)
	}
	select {
	case <-done:
		lag := time.Since(start)
		t.Logf("the tunnel on A dropped %s after the revocation on B", lag.Round(time.Millisecond))
		if lag > 3*time.Second {
			t.Fatalf("the tunnel on A dropped %s after the revocation on B", lag)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tunnel on A still up 10s after revocation on B")
	}
	// Neither instance lets the key back in (B's address is not in the
	// VMA's known_hosts: the key, not the host, is under test).
	_, portB, _ := net.SplitHostPort(b.srv.PublicAddr())
	for name, args := range map[string][]string{"A": {"-N", "oma"},
		"B": {"-p", portB, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-N", "oma"}} {
		if out, err := bareSSH(t, v, args...); err == nil || !strings.Contains(out, "Permission denied") {
			t.Fatalf("reconnect to %s after the revocation: %v %s", name, err, out)
		}
	}
}

// When the database cannot answer, the endpoint drops the connection rather
// than refusing the key, so the VMA retries instead of concluding that it
// was revoked.
func TestDatabaseOutageIsNotARefusal(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	o := startOMA(t, db, t.TempDir(), testbin.FreePorts(t, 2), echoServer(t, "nbd:"), echoServer(t, "api:"), testbin.FreeAddr(t))
	v := o.enrollVMA("vma-outage", nil)
	kp, err := sshkey.LoadOrGenerate(v.dir, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(kp.Private)
	dial := func() error {
		c, err := ssh.Dial("tcp", o.srv.PublicAddr(), &ssh.ClientConfig{User: "vma_tunnel",
			Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("with the database up: %v", err)
	}
	db.Close()
	err = dial()
	if err == nil {
		t.Fatal("connected with the database closed")
	}
	if strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("a database outage looked like a key refusal: %v", err)
	}
}

// A VMA whose connection goes silent (no bytes come back, nothing closes)
// is dropped after three unanswered keepalives and marked disconnected.
func TestSilentTunnelIsDroppedByKeepalives(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	o := runOMA(t, db, omaSetup{keys: t.TempDir(), public: "127.0.0.1:0", nbd: echoServer(t, "nbd:"), vmaAPI: echoServer(t, "api:"),
		nbdLocal: testbin.FreeAddr(t), pool: testbin.FreePorts(t, 2), keepalive: keepaliveEvery}).oma
	v := o.enrollVMA("vma-silent", nil)
	kp, err := sshkey.LoadOrGenerate(v.dir, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(kp.Private)

	// A relay that can stop carrying the server's bytes to the VMA.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var silent atomic.Bool
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", o.srv.PublicAddr())
		if err != nil {
			c.Close()
			return
		}
		go io.Copy(up, c)
		buf := make([]byte, 32<<10)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			if !silent.Load() {
				c.Write(buf[:n])
			}
		}
	}()
	cl, err := ssh.Dial("tcp", l.Addr().String(), &ssh.ClientConfig{User: "vma_tunnel",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !o.ep.Connected(v.id) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !o.ep.Connected(v.id) {
		t.Fatal("the tunnel never showed as connected")
	}
	silent.Store(true)
	start := time.Now()
	for o.ep.Connected(v.id) && time.Since(start) < 10*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	if o.ep.Connected(v.id) {
		t.Fatal("a silent tunnel was still held 10s later")
	}
	// Three unanswered probes take at least two periods from the first of
	// them, which may have been sent up to a period before the relay went
	// silent: anything sooner than one period means fewer than three.
	d := time.Since(start)
	t.Logf("dropped %s after it went silent (keepalive every %s)", d.Round(time.Millisecond), keepaliveEvery)
	if d < keepaliveEvery {
		t.Fatalf("dropped after %s, before three keepalives could go unanswered", d)
	}
	// The endpoint forgets the tunnel first and then commits its
	// disconnection event, so the event can trail Connected by a moment.
	var evs []enroll.AuditEvent
	eventuallyT(t, 5*time.Second, "the disconnection event", func() bool {
		evs, _ = o.svc.Audit(context.Background(), enroll.AuditFilter{EventType: enroll.EventDisconnection, EnrollmentID: v.id})
		return len(evs) > 0
	})
	if len(evs) != 1 || evs[0].Details()["reason"] != "keepalive timeout" {
		t.Fatalf("disconnection events = %+v", evs)
	}
}

// TestHostKeyProofsAreBounded: the endpoint signs host key proofs of its
// own keys for a logged-in VMA (hostkeys-prove-00@openssh.com), refuses
// keys that are not its own, and answers at most a few proof requests per
// connection, so a VMA cannot make it sign without end.
func TestHostKeyProofsAreBounded(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	o := runOMA(t, db, omaSetup{keys: t.TempDir(), public: "127.0.0.1:0", nbd: echoServer(t, "nbd:"), vmaAPI: echoServer(t, "api:"),
		nbdLocal: testbin.FreeAddr(t), pool: testbin.FreePorts(t, 2)}).oma
	v := o.enrollVMA("vma-proofs", nil)
	signer := vmaSigner(t, v.dir)
	var hostKey ssh.PublicKey
	cl, err := ssh.Dial("tcp", o.srv.PublicAddr(), &ssh.ClientConfig{User: "vma_tunnel",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, Timeout: 10 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error { hostKey = k; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ask := func(blob []byte) (bool, []byte) {
		t.Helper()
		ok, reply, err := cl.SendRequest(tunnel.ReqHostKeysProve, true, ssh.Marshal(struct{ Blob []byte }{blob}))
		if err != nil {
			t.Fatal(err)
		}
		return ok, reply
	}
	other, _ := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)))
	if ok, _ := ask(other.PublicKey().Marshal()); ok {
		t.Fatal("the endpoint proved a host key that is not its own")
	}
	ok, reply := ask(hostKey.Marshal())
	if !ok {
		t.Fatal("the endpoint refused to prove its own host key")
	}
	var sig struct{ Sig []byte }
	var s ssh.Signature
	if err := ssh.Unmarshal(reply, &sig); err != nil {
		t.Fatal(err)
	}
	if err := ssh.Unmarshal(sig.Sig, &s); err != nil {
		t.Fatal(err)
	}
	sessionID := cl.SessionID()
	if err := hostKey.Verify(tunnel.HostKeyProofData(sessionID, hostKey.Marshal()), &s); err != nil {
		t.Fatalf("the proof does not verify: %v", err)
	}
	answered := 2
	for range 10 {
		if ok, _ := ask(hostKey.Marshal()); !ok {
			break
		}
		answered++
	}
	if answered > 4 {
		t.Fatalf("the endpoint answered %d proof requests on one connection, want at most 4", answered)
	}
}
