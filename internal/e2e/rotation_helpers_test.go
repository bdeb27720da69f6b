package e2e

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
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

// Helpers of the key rotation tests (rotate_test.go, rotate_steps_test.go,
// rotate_data_test.go, expiry_test.go, omarotate_test.go): an enrolled VMA's
// files, its key and status, raw rotation requests, and a proxy that stops
// a rotation at a chosen step.

// enrolled enrolls name into a new config dir and has it approved.
func (s *server) enrolled(name string) string {
	s.t.Helper()
	pc := s.pairingCode()
	dir := s.t.TempDir()
	v := startVMA(s.t, dir, s.enrollArgs(pc, name, "--timeout", "60s")...)
	s.waitPending(name)
	if r := s.omactl("approve", name); r.code != 0 {
		s.t.Fatalf("approve: %s", r)
	}
	if r := v.wait(30 * time.Second); r.code != 0 {
		s.t.Fatalf("vma-enroll: %s", r)
	}
	return dir
}

// rotStatus is the part of vma-enroll status -o json the tests read.
type rotStatus struct {
	Status         string       `json:"status"`
	VMAFingerprint string       `json:"vma_fingerprint"`
	Self           *api.VMASelf `json:"self"`
	OMACheck       struct {
		Result string `json:"result"`
		Via    string `json:"via"`
	} `json:"oma_check"`
}

func rotVMAStatus(t *testing.T, dir string) rotStatus {
	t.Helper()
	r := runBin(t, "vma-enroll", "status", "--config-dir", dir, "-o", "json")
	if r.code != 0 {
		t.Fatalf("vma-enroll status: %s", r)
	}
	var rep rotStatus
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r.stdout)
	}
	return rep
}

type rotateReport struct {
	Result                 string `json:"result"`
	KeyFingerprint         string `json:"key_fingerprint"`
	PreviousKeyFingerprint string `json:"previous_key_fingerprint"`
}

func rotate(t *testing.T, dir string) rotateReport {
	t.Helper()
	r := runBin(t, "vma-enroll", "rotate", "--config-dir", dir, "-o", "json")
	if r.code != 0 {
		t.Fatalf("vma-enroll rotate: %s", r)
	}
	var rep rotateReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("rotate -o json: %v\n%s", err, r.stdout)
	}
	return rep
}

func keyFP(t *testing.T, path string) string {
	t.Helper()
	return sshkey.Fingerprint(readPriv(t, path).Public().(ed25519.PublicKey))
}

func readPriv(t *testing.T, path string) ed25519.PrivateKey {
	t.Helper()
	return testbin.PrivateKey(t, path)
}

// copyFile copies src to dst with mode 0600.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// withKey is a copy of dir's enrollment using the private key at key.
func withKey(t *testing.T, dir, key string) string {
	t.Helper()
	d := t.TempDir()
	copyFile(t, filepath.Join(dir, "enrollment.json"), filepath.Join(d, "enrollment.json"))
	copyFile(t, key, filepath.Join(d, "id_ed25519"))
	return d
}

