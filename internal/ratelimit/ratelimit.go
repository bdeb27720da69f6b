// Package ratelimit holds the per-client limits that the public port's two
// protocols share: HTTPS (the enrollment endpoints) and SSH (the embedded
// tunnel endpoint). Both count a client under the same key (Key: the
// address for IPv4, its /64 for IPv6), with token buckets (Limiter) for
// rates and per-key counters (Concurrent) for things held open at once.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Key is the key the per-client limits count a client address under:
// the address itself for IPv4, its /64 for IPv6, since one IPv6 client
// (a subscriber's usual allocation) can send from any of the 2^64
// addresses of its /64.
func Key(ip string) string {
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

// Limiter keeps one token bucket per key and forgets idle ones.
type Limiter struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	buckets map[string]*bucket
	lastGC  time.Time
	// inflight counts the attempts per key admitted by Begin and not yet
	// ended.
	inflight map[string]int
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// New returns a limiter of perSecond tokens a second per key, at most
// burst at once.
func New(perSecond float64, burst int) *Limiter {
	return &Limiter{limit: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}, lastGC: time.Now(), inflight: map[string]int{}}
}

func (l *Limiter) get(key string, now time.Time) *rate.Limiter {
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

// Take consumes one token for key, or returns how long to wait.
func (l *Limiter) Take(key string) (time.Duration, bool) {
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

// Has reports whether key has at least one token left, without taking it
// (a failure budget checked before an attempt and charged by Charge after
// it failed).
func (l *Limiter) Has(key string) bool {
	now := time.Now()
	return l.get(key, now).TokensAt(now) >= 1
}

// Charge consumes one token of key, even when that leaves the bucket in
// debt (a failure that already happened is counted in full).
func (l *Limiter) Charge(key string) {
	now := time.Now()
	l.get(key, now).ReserveN(now, 1) // takes a token, or runs into debt
}

// Begin admits an attempt for key while the tokens left exceed the
// attempts of key still in flight, or returns how long to wait; end
// finishes the attempt, consuming a token when it counted (a refused
// code). Checking for a token only before the attempt, and consuming one
// only after it failed, would let any number of concurrent attempts
// through before the first failure was counted.
func (l *Limiter) Begin(key string) (end func(counted bool), wait time.Duration, ok bool) {
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

// Concurrent bounds what each key holds open at once (long polls,
// connections not yet authenticated).
type Concurrent struct {
	mu  sync.Mutex
	max int
	n   map[string]int
}

// NewConcurrent allows max at once per key.
func NewConcurrent(max int) *Concurrent {
	return &Concurrent{max: max, n: map[string]int{}}
}

// Acquire takes one slot of key, or reports false when key holds max.
func (c *Concurrent) Acquire(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] >= c.max {
		return false
	}
	c.n[key]++
	return true
}

// Release gives back a slot Acquire took.
func (c *Concurrent) Release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key]--; c.n[key] <= 0 {
		delete(c.n, key)
	}
}

// Total counts the slots held now, over all keys.
func (c *Concurrent) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}
