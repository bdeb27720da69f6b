package server

import (
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

// limitKey is the key the per-client limits count a client address under:
// the address itself for IPv4, its /64 for IPv6, since one IPv6 client
// (a subscriber's usual allocation) can send from any of the 2^64
// addresses of its /64.
func limitKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() || a.Is4In6() {
		return ip
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// limiter keeps one token bucket per client IP and forgets idle ones.
type limiter struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	buckets map[string]*bucket
	lastGC  time.Time
	// inflight counts the attempts per key admitted by begin and not yet
	// ended.
	inflight map[string]int
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(perSecond float64, burst int) *limiter {
	return &limiter{limit: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}, lastGC: time.Now(), inflight: map[string]int{}}
}

func (l *limiter) get(key string, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastGC) > time.Minute {
		for k, b := range l.buckets {
			// A bucket idle long enough to be full again carries no state.
			if now.Sub(b.seen) > 10*time.Minute {
				delete(l.buckets, k)
			}
		}
		l.lastGC = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	return b.lim
}

// take consumes one token for key, or returns how long to wait.
func (l *limiter) take(key string) (time.Duration, bool) {
	now := time.Now()
	r := l.get(key, now).ReserveN(now, 1)
	if !r.OK() {
		return time.Minute, false
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// begin admits an attempt for key while the tokens left exceed the
// attempts of key still in flight, or returns how long to wait; end
// finishes the attempt, consuming a token when it counted (a refused
// code). Checking for a token only before the attempt, and consuming one
// only after it failed, would let any number of concurrent attempts
// through before the first failure was counted.
func (l *limiter) begin(key string) (end func(counted bool), wait time.Duration, ok bool) {
	now := time.Now()
	lim := l.get(key, now)
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.inflight[key]
	if tokens := lim.TokensAt(now); tokens-float64(n) < 1 {
		if tokens >= 1 {
			return nil, time.Second, false // the attempts in flight hold the tokens
		}
		r := lim.ReserveN(now, 1)
		d := r.DelayFrom(now)
		r.CancelAt(now)
		return nil, d, false
	}
	l.inflight[key] = n + 1
	return func(counted bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if counted {
			lim.AllowN(time.Now(), 1)
		}
		if l.inflight[key]--; l.inflight[key] <= 0 {
			delete(l.inflight, key)
		}
	}, 0, true
}

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
		if wait, ok := s.reqLimit.take(limitKey(clientIP(r.Context()))); !ok {
			s.tooMany(w, r, wait, "too many requests from your address")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// waiters bounds concurrent long polls per IP.
type waiters struct {
	mu  sync.Mutex
	max int
	n   map[string]int
}

func (w *waiters) acquire(ip string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n[ip] >= w.max {
		return false
	}
	w.n[ip]++
	return true
}

// total counts the long polls being held now.
func (w *waiters) total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.n {
		n += c
	}
	return n
}

func (w *waiters) release(ip string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n[ip]--; w.n[ip] <= 0 {
		delete(w.n, ip)
	}
}
