package webui

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// signInLimiter bounds failed sign-ins per client IP: each failure takes a
// token from the IP's bucket; with the bucket empty every wrong token from
// that IP is answered 429 until it refills. A right token always signs in.
type signInLimiter struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	buckets map[string]*rate.Limiter
	seen    map[string]time.Time
	lastGC  time.Time
}

func newSignInLimiter(perMinute float64, burst int) *signInLimiter {
	return &signInLimiter{limit: rate.Limit(perMinute / 60), burst: burst,
		buckets: map[string]*rate.Limiter{}, seen: map[string]time.Time{}}
}

func (l *signInLimiter) bucket(ip string, now time.Time) *rate.Limiter {
	if now.Sub(l.lastGC) > time.Minute {
		for k, t := range l.seen {
			if now.Sub(t) > time.Hour {
				delete(l.buckets, k)
				delete(l.seen, k)
			}
		}
		l.lastGC = now
	}
	b, ok := l.buckets[ip]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[ip] = b
	}
	l.seen[ip] = now
	return b
}

// blocked reports whether ip has no failure left, and how long to wait.
func (l *signInLimiter) blocked(ip string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(ip, now)
	if b.TokensAt(now) >= 1 {
		return 0, false
	}
	r := b.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	if d < time.Second {
		d = time.Second
	}
	return d, true
}

// fail records a failed sign-in from ip.
func (l *signInLimiter) fail(ip string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bucket(ip, now).AllowN(now, 1)
}
