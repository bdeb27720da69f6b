package webui_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/omatest"
	"github.com/oma-enroll/oma-enroll/internal/server"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/webui"
)

const wantCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// clock is a settable clock for the UI's session and rate-limit timing.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t        *testing.T
	svc      *enroll.Service
	admin    string // base URL of the admin listener
	token    string
	name     string // the token's name
	clock    *clock
	revoked  atomic.Int64 // revoke hook calls
	approved atomic.Int64 // approve hook calls
}

type options struct {
	noUI     bool
	adminTLS bool
}

// start runs a real server (SQLite store) with the UI mounted.
func start(t *testing.T, opts ...options) *env {
	t.Helper()
	var o options
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx := context.Background()
	db, _ := omatest.OpenStore(t, "sqlite")
	cert, err := server.LoadOrCreateCertificate("", "", t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	svc := enroll.New(db, enroll.Config{PollInterval: 50 * time.Millisecond}, make([]byte, 32), nil)
	cfg := server.Config{
		AdminListen: "127.0.0.1:0", PublicListen: "127.0.0.1:0", PublicHost: "127.0.0.1", TLS: cert,
		// Requests may name their client IP in X-Forwarded-For (rate-limit tests).
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}
	if o.adminTLS {
		cfg.AdminTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	e := &env{t: t, svc: svc, clock: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	cfg.Reactions = counter{e}
	srv, err := server.New(cfg, svc, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !o.noUI {
		ui, err := webui.New(webui.Config{Service: svc, Store: db, Actions: srv, Now: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		srv.SetUI(ui)
	}
	runCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := srv.Run(runCtx, nil); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	<-srv.Ready()
	t.Cleanup(func() { cancel(); <-stopped })
	e.name = "tester"
	e.token = omatest.FixtureAdminToken(t, svc, e.name)
	scheme := "http://"
	if o.adminTLS {
		scheme = "https://"
	}
	e.admin = scheme + srv.AdminAddr()
	return e
}

// counter counts the server's reactions (a tunnel driver would act on them).
type counter struct{ e *env }

func (c counter) OnApprove(*enroll.Enrollment) { c.e.approved.Add(1) }
func (c counter) OnRevoke(*enroll.Enrollment)  { c.e.revoked.Add(1) }

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	e   *env
	c   *http.Client
	ip  string // sent as X-Forwarded-For when set
	hdr http.Header
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, hdr: http.Header{}, c: &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}}
}

type resp struct {
	status int
	header http.Header
	body   string
}

func (r resp) location() string { return r.header.Get("Location") }

func (b *browser) do(method, path string, form url.Values) resp {
	b.e.t.Helper()
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.admin+path, rd)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range b.hdr {
		req.Header[k] = v
	}
	if b.ip != "" {
		req.Header.Set("X-Forwarded-For", b.ip)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(body)}
}

func (b *browser) get(path string) resp                   { return b.do(http.MethodGet, path, nil) }
func (b *browser) post(path string, form url.Values) resp { return b.do(http.MethodPost, path, form) }

// signIn signs in with tok and fails the test unless it worked.
func (b *browser) signIn(tok string) {
	b.e.t.Helper()
	r := b.post("/signin", url.Values{"token": {tok}, "next": {"/pending"}})
	if r.status != http.StatusSeeOther || r.location() != "/pending" {
		b.e.t.Fatalf("sign-in: %d to %q, want 303 to /pending\n%s", r.status, r.location(), r.body)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the session's CSRF token off a page.
func (b *browser) csrf() string {
	b.e.t.Helper()
	r := b.get("/pending")
	m := csrfRE.FindStringSubmatch(r.body)
	if m == nil {
		b.e.t.Fatalf("no CSRF token on /pending (%d):\n%s", r.status, r.body)
	}
	return m[1]
}

// enrollVMA enrolls and verifies a VMA through the service, as vma-enroll
// would through the public API, and returns its enrollment.
func (e *env) enrollVMA(name string) *enroll.Enrollment {
	e.t.Helper()
	_, priv, err := sshkey.Generate(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.enrollVMAKey(name, priv)
}

// enrollVMAKey is enrollVMA with the VMA's key pair given.
func (e *env) enrollVMAKey(name string, priv ed25519.PrivateKey) *enroll.Enrollment {
	e.t.Helper()
	ctx := context.Background()
	code, err := e.svc.CreatePairingCode(ctx, 0, "", enroll.Meta{Actor: "setup"})
	if err != nil {
		e.t.Fatal(err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	res, err := e.svc.Enroll(ctx, enroll.EnrollRequest{PairingCode: code.Code.Reveal(), PublicKey: sshkey.AuthorizedKey(pub, ""), Name: name, Version: "1.0"},
		enroll.Meta{SourceIP: "192.0.2.7"})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.svc.Verify(ctx, res.EnrollmentID, ed25519.Sign(priv, enroll.SignedMessage(res.EnrollmentID, res.Challenge)), enroll.Meta{SourceIP: "192.0.2.7"}); err != nil {
		e.t.Fatal(err)
	}
	en, err := e.svc.Get(ctx, res.EnrollmentID)
	if err != nil {
		e.t.Fatal(err)
	}
	return en
}

func (e *env) status(id string) enroll.Status {
	e.t.Helper()
	en, err := e.svc.Get(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return en.Status
}

func (e *env) events(t enroll.EventType) []enroll.AuditEvent {
	e.t.Helper()
	evs, err := e.svc.Audit(context.Background(), enroll.AuditFilter{EventType: t, Limit: 100})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

var pages = []string{"/", "/pending", "/active", "/pairing-code", "/audit", "/audit?type=approval&vma=x"}

func TestSignedOutPagesRedirectToSignIn(t *testing.T) {
	e := start(t)
	b := e.browser()
	for _, p := range pages {
		r := b.get(p)
		if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/signin?") {
			t.Errorf("GET %s signed out: %d to %q, want 303 to /signin", p, r.status, r.location())
		}
		if got := r.header.Get("Content-Security-Policy"); got != wantCSP {
			t.Errorf("GET %s: CSP = %q", p, got)
		}
	}
	// With a cookie the server does not know, too.
	u, _ := url.Parse(e.admin)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "oma_ui_session", Value: "forged"}})
	if r := b.get("/pending"); r.status != http.StatusSeeOther || !strings.Contains(r.location(), "ended=1") {
		t.Errorf("forged cookie: %d to %q", r.status, r.location())
	}
	r := b.get("/signin")
	if r.status != 200 || !strings.Contains(r.body, `id="token"`) {
		t.Fatalf("sign-in page: %d", r.status)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Cache-Control"} {
		if r.header.Get(h) == "" {
			t.Errorf("sign-in page lacks %s", h)
		}
	}
	if got := r.header.Get("Content-Security-Policy"); got != wantCSP {
		t.Errorf("CSP = %q, want %q", got, wantCSP)
	}
	if s := b.get("/ui/state"); s.status != http.StatusUnauthorized {
		t.Errorf("GET /ui/state signed out: %d, want 401", s.status)
	}
}

func TestSignedOutActionsAreRefused(t *testing.T) {
	e := start(t)
	en := e.enrollVMA("vma-one")
	b := e.browser()
	form := url.Values{"csrf": {"whatever"}, "confirmed": {"1"}, "ttl": {"10m"}, "notes": {"x"}, "reason": {"x"}}
	for _, p := range []string{"/pairing-code", "/pending/" + en.ID + "/approve", "/pending/" + en.ID + "/reject", "/active/" + en.ID + "/revoke", "/signout"} {
		if r := b.post(p, form); r.status != http.StatusForbidden {
			t.Errorf("POST %s signed out: %d, want 403", p, r.status)
		}
	}
	if got := e.status(en.ID); got != enroll.StatusAwaitingApproval {
		t.Errorf("status after refused actions = %s", got)
	}
	if n := len(e.events(enroll.EventPairingCodeGenerated)); n != 1 { // the one enrollVMA made
		t.Errorf("pairing codes generated = %d, want 1", n)
	}
}

func TestFormsNeedTheSessionCSRFToken(t *testing.T) {
	e := start(t)
	en := e.enrollVMA("vma-csrf")
	b := e.browser()
	b.signIn(e.token)
	other := e.browser()
	other.signIn(e.token)
	otherToken := other.csrf()
	good := b.csrf()
	if good == otherToken {
		t.Fatal("two sessions share a CSRF token")
	}
	for name, tok := range map[string]string{"missing": "", "wrong": strings.Repeat("A", len(good)), "other session's": otherToken, "short": good[:10]} {
		form := url.Values{"ttl": {"10m"}, "confirmed": {"1"}}
		if tok != "" {
			form.Set("csrf", tok)
		}
		if r := b.post("/pairing-code", form); r.status != http.StatusForbidden {
			t.Errorf("%s CSRF token: pairing code POST %d, want 403", name, r.status)
		}
		if r := b.post("/pending/"+en.ID+"/approve", form); r.status != http.StatusForbidden {
			t.Errorf("%s CSRF token: approve POST %d, want 403", name, r.status)
		}
	}
	if got := e.status(en.ID); got != enroll.StatusAwaitingApproval {
		t.Fatalf("approved without a valid CSRF token: %s", got)
	}
	// A browser that says the request is cross-site is refused even with the token.
	b.hdr.Set("Sec-Fetch-Site", "cross-site")
	if r := b.post("/pairing-code", url.Values{"csrf": {good}}); r.status != http.StatusForbidden {
		t.Errorf("cross-site POST: %d, want 403", r.status)
	}
	b.hdr.Set("Sec-Fetch-Site", "same-origin")
	if r := b.post("/pairing-code", url.Values{"csrf": {good}, "ttl": {"15m"}, "note": {"ok"}}); r.status != http.StatusSeeOther {
		t.Fatalf("with the token: %d, want 303", r.status)
	}
	evs := e.events(enroll.EventPairingCodeGenerated)
	if len(evs) != 2 || evs[1].ApprovedBy != e.name {
		t.Fatalf("pairing_code_generated events %+v, want a second one by %s", evs, e.name)
	}
	page := b.get("/pairing-code")
	if !strings.Contains(page.body, `id="pairing-code"`) || !strings.Contains(page.body, "15 minutes") {
		t.Errorf("pairing-code page does not show the new code:\n%s", page.body)
	}
}

func TestSignInWrongTokenAndRateLimit(t *testing.T) {
	e := start(t)
	b := e.browser()
	b.ip = "198.51.100.10"
	for i := 0; i < 5; i++ {
		r := b.post("/signin", url.Values{"token": {"oma_not-a-token"}})
		if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "not recognised") {
			t.Fatalf("wrong token #%d: %d", i+1, r.status)
		}
		if len(r.header.Values("Set-Cookie")) != 0 {
			t.Fatalf("wrong token set a cookie: %v", r.header.Values("Set-Cookie"))
		}
	}
	// The failures are spent: a wrong token is now answered 429.
	r := b.post("/signin", url.Values{"token": {"oma_still-not-a-token"}})
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("after 5 failures: %d (Retry-After %q), want 429 with Retry-After", r.status, r.header.Get("Retry-After"))
	}
	if b.get("/pending").status != http.StatusSeeOther {
		t.Fatal("a rate-limited sign-in opened a session")
	}
	// Another address is not affected.
	c := e.browser()
	c.ip = "198.51.100.11"
	c.signIn(e.token)
	// A minute later the first address may try again.
	e.clock.Advance(time.Minute)
	b.signIn(e.token)
}

// TestSignInRightTokenWhileFailuresLimited: the limit counts failures; it
// never refuses a correct token (issue 13, finding 8: five wrong tokens from
// 127.0.0.1 locked every admin on that address out).
func TestSignInRightTokenWhileFailuresLimited(t *testing.T) {
	e := start(t)
	b := e.browser()
	b.ip = "127.0.0.1"
	for i := 0; i < 6; i++ {
		b.post("/signin", url.Values{"token": {"oma_not-a-token"}})
	}
	if r := b.post("/signin", url.Values{"token": {"oma_not-a-token"}}); r.status != http.StatusTooManyRequests {
		t.Fatalf("wrong token after 6 failures: %d, want 429", r.status)
	}
	r := b.post("/signin", url.Values{"token": {e.token}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("right token after the failures: %d, want 303 (signed in)", r.status)
	}
	if p := b.get("/pending"); p.status != http.StatusOK {
		t.Fatalf("/pending after signing in: %d, want 200", p.status)
	}
}

func TestSessionCookie(t *testing.T) {
	t.Run("http", func(t *testing.T) {
		e := start(t)
		b := e.browser()
		r := b.post("/signin", url.Values{"token": {e.token}})
		c := sessionCookie(t, r, "oma_ui_session")
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/" {
			t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/, not Secure over plain HTTP", c)
		}
		if raw, err := base64URLLen(c.Value); err != nil || raw != 32 {
			t.Errorf("session id %q: %d bytes (%v), want 32 random bytes", c.Value, raw, err)
		}
	})
	t.Run("tls", func(t *testing.T) {
		e := start(t, options{adminTLS: true})
		b := e.browser()
		r := b.post("/signin", url.Values{"token": {e.token}})
		c := sessionCookie(t, r, "__Host-oma_ui_session")
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || !c.Secure || c.Path != "/" || c.Domain != "" {
			t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Secure, Path=/ under TLS", c)
		}
		if got := b.get("/pending"); got.status != 200 {
			t.Errorf("signed-in page over TLS: %d", got.status)
		}
	})
}

func sessionCookie(t *testing.T, r resp, name string) *http.Cookie {
	t.Helper()
	for _, line := range r.header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err == nil && c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v (status %d)", name, r.header.Values("Set-Cookie"), r.status)
	return nil
}

func base64URLLen(s string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return len(b), err
}

func TestSessionExpiry(t *testing.T) {
	e := start(t)
	t.Run("idle", func(t *testing.T) {
		b := e.browser()
		b.signIn(e.token)
		e.clock.Advance(29 * time.Minute)
		if r := b.get("/pending"); r.status != 200 {
			t.Fatalf("after 29 idle minutes: %d, want 200", r.status)
		}
		e.clock.Advance(29 * time.Minute)
		if r := b.get("/active"); r.status != 200 {
			t.Fatalf("29 minutes after the last page view: %d, want 200", r.status)
		}
		// Background refreshes do not keep a session alive.
		e.clock.Advance(20 * time.Minute)
		b.hdr.Set("X-OMA-Background", "1")
		if r := b.get("/ui/state"); r.status != 200 {
			t.Fatalf("background state after 20m: %d", r.status)
		}
		b.hdr.Del("X-OMA-Background")
		e.clock.Advance(11 * time.Minute)
		r := b.get("/pending")
		if r.status != http.StatusSeeOther || !strings.Contains(r.location(), "ended=1") {
			t.Fatalf("after 31 idle minutes: %d to %q, want the sign-in page", r.status, r.location())
		}
	})
	t.Run("absolute", func(t *testing.T) {
		b := e.browser()
		b.signIn(e.token)
		for i := 0; i < 35; i++ { // 35 × 20m = 11h40m of activity
			e.clock.Advance(20 * time.Minute)
			if r := b.get("/pending"); r.status != 200 {
				t.Fatalf("active session after %s: %d", time.Duration(i+1)*20*time.Minute, r.status)
			}
		}
		e.clock.Advance(20 * time.Minute) // 12h
		if r := b.get("/pending"); r.status != http.StatusSeeOther {
			t.Fatalf("after 12h: %d, want 303 to sign-in", r.status)
		}
	})
}

func TestRevokedTokenEndsItsSessions(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	tok, err := e.svc.CreateAdminToken(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signIn(tok.Reveal())
	if r := b.get("/pending"); r.status != 200 || !strings.Contains(r.body, "<strong>alice</strong>") {
		t.Fatalf("signed in as alice: %d", r.status)
	}
	csrf := b.csrf()
	if err := e.svc.RevokeAdminToken(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if r := b.post("/pairing-code", url.Values{"csrf": {csrf}}); r.status != http.StatusForbidden {
		t.Errorf("action after the token was revoked: %d, want 403", r.status)
	}
	if r := b.get("/pending"); r.status != http.StatusSeeOther {
		t.Errorf("page after the token was revoked: %d, want 303 to sign-in", r.status)
	}
	if r := b.post("/signin", url.Values{"token": {tok.Reveal()}}); r.status != http.StatusUnauthorized {
		t.Errorf("sign-in with the revoked token: %d, want 401", r.status)
	}
}

func TestApproveRejectRevokeWithoutJavaScript(t *testing.T) {
	e := start(t)
	one, two := e.enrollVMA("vma one.lab"), e.enrollVMA("vma-two")
	b := e.browser()
	b.signIn(e.token)
	csrf := b.csrf()

	page := html.UnescapeString(b.get("/pending").body)
	for _, en := range []*enroll.Enrollment{one, two} {
		for _, want := range []string{en.VMAName, en.VMAFingerprint, "192.0.2.7", `action="/pending/` + en.ID + `/approve"`} {
			if !strings.Contains(page, want) {
				t.Errorf("pending page lacks %q", want)
			}
		}
	}

	// Without confirmed=1 the server asks first and changes nothing.
	r := b.post("/pending/"+one.ID+"/approve", url.Values{"csrf": {csrf}, "notes": {"looks right"}})
	if r.status != 200 || !strings.Contains(r.body, "Approve vma one.lab?") || !strings.Contains(html.UnescapeString(r.body), one.VMAFingerprint) ||
		!strings.Contains(r.body, `name="confirmed" value="1"`) || !strings.Contains(r.body, `value="looks right"`) {
		t.Fatalf("unconfirmed approve: %d\n%s", r.status, r.body)
	}
	if got := e.status(one.ID); got != enroll.StatusAwaitingApproval {
		t.Fatalf("unconfirmed approve changed the status to %s", got)
	}

	r = b.post("/pending/"+one.ID+"/approve", url.Values{"csrf": {csrf}, "notes": {"looks right"}, "confirmed": {"1"}})
	if r.status != http.StatusSeeOther || r.location() != "/pending" {
		t.Fatalf("approve: %d to %q", r.status, r.location())
	}
	if got := e.status(one.ID); got != enroll.StatusApproved {
		t.Fatalf("status after approve = %s", got)
	}
	if page := b.get("/pending"); !strings.Contains(page.body, "Approved vma one.lab with tunnel port 9081") {
		t.Errorf("no confirmation message after approve:\n%s", page.body)
	}
	if e.approved.Load() != 1 {
		t.Errorf("approve hook called %d times, want 1 (the UI must go through the server's Approve)", e.approved.Load())
	}

	r = b.post("/pending/"+two.ID+"/reject", url.Values{"csrf": {csrf}, "reason": {"unknown VMA"}, "confirmed": {"1"}})
	if r.status != http.StatusSeeOther || e.status(two.ID) != enroll.StatusRejected {
		t.Fatalf("reject: %d, status %s", r.status, e.status(two.ID))
	}

	// Approving again is refused with the service's message, not a crash.
	r = b.post("/pending/"+two.ID+"/approve", url.Values{"csrf": {csrf}, "confirmed": {"1"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("approve of a rejected enrollment: %d", r.status)
	}
	if page := b.get("/pending"); !strings.Contains(page.body, "flash-error") || !strings.Contains(page.body, "it is rejected") {
		t.Errorf("no error message after a refused approve:\n%s", page.body)
	}

	active := b.get("/active")
	if !strings.Contains(active.body, "vma one.lab") || !strings.Contains(active.body, "9081") {
		t.Errorf("active page lacks the approved VMA:\n%s", active.body)
	}
	r = b.post("/active/"+one.ID+"/revoke", url.Values{"csrf": {csrf}, "reason": {"decommissioned"}, "confirmed": {"1"}})
	if r.status != http.StatusSeeOther || e.status(one.ID) != enroll.StatusRevoked {
		t.Fatalf("revoke: %d, status %s", r.status, e.status(one.ID))
	}
	if e.revoked.Load() != 1 {
		t.Errorf("revoke hook called %d times, want 1 (a live tunnel must be dropped)", e.revoked.Load())
	}

	for _, typ := range []enroll.EventType{enroll.EventApproval, enroll.EventRejection, enroll.EventRevocation} {
		evs := e.events(typ)
		if len(evs) != 1 || evs[0].ApprovedBy != e.name || evs[0].SourceIP != "127.0.0.1" || !strings.Contains(evs[0].UserAgent, "Go-http-client") {
			t.Errorf("%s events = %+v, want one by %s from 127.0.0.1", typ, evs, e.name)
		}
	}

	// The audit page lists them, filters by type and VMA, and checks the chain.
	audit := b.get("/audit")
	for _, want := range []string{`data-event="approval"`, `data-event="rejection"`, `data-event="revocation"`, "Chain verified"} {
		if !strings.Contains(audit.body, want) {
			t.Errorf("audit page lacks %q", want)
		}
	}
	filtered := b.get("/audit?type=rejection")
	if strings.Contains(filtered.body, `data-event="approval"`) || !strings.Contains(filtered.body, `data-event="rejection"`) {
		t.Errorf("type filter does not filter")
	}
	byVMA := b.get("/audit?vma=" + url.QueryEscape("vma-two"))
	if strings.Contains(byVMA.body, `data-vma="vma one.lab"`) || !strings.Contains(byVMA.body, `data-vma="vma-two"`) {
		t.Errorf("VMA filter does not filter")
	}
	if bad := b.get("/audit?since=yesterday"); bad.status != http.StatusBadRequest || !strings.Contains(bad.body, "neither a duration") {
		t.Errorf("bad since: %d", bad.status)
	}
}

func TestAuditPaging(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	for i := 0; i < 60; i++ {
		if _, err := e.svc.CreatePairingCode(ctx, 0, "", enroll.Meta{Actor: "pager"}); err != nil {
			t.Fatal(err)
		}
	}
	b := e.browser()
	b.signIn(e.token)
	first := b.get("/audit")
	if n := strings.Count(first.body, "<tr data-event="); n != 50 {
		t.Fatalf("first page has %d rows, want 50", n)
	}
	older := regexp.MustCompile(`href="(/audit\?before=\d+)" rel="next"`).FindStringSubmatch(first.body)
	if older == nil || !strings.Contains(first.body, `data-region="audit"`) {
		t.Fatalf("first page: no Older link or not refreshing:\n%s", first.body)
	}
	second := b.get(strings.ReplaceAll(older[1], "&amp;", "&"))
	if n := strings.Count(second.body, "<tr data-event="); n != 10 {
		t.Fatalf("second page has %d rows, want 10", n)
	}
	if strings.Contains(second.body, `rel="next"`) || !strings.Contains(second.body, `rel="prev"`) || strings.Contains(second.body, `data-region="audit"`) {
		t.Errorf("second page links wrong")
	}
	newer := regexp.MustCompile(`href="(/audit\?after=\d+)" rel="prev"`).FindStringSubmatch(second.body)
	back := b.get(newer[1])
	if n := strings.Count(back.body, "<tr data-event="); n != 50 || !strings.Contains(back.body, ">60</td>") {
		t.Errorf("newer page: %d rows", n)
	}
}

func TestStoredStringsAreEscaped(t *testing.T) {
	e := start(t)
	en := e.enrollVMA("odd name._-1")
	b := e.browser()
	b.signIn(e.token)
	csrf := b.csrf()
	evil := `<script>alert(1)</script><img src=x onerror=alert(2)>"'&`
	b.post("/pairing-code", url.Values{"csrf": {csrf}, "note": {evil}})
	b.post("/pending/"+en.ID+"/reject", url.Values{"csrf": {csrf}, "reason": {evil}, "confirmed": {"1"}})
	if e.status(en.ID) != enroll.StatusRejected {
		t.Fatal("reject failed")
	}
	for _, p := range []string{"/audit", "/audit?vma=" + url.QueryEscape(evil)} {
		body := b.get(p).body
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
			t.Errorf("%s renders stored text as markup", p)
		}
		if p == "/audit" && !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s does not show the note as text", p)
		}
	}
}

func TestStateAndRegionRefresh(t *testing.T) {
	e := start(t)
	b := e.browser()
	b.signIn(e.token)
	b.hdr.Set("X-OMA-Background", "1")
	var before struct {
		Pending struct {
			Count   int    `json:"count"`
			Version string `json:"version"`
		} `json:"pending"`
	}
	r := b.get("/ui/state")
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("state: %d %s", r.status, r.header.Get("Content-Type"))
	}
	json.Unmarshal([]byte(r.body), &before)
	en := e.enrollVMA("vma-new")
	after := before
	json.Unmarshal([]byte(b.get("/ui/state").body), &after)
	if after.Pending.Count != before.Pending.Count+1 || after.Pending.Version == before.Pending.Version {
		t.Errorf("state did not change with a new enrollment: %+v → %+v", before, after)
	}
	region := b.get("/pending?region=pending")
	if !strings.HasPrefix(strings.TrimSpace(region.body), `<section data-region="pending" data-version="`+after.Pending.Version+`"`) ||
		!strings.Contains(region.body, en.ID) || strings.Contains(region.body, "<html") {
		t.Errorf("region refresh:\n%s", region.body)
	}
}

func TestNextStaysOnThePage(t *testing.T) {
	e := start(t)
	for next, want := range map[string]string{
		"/active": "/active", "/audit?type=approval": "/audit?type=approval", "//evil.example/pending": "/pending",
		"https://evil.example/": "/pending", `/\evil.example`: "/pending", "/signout": "/pending",
	} {
		b := e.browser()
		r := b.post("/signin", url.Values{"token": {e.token}, "next": {next}})
		if r.location() != want {
			t.Errorf("next=%q: redirect to %q, want %q", next, r.location(), want)
		}
	}
}

func TestAPIRoutesUnchanged(t *testing.T) {
	for _, noUI := range []bool{false, true} {
		e := start(t, options{noUI: noUI})
		b := e.browser()
		if r := b.get("/api/v1/admin/vma/pending"); r.status != http.StatusUnauthorized || !strings.Contains(r.body, `"unauthorized"`) {
			t.Errorf("noUI=%v: API without a token: %d %s", noUI, r.status, r.body)
		}
		b.hdr.Set("Authorization", "Bearer "+e.token)
		if r := b.get("/api/v1/admin/vma/pending"); r.status != 200 || !strings.Contains(r.body, `"enrollments"`) {
			t.Errorf("noUI=%v: API with a token: %d %s", noUI, r.status, r.body)
		}
		if r := b.get("/api/v1/nope"); r.status != http.StatusNotFound || !strings.Contains(r.body, `"not_found"`) {
			t.Errorf("noUI=%v: unknown API path: %d %s", noUI, r.status, r.body)
		}
		if r := b.get("/health"); r.status != 200 {
			t.Errorf("noUI=%v: /health %d", noUI, r.status)
		}
		r := b.get("/pending")
		if noUI && (r.status != http.StatusNotFound || !strings.Contains(r.body, `"not_found"`)) {
			t.Errorf("without the UI /pending: %d %s, want the JSON 404", r.status, r.body)
		}
		if !noUI && r.status != http.StatusSeeOther {
			t.Errorf("with the UI, /pending with only a bearer token: %d, want 303 to sign-in", r.status)
		}
	}
}

func TestAssetsAreLocal(t *testing.T) {
	e := start(t)
	b := e.browser()
	page := b.get("/signin").body
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) == 0 {
		t.Fatal("no asset references on the sign-in page")
	}
	for _, m := range refs {
		ref := strings.ReplaceAll(m[1], "&amp;", "&")
		if strings.HasPrefix(ref, "#") {
			continue
		}
		if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
			t.Errorf("sign-in page refers to %q outside the server", ref)
			continue
		}
		if r := b.get(ref); r.status != 200 {
			t.Errorf("GET %s: %d", ref, r.status)
		} else if strings.Contains(r.body, "http://") || strings.Contains(r.body, "https://") {
			if !strings.HasSuffix(strings.Split(ref, "?")[0], ".svg") { // the SVG namespace URI is not fetched
				t.Errorf("%s mentions an external URL", ref)
			}
		}
	}
	for path, ct := range map[string]string{"/static/app.js": "text/javascript", "/static/app.css": "text/css", "/favicon.ico": "image/svg+xml"} {
		r := b.get(path)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), ct) || r.header.Get("Content-Security-Policy") != wantCSP {
			t.Errorf("%s: %d %q", path, r.status, r.header.Get("Content-Type"))
		}
	}
	if r := b.get("/no-such-page"); r.status != http.StatusNotFound || r.header.Get("Content-Security-Policy") != wantCSP {
		t.Errorf("unknown page: %d", r.status)
	}
}

