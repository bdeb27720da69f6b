package browsertest

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// noRedirect is a client that shows redirects instead of following them.
func noRedirect() *http.Client {
	return &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// TestServeUIFlags runs the oma-server binary with --ui=false and with
// --admin-tls (no browser needed).
func TestServeUIFlags(t *testing.T) {
	t.Parallel()
	c := noRedirect()
	t.Run("ui off", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, "--ui=false")
		res, body := get(t, c, "http://"+srv.admin+"/")
		if res.StatusCode != http.StatusNotFound || !strings.Contains(body, `"not_found"`) {
			t.Errorf("GET / with --ui=false: %d %s, want the JSON 404", res.StatusCode, body)
		}
	})
	t.Run("ui on", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		res, _ := get(t, c, "http://"+srv.admin+"/pending")
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/signin") {
			t.Errorf("GET /pending: %d to %q, want 303 to /signin", res.StatusCode, res.Header.Get("Location"))
		}
		if res, body := get(t, c, "http://"+srv.admin+"/api/v1/admin/vma/pending"); res.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"unauthorized"`) {
			t.Errorf("admin API without a token: %d %s", res.StatusCode, body)
		}
	})
	t.Run("admin tls", func(t *testing.T) {
		t.Parallel()
		srv := startServerTLS(t)
		res, body := get(t, c, "https://"+srv.admin+"/signin")
		if res.StatusCode != 200 || res.TLS == nil || !strings.Contains(body, `id="token"`) {
			t.Fatalf("GET https://…/signin: %d (tls %v)", res.StatusCode, res.TLS != nil)
		}
		res, err := c.PostForm("https://"+srv.admin+"/signin", url.Values{"token": {srv.token}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		cookie := strings.Join(res.Header.Values("Set-Cookie"), "\n")
		if res.StatusCode != http.StatusSeeOther || !strings.Contains(cookie, "__Host-oma_ui_session=") || !strings.Contains(cookie, "Secure") {
			t.Errorf("sign-in over TLS: %d, cookie %q", res.StatusCode, cookie)
		}
	})
}

// startServerTLS starts oma-server with --admin-tls; its health is checked
// over HTTPS.
func startServerTLS(t *testing.T) *omaServer {
	t.Helper()
	return startServerWith(t, "https", "--admin-tls")
}
