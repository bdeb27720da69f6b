package vmaenroll

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/omatest"
)

// resultCall is one result request as the proxy saw it.
type resultCall struct {
	at   time.Time
	wait string // the wait the VMA asked for ("" for none)
}

// pollProxy is a real HTTPS reverse proxy in front of a real OMA that
// changes the long polls of the result endpoint the way servers and
// proxies in the field do, and records every result request.
type pollProxy struct {
	*httptest.Server
	mu    sync.Mutex
	calls []resultCall
}

// newPollProxy starts the proxy. rewrite gets the wait the VMA asked for
// and returns the one sent on ("" drops it).
func newPollProxy(t *testing.T, oma *omatest.OMA, rewrite func(wait string) string) *pollProxy {
	p := &pollProxy{}
	target := &url.URL{Scheme: "https", Host: oma.Public()}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
			if r.In.URL.Path != api.PathResult {
				return
			}
			q := r.Out.URL.Query()
			wait := q.Get("wait")
			p.mu.Lock()
			p.calls = append(p.calls, resultCall{at: time.Now(), wait: wait})
			p.mu.Unlock()
			if w := rewrite(wait); w == "" {
				q.Del("wait")
			} else {
				q.Set("wait", w)
			}
			r.Out.URL.RawQuery = q.Encode()
		},
		// The proxy trusts the OMA it fronts (its own test certificate).
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	p.Server = httptest.NewTLSServer(rp)
	t.Cleanup(p.Close)
	return p
}

func (p *pollProxy) fingerprint() string { return client.SPKIFingerprint(p.Certificate()) }

func (p *pollProxy) results() []resultCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]resultCall(nil), p.calls...)
}

// TestPlainPollingFallback runs vma-enroll through a proxy that keeps it
// from long polling: it must still get the approval, checking once per
// --poll-interval instead of in a tight loop.
func TestPlainPollingFallback(t *testing.T) {
	cases := map[string]struct {
		rewrite  func(string) string
		wantWait func(i int, wait string) bool
	}{
		// A proxy that drops the wait parameter: every answer comes at
		// once, so vma-enroll paces its polls itself.
		"answers at once": {
			rewrite:  func(string) string { return "" },
			wantWait: func(_ int, w string) bool { return w == "25s" },
		},
		// A server that refuses long polls (invalid_request for wait):
		// vma-enroll stops asking for them after the first refusal.
		"refuses long polls": {
			rewrite: func(w string) string {
				if w == "" || w == "0s" {
					return w
				}
				return "99999s"
			},
			wantWait: func(i int, w string) bool { return (i == 0) == (w == "25s") },
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			oma := omatest.Start(t, omatest.Options{})
			proxy := newPollProxy(t, oma, tc.rewrite)
			code := oma.Code()
			dir := t.TempDir()
			done, finished := make(chan result, 1), make(chan struct{})
			go func() {
				defer close(finished)
				done <- runVE(t, "", false, "--oma", strings.TrimPrefix(proxy.URL, "https://"), "--code", code,
					"--fingerprint", proxy.fingerprint(), "--config-dir", dir, "--poll-interval", "1s", "--timeout", "60s", "-o", "json")
			}()
			t.Cleanup(func() { <-finished }) // before dir is removed, even after a failure
			var id string
			deadline := time.Now().Add(20 * time.Second)
			for id == "" {
				if time.Now().After(deadline) {
					t.Fatal("vma-enroll did not reach the waiting state")
				}
				for _, e := range oma.Enrollments() {
					if e.Status == enroll.StatusAwaitingApproval {
						id = e.ID
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			// Let it poll for a while before the admin decides.
			waitFrom := time.Now()
			time.Sleep(3500 * time.Millisecond)
			oma.Approve(id)
			r := <-done
			if r.code != 0 || readResult(t, r).Status != "approved" {
				t.Fatalf("exit %d\nstdout %s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			calls := proxy.results()
			var during int
			for i, c := range calls {
				if !tc.wantWait(i, c.wait) {
					t.Errorf("result call %d asked for wait %q", i, c.wait)
				}
				if c.at.After(waitFrom) {
					during++
				}
			}
			// 3.5 s at one poll per second, and the one that saw the
			// approval: about five, never a tight loop.
			if during < 2 || during > 8 {
				t.Fatalf("%d result calls in the 3.5 s before the approval (poll interval 1s), %d in all", during, len(calls))
			}
		})
	}
}

// TestNoBurstBeforeTheTimeout: in the last second before --timeout, too
// short for a long poll, vma-enroll still paces its checks (it once sent
// them back to back until the rate limiter answered 429).
func TestNoBurstBeforeTheTimeout(t *testing.T) {
	oma := omatest.Start(t, omatest.Options{})
	proxy := newPollProxy(t, oma, func(w string) string { return w })
	r := runVE(t, "", false, "--oma", strings.TrimPrefix(proxy.URL, "https://"), "--code", oma.Code(),
		"--fingerprint", proxy.fingerprint(), "--config-dir", t.TempDir(), "--timeout", "2500ms", "-o", "json")
	if r.code != ExitTimeout || readResult(t, r).Status != StatusTimeout {
		t.Fatalf("exit %d, want %d (timeout)\nstdout %s\nstderr:\n%s", r.code, ExitTimeout, r.stdout, r.stderr)
	}
	// A 2s long poll, then at most a plain check or two in the last half
	// second.
	if calls := proxy.results(); len(calls) > 4 {
		t.Fatalf("%d result calls in a 2.5 s wait, want a long poll and a check or two", len(calls))
	}
}