// vmaTLS is the TLS 1.3 client settings of a VMA towards the OMA pinned
// to pin, with priv as the client certificate and alpn as the protocol.
func vmaTLS(t *testing.T, pin string, priv ed25519.PrivateKey, alpn string) *tls.Config {
	t.Helper()
	cert, err := vmaauth.ClientCertificate(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := client.TLSConfig(pin, false)
	cfg.MinVersion = tls.VersionTLS13
	cfg.NextProtos = []string{alpn}
	cfg.Certificates = []tls.Certificate{cert}
	return cfg
}

// mtls opens a TLS 1.3 connection to the OMA's public port with priv as
// the client certificate.
func mtls(t *testing.T, s *server, pin string, priv ed25519.PrivateKey) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", s.public, vmaTLS(t, pin, priv, "http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rawRotate sends POST /api/v1/vma/rotate on c signed with next over
// binding (nil: c's own) and returns the status and the error code.
func rawRotate(t *testing.T, c *tls.Conn, id, curFP string, next ed25519.PrivateKey, binding []byte) (int, string) {
	t.Helper()
	a := sendRaw(c, rotateRequest(t, c, id, curFP, next, binding))
	if a.err != nil {
		t.Fatal(a.err)
	}
	return a.code, a.ec
}

func readState(t *testing.T, dir string) (id, fp, pin string) {
	t.Helper()
	var st struct {
		EnrollmentID   string `json:"enrollment_id"`
		VMAFingerprint string `json:"vma_fingerprint"`
		OMAFingerprint string `json:"oma_fingerprint"`
	}
	data, _ := os.ReadFile(filepath.Join(dir, "enrollment.json"))
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	return st.EnrollmentID, st.VMAFingerprint, st.OMAFingerprint
}

// rotProxy is a TCP proxy to the OMA's public port that a test puts
// between vma-enroll and the OMA (enrollment.json's "oma", or the address
// a VMA enrolls with: a load balancer) to stop a rotation at a chosen
// step. No part of the OMA or of vma-enroll knows it is there.
type rotProxy struct {
	addr string

	mu     sync.Mutex
	target string
	// hold, when set, is asked before a chunk the OMA sent is passed on;
	// true holds it and everything after it on that connection until
	// release is closed (then both ends are closed).
	hold    func() bool
	held    chan struct{} // closed when a chunk was first held
	release chan struct{}
	// blackholeAfter > 0: connections after that many are accepted and
	// never connected to the OMA (a TLS handshake that never ends).
	blackholeAfter int
	accepted       int
	blackholed     chan struct{} // closed when a connection was first blackholed
}

func newRotProxy(t *testing.T, target string) *rotProxy {
	t.Helper()
	p := &rotProxy{target: target}
	p.reset()
	t.Cleanup(func() { p.mu.Lock(); p.releaseLocked(); p.mu.Unlock() })
	p.addr = testbin.Serve(t, "127.0.0.1:0", p.serve)
	return p
}

// reset forwards everything from now on (releasing what was held).
func (p *rotProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.release != nil {
		p.releaseLocked()
	}
	p.hold, p.blackholeAfter, p.accepted = nil, 0, 0
	p.held, p.release, p.blackholed = make(chan struct{}), make(chan struct{}), make(chan struct{})
}

func (p *rotProxy) releaseLocked() {
	select {
	case <-p.release:
	default:
		close(p.release)
	}
}

// holdWhen holds the OMA's bytes from the first chunk for which hold is
// true (after a reset); the channel is closed then.
func (p *rotProxy) holdWhen(hold func() bool) <-chan struct{} {
	p.reset()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = hold
	return p.held
}

// blackholeAfterNext passes the next n connections and blackholes the
// ones after them (after a reset); the channel is closed at the first.
func (p *rotProxy) blackholeAfterNext(n int) <-chan struct{} {
	p.reset()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackholeAfter = n
	return p.blackholed
}

func (p *rotProxy) setTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

func (p *rotProxy) serve(c net.Conn) {
	p.mu.Lock()
	p.accepted++
	target, hold, release := p.target, p.hold, p.release
	if p.blackholeAfter > 0 && p.accepted > p.blackholeAfter {
		select {
		case <-p.blackholed:
		default:
			close(p.blackholed)
		}
		p.mu.Unlock()
		<-release
		return
	}
	held := p.held
	p.mu.Unlock()
	up, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	sent := make(chan struct{}) // the VMA's side ended
	go func() {
		io.Copy(up, c)
		up.(*net.TCPConn).CloseWrite()
		close(sent)
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			if hold != nil && hold() {
				p.mu.Lock()
				select {
				case <-held:
				default:
					close(held)
				}
				p.mu.Unlock()
				<-release
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			// The OMA's end of data passes on as a half-close; a reset
			// (a killed OMA) closes the VMA's side at once.
			if err == io.EOF {
				c.(*net.TCPConn).CloseWrite()
				<-sent
			}
			return
		}
	}
}

// dbKey is the key fingerprint the OMA's database holds for id ("" when it
// cannot be read).
func dbKey(db *sql.DB, id string) string {
	var fp string
	if err := db.QueryRow(`SELECT vma_fingerprint FROM vma_enrollments WHERE id = ?`, id).Scan(&fp); err != nil {
		return ""
	}
	return fp
}

// statusWith runs vma-enroll status -o json for dir's enrollment with the
// private key at key and returns its status (approved, revoked …).
func statusWith(t *testing.T, dir, key string) string {
	t.Helper()
	r := runBin(t, "vma-enroll", "status", "--config-dir", withKey(t, dir, key), "-o", "json")
	var rep rotStatus
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r)
	}
	return rep.Status
}

