package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/app"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/omatest"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
	"github.com/oma-enroll/oma-enroll/internal/testdb"
)

// TestAppRuns starts the App as oma-server serve does, on a real SQLite
// file and a real MariaDB, with each tunnel driver: the first admin token
// is written, an approval and a revocation through the admin API reach
// the tunnel driver and the metrics, and Close releases both listeners.
func TestAppRuns(t *testing.T) {
	for _, driver := range testdb.Drivers {
		for _, mode := range []string{"none", "embedded", "openssh"} {
			t.Run(driver+"/"+mode, func(t *testing.T) {
				t.Parallel()
				cfg, log := config(t, driver, mode)
				a, done := start(t, cfg)
				if !strings.Contains(log.String(), `created the first admin token (name \"admin\")`) {
					t.Errorf("log lacks the first admin token:\n%s", log)
				}
				c := newAdmin(t, a, filepath.Join(cfg.DataDir, "admin.token"))

				var h api.HealthResponse
				c.json("GET", api.PathHealth, 200, &h)
				if h.Status != "ok" || h.Tunnel == nil || h.Tunnel.Mode != mode {
					t.Fatalf("health = %+v, tunnel %+v", h, h.Tunnel)
				}

				id, key := enrollVerified(t, a.Service(), "vma-"+mode)
				var e api.Enrollment
				c.json("POST", api.PathApprove+id, 200, &e)
				if mode == "openssh" && !strings.Contains(readFile(t, cfg.Tunnel.AuthorizedKeysFile), key) {
					t.Fatalf("approved, but authorized_keys lacks the key:\n%s", readFile(t, cfg.Tunnel.AuthorizedKeysFile))
				}
				c.json("DELETE", api.PathRevoke+id, 200, &e)
				if mode == "openssh" && strings.Contains(readFile(t, cfg.Tunnel.AuthorizedKeysFile), key) {
					t.Fatalf("revoked, but authorized_keys still holds the key:\n%s", readFile(t, cfg.Tunnel.AuthorizedKeysFile))
				}
				if mode == "embedded" {
					// SSH shares the public port with HTTPS.
					if banner := sshBanner(t, a.PublicAddr()); !strings.HasPrefix(banner, "SSH-2.0-") {
						t.Fatalf("public port answered SSH with %q", banner)
					}
				}

				metrics := c.text(api.PathMetrics)
				want := []string{
					`oma_enroll_audit_events_total{event_type="approval"} 1`,
					`oma_enroll_audit_events_total{event_type="revocation"} 1`,
					`oma_enroll_enrollments_total{result="ok",step="approve"} 1`,
					`oma_enroll_active_vmas 0`,
				}
				if mode == "embedded" {
					want = append(want, "oma_enroll_tunnel_login_failures_total")
				}
				for _, w := range want {
					if !strings.Contains(metrics, w) {
						t.Errorf("metrics lack %s", w)
					}
				}

				admin, public := a.AdminAddr(), a.PublicAddr()
				if err := a.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				if err := <-done; err != nil {
					t.Fatalf("Run: %v", err)
				}
				for _, addr := range []string{admin, public} {
					ln, err := net.Listen("tcp", addr)
					if err != nil {
						t.Fatalf("after Close, %s is still taken: %v", addr, err)
					}
					ln.Close()
				}
			})
		}
	}
}