// TestPendingShowsReplacements: the pending page says when approving an
// enrollment revokes an approved VMA, by name or by key, in the row and in
// the approval's confirmation text; the API's pending list carries the same
// in "replaces" (issue 13, finding 3).
func TestPendingShowsReplacements(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	_, priv, err := sshkey.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := e.enrollVMAKey("vma-a", priv)
	if _, err := e.svc.Approve(ctx, a.ID, "", enroll.Meta{Actor: "setup"}); err != nil {
		t.Fatal(err)
	}
	clone := e.enrollVMAKey("vma-clone", priv)
	again := e.enrollVMA("vma-a")
	plain := e.enrollVMA("vma-new")
	b := e.browser()
	b.signIn(e.token)
	page := html.UnescapeString(b.get("/pending").body)
	row := func(id string) string {
		i := strings.Index(page, `data-id="`+id+`"`)
		if i < 0 {
			t.Fatalf("no row for %s", id)
		}
		j := strings.Index(page[i:], "</tr>")
		return page[i : i+j]
	}
	if r := row(clone.ID); !strings.Contains(r, "Replaces approved <strong>vma-a</strong> (same key): approving revokes it.") ||
		!strings.Contains(r, "It revokes the approved vma-a (same key).") {
		t.Errorf("the clone's row does not say it replaces vma-a by key:\n%s", r)
	}
	if r := row(again.ID); !strings.Contains(r, "Replaces approved <strong>vma-a</strong>: approving revokes it.") {
		t.Errorf("the re-enrollment's row does not say it replaces vma-a:\n%s", r)
	}
	if r := row(plain.ID); strings.Contains(r, "data-replaces") {
		t.Errorf("a new VMA's row claims to replace one:\n%s", r)
	}

	req, _ := http.NewRequest(http.MethodGet, e.admin+"/api/v1/admin/vma/pending", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var list struct {
		Enrollments []struct {
			ID       string `json:"id"`
			Replaces []struct {
				EnrollmentID string `json:"enrollment_id"`
				VMAName      string `json:"vma_name"`
				SameName     bool   `json:"same_name"`
				SameKey      bool   `json:"same_key"`
			} `json:"replaces"`
		} `json:"enrollments"`
	}
	if err := json.NewDecoder(res.Body).Decode(&list); err != nil || len(list.Enrollments) != 3 {
		t.Fatalf("API pending: %v, %d enrollments", err, len(list.Enrollments))
	}
	for _, en := range list.Enrollments {
		switch en.ID {
		case clone.ID:
			if len(en.Replaces) != 1 || en.Replaces[0].EnrollmentID != a.ID || !en.Replaces[0].SameKey || en.Replaces[0].SameName {
				t.Errorf("API: the clone replaces %+v, want vma-a by key", en.Replaces)
			}
		case again.ID:
			if len(en.Replaces) != 1 || en.Replaces[0].VMAName != "vma-a" || !en.Replaces[0].SameName || en.Replaces[0].SameKey {
				t.Errorf("API: the re-enrollment replaces %+v, want vma-a by name", en.Replaces)
			}
		case plain.ID:
			if len(en.Replaces) != 0 {
				t.Errorf("API: a new VMA replaces %+v", en.Replaces)
			}
		}
	}
}
