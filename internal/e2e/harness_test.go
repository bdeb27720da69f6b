package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/testbin"
	"github.com/oma-enroll/oma-enroll/internal/testdb"
)

// mysqlEnv names the MariaDB DSN of the tests (a root connection).
const mysqlEnv = "OMA_TEST_MYSQL_DSN"

// backend is one database oma-server can run on.
type backend struct {
	name string // sqlite or mysql
}

// backends are the databases every test runs against.
func backends() []backend {
	b := []backend{{"sqlite"}}
	if os.Getenv(mysqlEnv) != "" || testbin.InCI() { // under CI a missing DSN fails (testdb.MySQL)
		b = append(b, backend{"mysql"})
	}
	return b
}

// forEachBackend runs fn as a parallel subtest per backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// freshMySQL creates an empty database for one test and returns its DSN.
func freshMySQL(t *testing.T) string { return testdb.MySQL(t) }

// server is an oma-server process (testbin.StartServer) on one backend,
// with the fields the tests read.
type server struct {
	*testbin.Server
	t         *testing.T
	backend   backend
	dataDir   string
	dsn       string
	admin     string // host:port of the admin listener
	adminTLS  bool   // the admin listener serves HTTPS (--admin-tls)
	public    string // host:port of the public listener
	tokenFile string
	log       *testbin.Buffer
}

// startServer runs oma-server on b with extra flags and waits until its
// admin /health answers 200.
func startServer(t *testing.T, b backend, extra ...string) *server {
	t.Helper()
	var dsn string
	if b.name == "mysql" {
		dsn = freshMySQL(t)
	}
	ts := testbin.StartServer(t, testbin.ServerOptions{Binary: bin("oma-server"), Driver: b.name, DSN: dsn, Args: extra})
	return &server{Server: ts, t: t, backend: b, dataDir: ts.Opts.DataDir, dsn: dsn,
		admin: ts.Admin, adminTLS: ts.AdminTLS, public: ts.Public, tokenFile: ts.Opts.TokenFile, log: ts.Log}
}

// restart stops the server and starts it again on the same ports, data
// directory and database.
func (s *server) restart(pause time.Duration) {
	s.t.Helper()
	s.Stop()
	time.Sleep(pause)
	if err := s.Start(); err != nil {
		s.t.Fatalf("oma-server did not restart: %v\nlog:\n%s", err, s.log.String())
	}
}

func (s *server) start() error { return s.Start() }

func (s *server) kill() { s.Kill() }

// res is a finished process.
type res struct {
	stdout, stderr string
	code           int
}

func (r res) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

func runBin(t *testing.T, name string, args ...string) res {
	t.Helper()
	return runBinEnv(t, nil, name, args...)
}

// runBinEnv is runBin with extra environment variables (KEY=value).
func runBinEnv(t *testing.T, env []string, name string, args ...string) res {
	t.Helper()
	stdout, stderr, code := testbin.Run(t, env, bin(name), args...)
	return res{stdout, stderr, code}
}

// adminURL is the base URL of the admin listener.
func (s *server) adminURL() string {
	if s.adminTLS {
		return "https://" + s.admin
	}
	return "http://" + s.admin
}

// omactl runs omactl against s.
func (s *server) omactl(args ...string) res {
	s.t.Helper()
	return runBin(s.t, "omactl", append([]string{"--server", s.adminURL(), "--token-file", s.tokenFile}, args...)...)
}

// omactlJSON runs omactl -o json, requires exit 0 and decodes stdout.
func (s *server) omactlJSON(v any, args ...string) {
	s.t.Helper()
	r := s.omactl(append(args, "-o", "json")...)
	if r.code != 0 {
		s.t.Fatalf("omactl %v: %s", args, r)
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	if err := dec.Decode(v); err != nil {
		s.t.Fatalf("omactl %v -o json: %v\n%s", args, err, r.stdout)
	}
	if dec.More() {
		s.t.Fatalf("omactl %v -o json printed more than one document:\n%s", args, r.stdout)
	}
}

// vma is a vma-enroll process in the background.
type vma struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout *testbin.Buffer
	stderr *testbin.Buffer
	done   <-chan struct{}
	dir    string
}

// startVMA starts vma-enroll with args (the config dir is added).
func startVMA(t *testing.T, dir string, args ...string) *vma {
	t.Helper()
	v := &vma{t: t, stdout: &testbin.Buffer{}, stderr: &testbin.Buffer{}, dir: dir}
	v.cmd = exec.Command(bin("vma-enroll"), append(args, "--config-dir", dir)...)
	v.cmd.Env = testbin.Env()
	v.cmd.Stdout, v.cmd.Stderr = v.stdout, v.stderr
	v.done = testbin.StartGroup(t, v.cmd)
	return v
}

// killGroup kills vma-enroll and whatever it started.
func (v *vma) killGroup() { testbin.KillGroup(v.cmd) }

// wait waits for the process to end and returns its result.
func (v *vma) wait(timeout time.Duration) res {
	v.t.Helper()
	select {
	case <-v.done:
	case <-time.After(timeout):
		v.killGroup()
		<-v.done
		v.t.Fatalf("vma-enroll still running after %s\nstderr:\n%s", timeout, v.stderr.String())
	}
	return res{v.stdout.String(), v.stderr.String(), v.cmd.ProcessState.ExitCode()}
}

// result decodes the final JSON object of vma-enroll -o json.
func (r res) result(t *testing.T) vmaResult {
	t.Helper()
	var out vmaResult
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("vma-enroll stdout is not one JSON object: %v\n%s", err, r)
	}
	if dec.More() {
		t.Fatalf("vma-enroll printed more than one JSON document:\n%s", r)
	}
	return out
}

type vmaResult struct {
	Status         string   `json:"status"`
	EnrollmentID   string   `json:"enrollment_id"`
	VMAFingerprint string   `json:"vma_fingerprint"`
	ConfigDir      string   `json:"config_dir"`
	Files          []string `json:"files"`
	Error          string   `json:"error"`
}

// eventually retries cond every 100ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testbin.Eventually(t, timeout, what, cond)
}

// openDB opens the server's database as the test's own client; the
// caller closes it.
func (s *server) openDB() *sql.DB {
	s.t.Helper()
	var db *sql.DB
	var err error
	if s.backend.name == "mysql" {
		db, err = sql.Open("mysql", s.dsn)
	} else {
		db, err = sql.Open("sqlite", filepath.Join(s.dataDir, "oma.db")+"?_pragma=busy_timeout(5000)")
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return db
}

// sqlDB is openDB closed at the end of the test.
func (s *server) sqlDB() *sql.DB {
	s.t.Helper()
	db := s.openDB()
	s.t.Cleanup(func() { db.Close() })
	return db
}

// The harness tells its own server from one of a parallel test that took
// its port between FreeAddr and the bind (a CI failure: the new server exited
// with "address already in use" while the other answered /health).
func TestHarnessKnowsItsOwnServer(t *testing.T) {
	a := testbin.StartServer(t, testbin.ServerOptions{Binary: bin("oma-server")})
	other := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(other, []byte("oma_not-the-token-of-that-server\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := testbin.WaitHealthy(a.AdminURL()+"/health", other, nil); err == nil {
		t.Fatal("a server that refuses the token passed for the one that wrote it")
	}
	if err := testbin.WaitHealthy(a.AdminURL()+"/health", a.Opts.TokenFile, nil); err != nil {
		t.Fatalf("its own server: %v", err)
	}
}
