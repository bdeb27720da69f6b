// Package webui is the admin web page that oma-server serves on its admin
// listener: sign-in with an admin token, the pending list with approve and
// reject, the active list with revoke, pairing codes, and the audit trail.
//
// It is server-rendered (html/template, embedded templates and assets, a
// little plain JavaScript that only enhances: list refresh by short polling,
// countdowns, copy buttons, confirm dialogs) and goes through the same
// service code as the JSON API, so omactl and the page cannot disagree.
// Every form works without JavaScript (POST, then redirect). Nothing is
// fetched from elsewhere at run time, and a strict Content-Security-Policy
// forbids it.
//
// Sessions are kept in memory (see session.go): a restart signs everyone
// out, and several instances behind a load balancer need sticky sessions.
package webui

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/server"
)

// ContentSecurityPolicy is sent with every response of the UI.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Actions are the state-changing admin operations, with the server's side
// effects (metrics, the tunnel driver's reactions); *server.Server
// implements them.
type Actions interface {
	PairingCode(ctx context.Context, ttl time.Duration, note string, m enroll.Meta) (*api.PairingCodeResponse, error)
	Approve(ctx context.Context, id, notes string, m enroll.Meta) (*enroll.Enrollment, error)
	Reject(ctx context.Context, id, reason string, m enroll.Meta) (*enroll.Enrollment, error)
	Revoke(ctx context.Context, id, reason string, m enroll.Meta) (*enroll.Enrollment, error)
	// Bulk decides several enrollments, each on its own (docs/fleet.md).
	Bulk(ctx context.Context, action string, ids []string, text string, m enroll.Meta) (*api.BulkResponse, error)
}

// Service is what the pages read through the enrollment service
// (*enroll.Service implements it).
type Service interface {
	AuthenticateAdmin(ctx context.Context, token string) (string, error)
	Get(ctx context.Context, id string) (*enroll.Enrollment, error)
	Pending(ctx context.Context) ([]enroll.Enrollment, error)
	PendingWithReplacements(ctx context.Context) ([]enroll.Enrollment, map[string][]enroll.Replacement, error)
	Active(ctx context.Context) ([]enroll.Connection, error)
	PairingCodes(ctx context.Context, all bool) ([]enroll.PairingCode, error)
	Audit(ctx context.Context, f enroll.AuditFilter) ([]enroll.AuditEvent, error)
	VerifyAudit(ctx context.Context) (*enroll.ChainReport, error)
}

// Store is what the UI reads from the store directly: the audit head (the
// version of the audit page) and a session's admin token (still valid?).
type Store interface {
	AuditHead(ctx context.Context) (int64, string, error)
	AdminTokenByHash(ctx context.Context, hash string) (*enroll.AdminToken, error)
}

// Config configures the UI. Zero values take the defaults.
type Config struct {
	Service Service // lists, audit, admin token checks
	Store   Store   // audit head, session tokens
	Actions Actions // approve, reject, revoke, pairing codes
	Log     *slog.Logger
	Now     func() time.Time // the clock; time.Now when nil

	// CodeTTL and MaxCodeTTL are the service's default and longest
	// pairing-code lifetimes, offered on the pairing-code page
	// (enroll.Defaults when zero).
	CodeTTL, MaxCodeTTL time.Duration

	IdleTimeout time.Duration // a session ends after this long without a page view (30m)
	MaxAge      time.Duration // and this long after sign-in in any case (12h)
	// SignInFailuresPerMinute and SignInFailureBurst bound failed sign-ins
	// per client IP (5 per minute, burst 5).
	SignInFailuresPerMinute float64
	SignInFailureBurst      int
	// PollInterval is how often open pages ask whether their list changed (3s).
	PollInterval time.Duration

	// ClientIP and SetActor connect the UI to the listener's middleware
	// (server.ClientIP and server.SetActor when nil).
	ClientIP func(*http.Request) string
	SetActor func(*http.Request, string)
}

func (c *Config) fill() {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.CodeTTL == 0 {
		c.CodeTTL = enroll.Defaults().CodeTTL
	}
	if c.MaxCodeTTL == 0 {
		c.MaxCodeTTL = enroll.Defaults().MaxCodeTTL
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Minute
	}
	if c.MaxAge == 0 {
		c.MaxAge = 12 * time.Hour
	}
	if c.SignInFailuresPerMinute == 0 {
		c.SignInFailuresPerMinute = 5
	}
	if c.SignInFailureBurst == 0 {
		c.SignInFailureBurst = 5
	}
	if c.PollInterval == 0 {
		c.PollInterval = 3 * time.Second
	}
	if c.ClientIP == nil {
		c.ClientIP = server.ClientIP
	}
	if c.SetActor == nil {
		c.SetActor = server.SetActor
	}
}

