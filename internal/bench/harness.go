package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

// Config sets the size of a run.
type Config struct {
	MySQLDSN    string // root DSN of a MariaDB server; empty: SQLite only
	Enrollments int    // per throughput measurement
	Approvals   int    // approval-to-VMA samples
	Tunnels     int    // idle tunnels for the memory figure
	Revokes     int    // of those, revoked one at a time for the revoke-to-drop figure
	SSHDTunnels int    // idle tunnels to OpenSSH sshd, the memory figure's reference
	TunnelRuns  int    // approval-to-tunnel samples
	ScaleVMAs   int    // enrolled VMAs for the admin query figure
	ScaleEvents int    // audit events for the admin query figure
	KeyGens     int    // key generations per side
	Clients     []int  // concurrency levels
	Rows        []int  // the table rows to measure (1-9); all when empty
	// ThroughputBytes is the size of each figure of row 8; ThroughputRuns
	// how many runs each figure is the best of.
	ThroughputBytes int64
	ThroughputRuns  int
	Timeout         time.Duration // per measurement
	Log             io.Writer     // progress
}

// wants reports whether row n of the table is to be measured.
func (c Config) wants(n int) bool {
	return len(c.Rows) == 0 || slices.Contains(c.Rows, n)
}

// Bins are the built binaries.
type Bins struct{ Dir string }

func (b Bins) path(name string) string { return filepath.Join(b.Dir, name) }

// Build compiles the three binaries into dir.
func Build(ctx context.Context, dir string) (Bins, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "./cmd/oma-server", "./cmd/omactl", "./cmd/vma-enroll")
	cmd.Dir = moduleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return Bins{}, fmt.Errorf("build: %v\n%s", err, out)
	}
	return Bins{Dir: dir}, nil
}

func moduleRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

// store names a database to run against.
type store struct {
	driver, dsn string
	drop        func()
}

func newStore(driver, rootDSN, dir string) (store, error) {
	if driver == "sqlite" {
		return store{driver: "sqlite", dsn: filepath.Join(dir, "oma.db"), drop: func() {}}, nil
	}
	cfg, err := mysql.ParseDSN(rootDSN)
	if err != nil {
		return store{}, err
	}
	var b [6]byte
	rand.Read(b[:])
	name := "oma_bench_" + hex.EncodeToString(b[:]) // [a-z0-9_]: safe in DDL
	root := cfg.Clone()
	root.DBName = ""
	db, err := sql.Open("mysql", root.FormatDSN())
	if err != nil {
		return store{}, err
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		return store{}, fmt.Errorf("create bench database: %w", err)
	}
	cfg.DBName = name
	return store{driver: "mysql", dsn: cfg.FormatDSN(), drop: func() {
		if db, err := sql.Open("mysql", root.FormatDSN()); err == nil {
			db.Exec("DROP DATABASE IF EXISTS " + name)
			db.Close()
		}
	}}, nil
}

// server is a running oma-server process.
type server struct {
	cmd           *exec.Cmd
	admin, public string
	dataDir       string
	token         string
	fingerprint   string
	client        *http.Client
	stderr        *bytes.Buffer
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startServer(ctx context.Context, bins Bins, st store, dataDir string, extra ...string) (*server, error) {
	s := &server{admin: freeAddr(), public: freeAddr(), dataDir: dataDir, stderr: &bytes.Buffer{}}
	args := append([]string{"serve", "--data-dir", dataDir, "--db-driver", st.driver, "--db-dsn", st.dsn,
		"--admin-listen", s.admin, "--public-listen", s.public, "--public-host", "127.0.0.1",
		"--rate-limit", "1000000", "--rate-burst", "1000000", "--code-failures-per-minute", "1000000", "--code-failure-burst", "100000",
		"--ssh-rate-limit", "1000000", "--ssh-rate-burst", "1000000", "--max-unauthenticated-per-ip", "1000000",
		"--tunnel-port-range", "20000-29999",
		"--log-level", "warn"}, extra...)
	s.cmd = exec.Command(bins.path("oma-server"), args...)
	s.cmd.Stderr = s.stderr
	s.cmd.Env = cleanEnv()
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get("http://" + s.admin + "/health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("oma-server did not start: %s", s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		s.stop()
		return nil, err
	}
	s.token = strings.TrimSpace(string(tok))
	s.client = keepAliveClient(256)
	var pc api.PairingCodeResponse
	if err := s.admin_("POST", api.PathPairingCode, nil, &pc); err != nil {
		s.stop()
		return nil, err
	}
	s.fingerprint = pc.OMAFingerprint
	return s, nil
}

func (s *server) stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			s.cmd.Process.Kill()
			<-done
		}
	}
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OMA_") || strings.HasPrefix(k, "OMACTL_") || strings.HasPrefix(k, "VMA_ENROLL_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// keepAliveClient keeps up to conns TLS connections open; the bench
// trusts its own server's self-signed certificate.
func keepAliveClient(conns int) *http.Client {
	return &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}}
}

func (s *server) call(c *http.Client, method, url, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, url, res.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (s *server) admin_(method, path string, in, out any) error {
	return s.call(s.client, method, "http://"+s.admin+path, s.token, in, out)
}

func (s *server) pub(c *http.Client, method, path, token string, in, out any) error {
	return s.call(c, method, "https://"+s.public+path, token, in, out)
}
