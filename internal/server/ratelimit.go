package server

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/ratelimit"
)

// limitKey is the key the per-client limits count a client address under
// (its /64 for IPv6), shared with the SSH side of the public port.
func limitKey(ip string) string { return ratelimit.Key(ip) }

func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration, msg string) {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	s.metrics.rateLimited.Add(1)
	s.writeError(w, r, &httpError{code: api.CodeRateLimited, msg: msg + "; retry after " + strconv.Itoa(secs) + "s"})
}

// rateLimit applies the per-IP request budget of the public listener.
func (s *Server) rateLimit(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wait, ok := s.reqLimit.Take(limitKey(clientIP(r.Context()))); !ok {
			s.tooMany(w, r, wait, "too many requests from your address")
			return
		}
		h.ServeHTTP(w, r)
	})
}