// UI is the admin web page, an http.Handler to mount at "/".
type UI struct {
	cfg      Config
	svc      Service
	store    Store
	act      Actions
	log      *slog.Logger
	sessions *sessions
	limiter  *signInLimiter
	pages    map[string]*template.Template
	assets   *assets
	mux      *http.ServeMux

	chainMu sync.Mutex
	chain   chainStatus
}

// New builds the UI.
func New(cfg Config) (*UI, error) {
	if cfg.Service == nil || cfg.Store == nil || cfg.Actions == nil {
		return nil, errors.New("webui: Service, Store and Actions are required")
	}
	cfg.fill()
	u := &UI{
		cfg: cfg, svc: cfg.Service, store: cfg.Store, act: cfg.Actions, log: cfg.Log,
		sessions: newSessions(cfg.IdleTimeout, cfg.MaxAge),
		limiter:  newSignInLimiter(cfg.SignInFailuresPerMinute, cfg.SignInFailureBurst),
	}
	var err error
	if u.assets, err = loadAssets(); err != nil {
		return nil, err
	}
	if u.pages, err = parseTemplates(); err != nil {
		return nil, err
	}
	u.mux = u.routes()
	return u, nil
}

func (u *UI) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/{name}", u.assets.serve)
	mux.HandleFunc("GET /favicon.ico", u.assets.favicon)
	mux.HandleFunc("GET /signin", u.handleSignInPage)
	mux.HandleFunc("POST /signin", u.handleSignIn)
	mux.Handle("POST /signout", u.action(u.handleSignOut))
	mux.Handle("GET /{$}", u.page(func(w http.ResponseWriter, r *http.Request, se *session) {
		http.Redirect(w, r, "/pending", http.StatusSeeOther)
	}))
	mux.Handle("GET /pending", u.page(u.handlePending))
	mux.Handle("POST /pending/{id}/approve", u.action(u.handleApprove))
	mux.Handle("POST /pending/{id}/reject", u.action(u.handleReject))
	mux.Handle("POST /pending/bulk", u.action(u.handleBulk))
	mux.Handle("GET /active", u.page(u.handleActive))
	mux.Handle("POST /active/{id}/revoke", u.action(u.handleRevoke))
	mux.Handle("GET /pairing-code", u.page(u.handlePairingPage))
	mux.Handle("POST /pairing-code", u.action(u.handlePairingCode))
	mux.Handle("GET /audit", u.page(u.handleAudit))
	mux.HandleFunc("GET /ui/state", u.handleState)
	mux.HandleFunc("/", u.handleNotFound)
	return mux
}

// ServeHTTP serves the UI with its security headers.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	u.mux.ServeHTTP(w, r)
}

func (u *UI) now() time.Time { return u.cfg.Now().UTC() }

// background reports whether r is a refresh the page's script made by
// itself; those do not count as activity for the idle timeout.
func background(r *http.Request) bool { return r.Header.Get("X-OMA-Background") == "1" }

// errNoSession means the request carries no live session.
var errNoSession = errors.New("no live session")

// session returns the request's live session. The admin token the session
// was opened with is looked up on every request: a revoked token ends it.
func (u *UI) session(r *http.Request) (*session, error) {
	id := readSessionCookie(r)
	if id == "" {
		return nil, errNoSession
	}
	se, ok := u.sessions.get(id, u.now(), !background(r))
	if !ok {
		return nil, errNoSession
	}
	tok, err := u.store.AdminTokenByHash(r.Context(), se.TokenHash)
	if err != nil {
		if errors.Is(err, enroll.ErrNotFound) {
			u.sessions.delete(se.key)
			return nil, errNoSession
		}
		return nil, err
	}
	if tok.RevokedAt != nil || tok.Name != se.Actor {
		u.log.Info("web UI session ended: its admin token was revoked", "actor", se.Actor)
		u.sessions.delete(se.key)
		return nil, errNoSession
	}
	u.cfg.SetActor(r, se.Actor)
	return se, nil
}

func (u *UI) meta(r *http.Request, se *session) enroll.Meta {
	return enroll.Meta{Actor: se.Actor, SourceIP: u.cfg.ClientIP(r), UserAgent: r.UserAgent()}
}

type sessionHandler func(w http.ResponseWriter, r *http.Request, se *session)

// page requires a session; without one it redirects to the sign-in page.
func (u *UI) page(h sessionHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		se, err := u.session(r)
		if errors.Is(err, errNoSession) {
			q := url.Values{"next": {r.URL.RequestURI()}}
			if readSessionCookie(r) != "" {
				clearSessionCookie(w, r)
				q.Set("ended", "1")
			}
			if background(r) {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/signin?"+q.Encode(), http.StatusSeeOther)
			return
		}
		if err != nil {
			u.serverError(w, r, err)
			return
		}
		h(w, r, se)
	})
}