// rotateRequest is POST /api/v1/vma/rotate to replace curFP by next,
// signed over binding (nil: c's channel binding).
func rotateRequest(t *testing.T, c *tls.Conn, id, curFP string, next ed25519.PrivateKey, binding []byte) *http.Request {
	t.Helper()
	if binding == nil {
		st := c.ConnectionState()
		var err error
		if binding, err = st.ExportKeyingMaterial(enroll.RotationExporterLabel, nil, enroll.RotationBindingSize); err != nil {
			t.Fatal(err)
		}
	}
	line := sshkey.AuthorizedKey(next.Public().(ed25519.PublicKey), "")
	_, canon, _ := sshkey.ParseAuthorizedKey(line)
	sig := ed25519.Sign(next, enroll.RotationMessage(id, curFP, canon, binding))
	body, _ := json.Marshal(api.VMARotateRequest{PublicKey: line, Signature: base64.StdEncoding.EncodeToString(sig)})
	req, _ := http.NewRequest(http.MethodPost, "https://oma"+api.PathVMARotate, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Close = true
	return req
}

type rawAnswer struct {
	code int
	ec   string
	err  error
}

// sendRaw sends req on c and returns the status and the error code (safe
// in any goroutine).
func sendRaw(c *tls.Conn, req *http.Request) rawAnswer {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := req.Write(c); err != nil {
		return rawAnswer{err: err}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return rawAnswer{err: err}
	}
	defer resp.Body.Close()
	var eb api.ErrorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	return rawAnswer{code: resp.StatusCode, ec: string(eb.Error.Code)}
}

// startRotateStopped stops oma-server s (SIGSTOP: connections wait in the
// kernel's accept queue) and starts `vma-enroll rotate` with args for the
// enrollment in dir; it returns once vma-enroll wrote id_ed25519.next, its
// request then waiting for the stopped OMA.
func startRotateStopped(t *testing.T, s *server, dir string, args ...string) *vma {
	t.Helper()
	s.Cmd.Process.Signal(syscall.SIGSTOP)
	v := startVMA(t, dir, append([]string{"rotate"}, args...)...)
	eventually(t, 20*time.Second, "id_ed25519.next to be written", func() bool {
		_, err := os.Stat(filepath.Join(dir, "id_ed25519.next.pub"))
		return err == nil
	})
	return v
}

// reach waits until step is closed (the run got to the step the test stops
// it at); it fails the test when vma-enroll ends first or step does not
// come within 30s.
func (v *vma) reach(step <-chan struct{}, what string) {
	v.t.Helper()
	select {
	case <-step:
	case <-v.done:
		v.t.Fatalf("vma-enroll ended before %s:\n%s", what, v.stderr.String())
	case <-time.After(30 * time.Second):
		v.t.Fatalf("no %s within 30s:\n%s", what, v.stderr.String())
	}
}

// saveKey copies the private key at key into a new file and returns its
// path (a key a test keeps across a rotation).
func saveKey(t *testing.T, key string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), filepath.Base(key))
	copyFile(t, key, p)
	return p
}