// TestAppRestarts: a second App on the same data directory and addresses
// keeps the certificate, the audit key and the admin token, and the
// enrollments.
func TestAppRestarts(t *testing.T) {
	t.Parallel()
	cfg, _ := config(t, "sqlite", "none")
	a, done := start(t, cfg)
	id, _ := enrollVerified(t, a.Service(), "vma-restart")
	fp, tok := a.Fingerprint(), readFile(t, filepath.Join(cfg.DataDir, "admin.token"))
	cfg.AdminListen, cfg.PublicListen = a.AdminAddr(), a.PublicAddr()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil {
		t.Fatal("Run after Close did not fail")
	}

	b, _ := start(t, cfg)
	if b.Fingerprint() != fp || readFile(t, filepath.Join(cfg.DataDir, "admin.token")) != tok {
		t.Fatal("the restarted App changed its certificate or admin token")
	}
	c := newAdmin(t, b, filepath.Join(cfg.DataDir, "admin.token"))
	var e api.Enrollment
	c.json("POST", api.PathApprove+id, 200, &e)
	var rep api.ChainReport
	c.json("GET", api.PathAuditVerify, 200, &rep)
	if !rep.OK {
		t.Fatalf("audit chain after restart: %+v", rep)
	}
}

// config is serve's configuration for one test: its own data directory
// and database, loopback ports, and the driver's files.
func config(t *testing.T, driver, mode string) (app.Config, *testbin.Buffer) {
	dir := t.TempDir()
	dsn := testdb.DSN(t, driver)
	log := &testbin.Buffer{}
	cfg := app.Config{
		DataDir: dir, Driver: driver, DSN: dsn,
		Log:         slog.New(slog.NewTextHandler(log, nil)),
		AdminListen: "127.0.0.1:0", PublicListen: "127.0.0.1:0", PublicHost: "127.0.0.1",
		UI:     true,
		Tunnel: app.TunnelConfig{Mode: mode},
	}
	if mode == "openssh" {
		pub, _, err := sshkey.Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		hostKey := filepath.Join(dir, "sshd_host_key.pub")
		if err := os.WriteFile(hostKey, []byte(sshkey.AuthorizedKey(pub, "sshd")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		me, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Tunnel.User = me.Username
		cfg.Tunnel.SSHHostKey, cfg.Tunnel.SSHPort = hostKey, 2222
		cfg.Tunnel.AuthorizedKeysFile = filepath.Join(t.TempDir(), ".ssh", "authorized_keys")
		cfg.Tunnel.AuthorizedKeysResync = 50 * time.Millisecond
	}
	return cfg, log
}

// start builds and runs an App; it is closed when the test ends.
func start(t *testing.T, cfg app.Config) (*app.App, <-chan error) {
	t.Helper()
	a, err := app.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return a, done
}

// enrollVerified enrolls a new key and answers the challenge through the
// service, as vma-enroll would; it returns the id and the key's
// authorized_keys blob.
func enrollVerified(t *testing.T, svc *enroll.Service, name string) (string, string) {
	t.Helper()
	pub, priv, err := sshkey.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	id := omatest.StartEnroll(t, svc, omatest.VMA{Name: name, Key: priv}).Verify()
	return id, strings.Fields(sshkey.AuthorizedKey(pub, ""))[1]
}

type adminClient struct {
	t     *testing.T
	base  string
	token string
}

func newAdmin(t *testing.T, a *app.App, tokenFile string) *adminClient {
	return &adminClient{t: t, base: "http://" + a.AdminAddr(), token: strings.TrimSpace(readFile(t, tokenFile))}
}

func (c *adminClient) do(method, path string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(nil))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if method == "POST" {
		req.Header.Set("Content-Type", "application/json")
		req.Body = io.NopCloser(strings.NewReader("{}"))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c *adminClient) json(method, path string, want int, v any) {
	c.t.Helper()
	code, b := c.do(method, path)
	if code != want {
		c.t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		c.t.Fatalf("%s %s: %v: %s", method, path, err, b)
	}
}

func (c *adminClient) text(path string) string {
	c.t.Helper()
	code, b := c.do("GET", path)
	if code != 200 {
		c.t.Fatalf("GET %s: %d: %s", path, code, b)
	}
	return string(b)
}

// sshBanner speaks the first line of SSH to addr and returns the answer's.
func sshBanner(t *testing.T, addr string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("SSH-2.0-apptest\r\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("read the SSH banner: %v", err)
	}
	return strings.TrimSpace(line)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
