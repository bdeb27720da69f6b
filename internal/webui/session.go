package webui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

// Sessions live in this process's memory: a restart signs everyone out, and
// several oma-server instances behind a load balancer need sticky sessions
// for the UI (the JSON API is stateless and needs nothing). The cookie
// carries only a random 256-bit id; the map is keyed by its SHA-256, and a
// session holds the SHA-256 of the admin token it was opened with (never
// the token), which is looked up again on every request so that revoking
// the token ends its sessions at once.

const (
	cookieName       = "oma_ui_session"
	secureCookieName = "__Host-oma_ui_session" // under TLS: Secure, Path=/, no Domain
	maxSessions      = 10000
)

// flash is a one-time message shown on the next page.
type flash struct {
	Kind string // "ok" or "error"
	Text string
}

// session is one signed-in browser.
type session struct {
	key        string // SHA-256 of the cookie value
	Actor      string // the admin token's name
	TokenHash  string // SHA-256 of the admin token, as the store keeps it
	CSRF       string
	Created    time.Time
	LastActive time.Time
	Flashes    []flash
	// Code is the last pairing code this session generated, shown on the
	// pairing-code page until it expires (it is nowhere else in plain).
	Code *api.PairingCodeResponse
	// CodeTTL is the lifetime that code was given.
	CodeTTL time.Duration
}

// sessions is the in-memory session table.
type sessions struct {
	mu     sync.Mutex
	m      map[string]*session
	idle   time.Duration
	maxAge time.Duration
	lastGC time.Time
}

func newSessions(idle, maxAge time.Duration) *sessions {
	return &sessions{m: map[string]*session{}, idle: idle, maxAge: maxAge}
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("webui: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashKey(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// create opens a session and returns the cookie value (shown only here).
func (s *sessions) create(actor, tokenHash string, now time.Time) string {
	id := randomToken()
	se := &session{key: hashKey(id), Actor: actor, TokenHash: tokenHash, CSRF: randomToken(), Created: now, LastActive: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gc(now)
	if len(s.m) >= maxSessions {
		// Drop the least recently active session rather than refuse a
		// sign-in with a valid token.
		var oldest *session
		for _, o := range s.m {
			if oldest == nil || o.LastActive.Before(oldest.LastActive) {
				oldest = o
			}
		}
		delete(s.m, oldest.key)
	}
	s.m[se.key] = se
	return id
}

// gc drops expired sessions, at most once a minute. Called with mu held.
func (s *sessions) gc(now time.Time) {
	if now.Sub(s.lastGC) < time.Minute {
		return
	}
	s.lastGC = now
	for k, se := range s.m {
		if s.expired(se, now) {
			delete(s.m, k)
		}
	}
}

func (s *sessions) expired(se *session, now time.Time) bool {
	return now.Sub(se.LastActive) >= s.idle || now.Sub(se.Created) >= s.maxAge
}

// get returns a copy of the live session with cookie value id; activity
// (false for background polls) moves its idle deadline.
func (s *sessions) get(id string, now time.Time, activity bool) (*session, bool) {
	if id == "" {
		return nil, false
	}
	key := hashKey(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[key]
	if !ok {
		return nil, false
	}
	if s.expired(se, now) {
		delete(s.m, key)
		return nil, false
	}
	if activity {
		se.LastActive = now
	}
	c := *se
	c.Flashes = append([]flash(nil), se.Flashes...)
	return &c, true
}

// update changes the stored session under the lock.
func (s *sessions) update(key string, fn func(*session)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if se, ok := s.m[key]; ok {
		fn(se)
	}
}

// takeFlashes removes and returns the session's pending messages.
func (s *sessions) takeFlashes(key string) []flash {
	var out []flash
	s.update(key, func(se *session) { out, se.Flashes = se.Flashes, nil })
	return out
}

func (s *sessions) addFlash(key, kind, text string) {
	s.update(key, func(se *session) {
		if len(se.Flashes) < 10 {
			se.Flashes = append(se.Flashes, flash{Kind: kind, Text: text})
		}
	})
}

func (s *sessions) delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

// validCSRF compares the submitted token with the session's in constant time.
func validCSRF(se *session, got string) bool {
	if se == nil || got == "" || len(got) != len(se.CSRF) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(se.CSRF)) == 1
}

func sessionCookieName(r *http.Request) string {
	if r.TLS != nil {
		return secureCookieName
	}
	return cookieName
}

func readSessionCookie(r *http.Request) string {
	c, err := r.Cookie(sessionCookieName(r))
	if err != nil {
		return ""
	}
	return c.Value
}

func setSessionCookie(w http.ResponseWriter, r *http.Request, id string) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookieName(r), Value: id, Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

func clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookieName(r), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}
