package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyClientIP
	keyActor
)

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(keyRequestID).(string)
	return id
}

func clientIP(ctx context.Context) string {
	ip, _ := ctx.Value(keyClientIP).(string)
	return ip
}

// actor is the name of the admin token of the request ("" before auth).
// The context holds a pointer so that the request log, written by the
// outer middleware, sees what the inner auth middleware set.
func actor(ctx context.Context) string {
	if a, ok := ctx.Value(keyActor).(*string); ok {
		return *a
	}
	return ""
}

// ClientIP is the client address the listener resolved for r: the socket
// peer, or the X-Forwarded-For entry of a trusted proxy. Handlers mounted on
// the admin listener (the web UI) use it.
func ClientIP(r *http.Request) string { return clientIP(r.Context()) }

// SetActor records name as the actor of r for the request log.
func SetActor(r *http.Request, name string) {
	if a, ok := r.Context().Value(keyActor).(*string); ok {
		*a = name
	}
}

func meta(r *http.Request) enroll.Meta {
	return enroll.Meta{SourceIP: clientIP(r.Context()), UserAgent: r.UserAgent(), Actor: actor(r.Context())}
}

// statusRecorder remembers the status written, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// common wraps every handler of a listener: request id, client IP, panic
// recovery and one log line per request (method, path, status, duration;
// never headers, bodies or query strings, which may carry secrets).
func (s *Server) common(listener string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var b [8]byte
		rand.Read(b[:])
		rid := hex.EncodeToString(b[:])
		ip := s.resolveClientIP(r)
		ctx := context.WithValue(r.Context(), keyRequestID, rid)
		ctx = context.WithValue(ctx, keyClientIP, ip)
		ctx = context.WithValue(ctx, keyActor, new(string))
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w}
		rec.Header().Set("X-Request-Id", rid)
		rec.Header().Set(api.HeaderListener, listener)
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic in handler", "request_id", rid, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if rec.status == 0 {
					s.writeError(rec, r, fmt.Errorf("panic: %v", p))
				}
			}
			s.metrics.observeRequest(listener, r, rec.status, time.Since(start))
			s.log.Info("request", "listener", listener, "request_id", rid, "method", r.Method,
				"path", enroll.Printable(r.URL.Path), "status", rec.status, "duration_ms", time.Since(start).Milliseconds(),
				"client_ip", ip, "actor", actor(r.Context()))
		}()
		h.ServeHTTP(rec, r)
	})
}

// resolveClientIP takes the socket's peer address, or the right-most
// untrusted address of X-Forwarded-For when the peer is a trusted proxy.
func (s *Server) resolveClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !s.trusted(peer) {
		return peer.String()
	}
	xff := r.Header.Values("X-Forwarded-For")
	parts := strings.Split(strings.Join(xff, ","), ",")
	for i := len(parts) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(parts[i]))
		if err != nil {
			break
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a.String()
		}
		peer = a
	}
	return peer.String()
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// adminAuth requires a live admin token and records its name as the actor.
func (s *Server) adminAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="oma-admin"`)
			s.writeError(w, r, enroll.Errorf(enroll.CodeUnauthorized, "missing admin token: send 'Authorization: Bearer <token>' (the token is in <data-dir>/admin.token)"))
			return
		}
		name, err := s.svc.AuthenticateAdmin(r.Context(), tok)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="oma-admin", error="invalid_token"`)
			s.writeError(w, r, err)
			return
		}
		if a, ok := r.Context().Value(keyActor).(*string); ok {
			*a = name
		}
		h.ServeHTTP(w, r)
	})
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
