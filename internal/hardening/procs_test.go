package hardening_test

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// omaProc is a running oma-server process (testbin.StartServer) with an
// API client for it.
type omaProc struct {
	*apiClient
	srv       *testbin.Server
	t         *testing.T
	name      string
	driver    string
	dsn       string
	dataDir   string
	tokenFile string // where the admin token is read from
	log       *testbin.Buffer
}

// procOpts configures an oma-server process.
type procOpts struct {
	name         string // for messages
	driver       string // sqlite (default) or mysql
	dsn          string // mysql DSN, or a SQLite path (default <data-dir>/oma.db)
	auditKeyFile string // shared between instances of one database
	tokenFile    string // an admin token file of another instance (same database)
	tunnelMode   string // none (default), embedded
	extra        []string
}

// sharedAuditKey writes an audit-chain key for several instances.
func sharedAuditKey(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	p := filepath.Join(t.TempDir(), "audit.key")
	if err := os.WriteFile(p, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startOMA starts oma-server and waits until its admin /health answers.
func startOMA(t *testing.T, o procOpts) *omaProc {
	t.Helper()
	if o.driver == "" {
		o.driver = "sqlite"
	}
	if o.name == "" {
		o.name = "oma-server"
	}
	dataDir := t.TempDir()
	if o.driver == "sqlite" && o.dsn == "" {
		o.dsn = filepath.Join(dataDir, "oma.db")
	}
	args := append([]string{}, o.extra...)
	if o.auditKeyFile != "" {
		args = append([]string{"--audit-key-file", o.auditKeyFile}, args...)
	}
	srv := testbin.StartServer(t, testbin.ServerOptions{Binary: bin("oma-server"), DataDir: dataDir, Driver: o.driver, DSN: o.dsn,
		TunnelMode: o.tunnelMode, TokenFile: o.tokenFile, Args: args})
	p := &omaProc{srv: srv, t: t, name: o.name, driver: o.driver, dsn: o.dsn, dataDir: dataDir, tokenFile: srv.Opts.TokenFile, log: srv.Log}
	if err := p.connect(); err != nil {
		t.Fatalf("%s: %v\nlog:\n%s", p.name, err, p.log.String())
	}
	return p
}

// connect makes the API client of the running process.
func (p *omaProc) connect() error {
	fp, err := fetchFingerprint(p.srv.Public)
	if err != nil {
		return err
	}
	p.apiClient = newAPIClient(p.srv.Admin, p.srv.Public, p.srv.Token(), fp)
	return nil
}

// restart starts the process again on the same ports, data and database
// (after kill or stop).
func (p *omaProc) restart() {
	p.t.Helper()
	p.srv.Restart()
	if err := p.connect(); err != nil {
		p.t.Fatalf("%s: %v\nlog:\n%s", p.name, err, p.log.String())
	}
}

// done is closed when the process has exited.
func (p *omaProc) done() <-chan struct{} { return p.srv.Done }

func fetchFingerprint(addr string) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return "", fmt.Errorf("TLS to %s: %w", addr, err)
	}
	defer c.Close()
	sum := sha256.Sum256(c.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// kill is kill -9.
func (p *omaProc) kill() { p.srv.Kill() }

func (p *omaProc) adminAddr() string  { return strings.TrimPrefix(p.admin, "http://") }
func (p *omaProc) publicAddr() string { return strings.TrimPrefix(p.public, "https://") }

// result is a finished process.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runBin runs one of the binaries to completion.
func runBin(t *testing.T, name string, args ...string) result {
	t.Helper()
	stdout, stderr, code := testbin.Run(t, nil, bin(name), args...)
	return result{stdout, stderr, code}
}

// omactl runs omactl against an admin listener with a token.
func omactl(t *testing.T, adminURL, token string, args ...string) result {
	t.Helper()
	return runBin(t, "omactl", append([]string{"--server", adminURL, "--token", token}, args...)...)
}

// vmaProc is a vma-enroll process in the background.
type vmaProc struct {
	name   string
	dir    string
	cmd    *exec.Cmd
	stdout *testbin.Buffer
	stderr *testbin.Buffer
	done   <-chan struct{}
}

// startVMA starts vma-enroll against the public address of an OMA with a
// pairing code; extra flags are appended.
func startVMA(t *testing.T, public, fp, code, name string, extra ...string) *vmaProc {
	t.Helper()
	v := &vmaProc{name: name, dir: t.TempDir(), stdout: &testbin.Buffer{}, stderr: &testbin.Buffer{}}
	args := append([]string{"--oma", public, "--code", code, "--fingerprint", fp, "--name", name,
		"--config-dir", v.dir, "-o", "json"}, extra...)
	v.cmd = exec.Command(bin("vma-enroll"), args...)
	v.cmd.Env = testbin.Env()
	v.cmd.Stdout, v.cmd.Stderr = v.stdout, v.stderr
	v.done = testbin.StartGroup(t, v.cmd)
	return v
}

// wait waits for the process and returns its result; on timeout it kills
// it and reports exit code -1.
func (v *vmaProc) wait(timeout time.Duration) result {
	select {
	case <-v.done:
	case <-time.After(timeout):
		testbin.KillGroup(v.cmd)
		<-v.done
		return result{v.stdout.String(), v.stderr.String() + "\n(killed: still running after " + timeout.String() + ")", -1}
	}
	return result{v.stdout.String(), v.stderr.String(), v.cmd.ProcessState.ExitCode()}
}

// vmaOutcome decodes the JSON document vma-enroll -o json prints.
type vmaOutcome struct {
	Status         string `json:"status"`
	EnrollmentID   string `json:"enrollment_id"`
	VMAFingerprint string `json:"vma_fingerprint"`
}

func (r result) outcome() (vmaOutcome, error) {
	var o vmaOutcome
	err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &o)
	return o, err
}