// action guards a state-changing POST: same-origin, a live session and
// the session's CSRF token, or 403 and nothing done.
func (u *UI) action(h sessionHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(r) {
			u.message(w, r, nil, http.StatusForbidden, "Request refused", "The request did not come from this page (cross-site request).")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, api.MaxBodyBytes)
		if err := r.ParseForm(); err != nil {
			u.message(w, r, nil, http.StatusBadRequest, "Bad request", "The form could not be read.")
			return
		}
		se, err := u.session(r)
		if errors.Is(err, errNoSession) {
			if readSessionCookie(r) != "" {
				clearSessionCookie(w, r)
			}
			u.message(w, r, nil, http.StatusForbidden, "Not signed in", "Your session has ended or you are not signed in, so nothing was changed. Sign in and try again.")
			return
		}
		if err != nil {
			u.serverError(w, r, err)
			return
		}
		if !validCSRF(se, r.PostForm.Get("csrf")) {
			u.log.Warn("web UI request without a valid CSRF token refused", "actor", se.Actor, "path", enroll.Printable(r.URL.Path), "client_ip", u.cfg.ClientIP(r))
			u.message(w, r, se, http.StatusForbidden, "Request refused", "The form's security token is missing or stale, so nothing was changed. Reload the page and try again.")
			return
		}
		h(w, r, se)
	})
}

// sameOrigin refuses requests a browser marks as cross-site. Browsers send
// Sec-Fetch-Site; Origin is "null" under the listener's no-referrer policy,
// so a real one is compared only when present. The CSRF token is the
// defence that does not depend on the browser.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		ou, err := url.Parse(o)
		return err == nil && strings.EqualFold(ou.Host, r.Host)
	}
	return true
}

// safeNext keeps a post-sign-in redirect on one of the UI's pages.
func safeNext(s string) string {
	p, err := url.Parse(s)
	if err != nil || p.Scheme != "" || p.Host != "" || p.Opaque != "" || p.User != nil {
		return "/pending"
	}
	switch p.Path {
	case "/pending", "/active", "/pairing-code":
		return p.Path
	case "/audit":
		if q := p.Query().Encode(); q != "" {
			return "/audit?" + q
		}
		return "/audit"
	}
	return "/pending"
}

func (u *UI) redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (u *UI) serverError(w http.ResponseWriter, r *http.Request, err error) {
	status := api.HTTPStatus(enroll.ErrorCode(err))
	if status < 500 {
		status = http.StatusInternalServerError
	}
	u.log.Error("web UI request failed", "path", enroll.Printable(r.URL.Path), "err", err)
	msg := "Something went wrong on the server; the log has the details. Try again shortly."
	if enroll.ErrorCode(err) == enroll.CodeUnavailable {
		msg = "The database is unavailable. Try again shortly."
	}
	if background(r) {
		w.WriteHeader(status)
		return
	}
	u.message(w, r, nil, status, "Server error", msg)
}

func (u *UI) handleNotFound(w http.ResponseWriter, r *http.Request) {
	u.message(w, r, nil, http.StatusNotFound, "Not found", "There is no page at this address.")
}

// stateJSON is the answer of GET /ui/state: one version per list, so that
// open pages fetch a list again only when it changed.
type stateJSON struct {
	Pending listState `json:"pending"`
	Active  listState `json:"active"`
	Audit   listState `json:"audit"`
}

type listState struct {
	Count   int    `json:"count"`
	Version string `json:"version"`
}

func (u *UI) handleState(w http.ResponseWriter, r *http.Request) {
	writeJSON := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	_, err := u.session(r)
	if errors.Is(err, errNoSession) {
		writeJSON(http.StatusUnauthorized, api.ErrorBody{Error: api.ErrorDetail{Code: enroll.CodeUnauthorized, Message: "not signed in"}})
		return
	}
	if err != nil {
		u.log.Error("web UI state failed", "err", err)
		writeJSON(api.HTTPStatus(enroll.ErrorCode(err)), api.ErrorBody{Error: api.ErrorDetail{Code: enroll.ErrorCode(err), Message: enroll.ErrorMessage(err)}})
		return
	}
	ctx := r.Context()
	var st stateJSON
	pending, err := u.svc.Pending(ctx)
	if err == nil {
		st.Pending = listState{Count: len(pending), Version: pendingVersion(pending)}
		var conns []enroll.Connection
		if conns, err = u.svc.Active(ctx); err == nil {
			st.Active = listState{Count: len(conns), Version: activeVersion(conns)}
			var head int64
			if head, _, err = u.store.AuditHead(ctx); err == nil {
				st.Audit = listState{Count: int(head), Version: strconv.FormatInt(head, 10)}
			}
		}
	}
	if err != nil {
		u.log.Error("web UI state failed", "err", err)
		writeJSON(api.HTTPStatus(enroll.ErrorCode(err)), api.ErrorBody{Error: api.ErrorDetail{Code: enroll.ErrorCode(err), Message: enroll.ErrorMessage(err)}})
		return
	}
	writeJSON(http.StatusOK, st)
}
