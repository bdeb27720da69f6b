package browsertest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// omaServer is a running oma-server process on SQLite.
type omaServer struct {
	admin, public string // host:port
	dataDir       string
	token         string
	log           *testbin.Buffer
}

// startServer runs oma-server on free loopback ports with a fresh SQLite
// data directory and waits for its admin /health and its admin token.
func startServer(t *testing.T, extra ...string) *omaServer {
	t.Helper()
	return startServerWith(t, "http", extra...)
}

// startServerWith is startServer with the admin listener's scheme
// ("https" with --admin-tls among extra).
func startServerWith(t *testing.T, scheme string, extra ...string) *omaServer {
	t.Helper()
	ts := testbin.StartServer(t, testbin.ServerOptions{Binary: bin("oma-server"), Args: extra})
	if got := strings.TrimSuffix(ts.AdminURL(), "://"+ts.Admin); got != scheme {
		t.Fatalf("the admin listener speaks %s, want %s (pass --admin-tls for https)", got, scheme)
	}
	return &omaServer{admin: ts.Admin, public: ts.Public, dataDir: ts.Opts.DataDir, token: ts.Token(), log: ts.Log}
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
		if os.Getenv("OMA_TEST_BROWSER") == "1" {
			t.Fatalf("browser test: %v", err)
		}
		testbin.Missing(t, "browser test: %v", err)
	}
	out := &testbin.Buffer{}
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
