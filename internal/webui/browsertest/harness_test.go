package browsertest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// syncBuffer is a bytes.Buffer safe for a process writing while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// childEnv is the environment of the binaries: ours minus every setting
// that could change their behaviour.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OMA_") || strings.HasPrefix(k, "OMACTL_") || strings.HasPrefix(k, "VMA_ENROLL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "NO_COLOR=1")
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// omaServer is a running oma-server process on SQLite.
type omaServer struct {
	admin, public string // host:port
	dataDir       string
	token         string
	log           *syncBuffer
}

// startServer runs oma-server on free loopback ports with a fresh SQLite
// data directory and waits for its admin /health and its admin token.
func startServer(t *testing.T, extra ...string) *omaServer {
	t.Helper()
	return startServerWith(t, "http", extra...)
}

// startServerWith is startServer with the admin listener's scheme.
func startServerWith(t *testing.T, scheme string, extra ...string) *omaServer {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s := &omaServer{admin: freePort(t), public: freePort(t), dataDir: t.TempDir(), log: &syncBuffer{}}
		args := append([]string{"serve", "--data-dir", s.dataDir, "--db-driver", "sqlite",
			"--admin-listen", s.admin, "--public-listen", s.public, "--public-host", "127.0.0.1",
			"--tunnel-mode", "none", "--log-format", "text"}, extra...)
		cmd := exec.Command(bin("oma-server"), args...)
		cmd.Env = childEnv()
		cmd.Stdout, cmd.Stderr = s.log, s.log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		stop := func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
		if lastErr = waitHealthy(s, scheme, done); lastErr == nil {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("oma-server log:\n%s", s.log.String())
				}
			})
			return s
		}
		stop()
	}
	t.Fatalf("oma-server did not start: %v", lastErr)
	return nil
}

func waitHealthy(s *omaServer, scheme string, done <-chan struct{}) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("oma-server exited:\n%s", s.log.String())
		default:
		}
		if resp, err := hc.Get(scheme + "://" + s.admin + "/health"); err == nil {
			resp.Body.Close()
			if b, err := os.ReadFile(filepath.Join(s.dataDir, "admin.token")); err == nil && resp.StatusCode == 200 {
				s.token = strings.TrimSpace(string(b))
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("no healthy answer within 30s")
}

// chromiumPath finds the browser: OMA_TEST_CHROMIUM, else chromium on PATH.
func chromiumPath() (string, error) {
	if p := os.Getenv("OMA_TEST_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium on PATH (install it with: apt-get install -y chromium; or set OMA_TEST_CHROMIUM)")
}

// browser starts a fresh headless Chromium and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := chromiumPath()
	if err != nil {
		// CI installs Chromium (.ci/run): there its absence is a failure.
		if os.Getenv("CI") != "" || os.Getenv("OMA_TEST_BROWSER") == "1" {
			t.Fatalf("browser test: %v", err)
		}
		t.Skipf("SKIPPED browser test: %v", err)
	}
	out := &syncBuffer{}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.CombinedOutput(out),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium (%s) failed: %v\nits output:\n%s", path, err, out.String())
	}
	return ctx
}

// screenshots is where page screenshots go: OMA_UI_SCREENSHOTS or a temp dir.
func screenshots(t *testing.T) string {
	dir := os.Getenv("OMA_UI_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
