package endpoint

// What a peer of the public port can make the embedded SSH endpoint do,
// bounded. Before authentication, per client address (ratelimit.Key: the
// address, or its /64 for IPv6, as the HTTP limits count it): how many
// connections it holds at the sniffing stage at once, how fast it opens
// SSH connections, how many failed logins it may have; a refused login
// costs at most one bounded log line per connection and a counter. After
// authentication, per connection: how many requests a VMA may have refused
// (the first few are audited one by one, the rest in one summary, and the
// connection is closed past a cap) and how many forward channels it holds
// open at once. Every string a peer chose is sanitised and cut before it is
// logged, stored or echoed.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/ratelimit"
)

// Limits bounds what peers can make the endpoint do. Zero fields take the
// defaults in parentheses.
type Limits struct {
	// ConnPerSecond and ConnBurst bound new SSH connections per client
	// address (5/s, burst 30).
	ConnPerSecond float64
	ConnBurst     int
	// AuthFailuresPerMinute and AuthFailureBurst bound refused logins per
	// client address (10/min, burst 10); past them the address's SSH
	// connections are closed before the handshake until the budget refills.
	AuthFailuresPerMinute float64
	AuthFailureBurst      int
	// PreAuthPerAddr bounds the connections of one client address that are
	// not authenticated yet, at the public port's sniffing stage (32): SSH
	// connections until their login succeeds, TLS ones until the server
	// answers the ClientHello.
	PreAuthPerAddr int
	// AuditedRefusals is how many refused requests of one connection are
	// audited and logged one by one (3); the rest are audited as one summary
	// with their count when the connection ends.
	AuditedRefusals int
	// MaxRefusals closes a connection at its MaxRefusals-th refused request
	// (10).
	MaxRefusals int
	// MaxChannels bounds the forward channels one connection holds open at
	// once (64).
	MaxChannels int
}

func (l *Limits) fill() {
	if l.ConnPerSecond == 0 {
		l.ConnPerSecond = 5
	}
	if l.ConnBurst == 0 {
		l.ConnBurst = 30
	}
	if l.AuthFailuresPerMinute == 0 {
		l.AuthFailuresPerMinute = 10
	}
	if l.AuthFailureBurst == 0 {
		l.AuthFailureBurst = 10
	}
	if l.PreAuthPerAddr == 0 {
		l.PreAuthPerAddr = 32
	}
	if l.AuditedRefusals == 0 {
		l.AuditedRefusals = 3
	}
	if l.MaxRefusals == 0 {
		l.MaxRefusals = 10
	}
	if l.MaxChannels == 0 {
		l.MaxChannels = 64
	}
}

// SniffTimeout is how long the public port waits for a new connection's
// first bytes before closing it (oma-server serve uses it).
const SniffTimeout = 5 * time.Second

// Bounds of the strings a peer chooses, as they are logged, audited or
// echoed.
const (
	maxUserText = 64  // an SSH user name
	maxHostText = 100 // a requested forward host
	maxWhatText = 240 // a refusal's description
	maxErrText  = 160 // a handshake error
)

// clip makes s safe to log or store: non-printing characters become '?',
// and a string longer than n bytes is cut and ends in "...".
func clip(s string, n int) string {
	if len(s) <= n {
		return enroll.Sanitize(s, n)
	}
	return enroll.Sanitize(s, n-3) + "..."
}

// Stats counts what the limits refused since the endpoint started
// (exported as Prometheus counters by oma-server).
type Stats struct {
	// ConnRateLimited: SSH connections closed before the handshake because
	// their address opened too many.
	ConnRateLimited uint64
	// AuthLocked: SSH connections closed because their address used up its
	// failed-login budget.
	AuthLocked uint64
	// PreAuthCapped: public-port connections closed at the sniffing stage
	// because their address held too many unauthenticated ones.
	PreAuthCapped uint64
	// AuthFailures: refused login attempts (wrong user, key type or key).
	AuthFailures uint64
	// RequestsRefused: refused forwards and channels of logged-in VMAs.
	RequestsRefused uint64
	// ClosedForRefusals: tunnels closed at MaxRefusals.
	ClosedForRefusals uint64
}

type endpointLimits struct {
	conns    *ratelimit.Limiter
	authFail *ratelimit.Limiter
	preAuth  *preAuthGate

	connRateLimited, authLocked, authFailures atomic.Uint64
	requestsRefused, closedForRefusals        atomic.Uint64
}

func newEndpointLimits(l Limits) *endpointLimits {
	return &endpointLimits{
		conns:    ratelimit.New(l.ConnPerSecond, l.ConnBurst),
		authFail: ratelimit.New(l.AuthFailuresPerMinute/60, l.AuthFailureBurst),
		preAuth:  newPreAuthGate(l.PreAuthPerAddr),
	}
}

// Stats returns the endpoint's limit counters.
func (e *Endpoint) Stats() Stats {
	l := e.lim
	return Stats{
		ConnRateLimited:   l.connRateLimited.Load(),
		AuthLocked:        l.authLocked.Load(),
		PreAuthCapped:     l.preAuth.capped.Load(),
		AuthFailures:      l.authFailures.Load(),
		RequestsRefused:   l.requestsRefused.Load(),
		ClosedForRefusals: l.closedForRefusals.Load(),
	}
}

// admitConn decides, before the SSH handshake, whether the address may
// open one more connection: within its connection rate and with failed
// logins left. A refused connection is closed without a word (and without
// a log line: the counters say it).
func (e *Endpoint) admitConn(key string) bool {
	if _, ok := e.lim.conns.Take(key); !ok {
		e.lim.connRateLimited.Add(1)
		e.log.Debug("tunnel connection refused: too many from the address", "address", key)
		return false
	}
	if !e.lim.authFail.Has(key) {
		e.lim.authLocked.Add(1)
		e.log.Debug("tunnel connection refused: too many failed logins from the address", "address", key)
		return false
	}
	return true
}

// errLoginRefused is what a refused login attempt returns to the SSH
// library: fixed, so nothing the client chose ends up in an error string.
var errLoginRefused = errors.New("tunnel login refused")

// loginAttempts collects the refused login attempts of one connection,
// for its single log line.
type loginAttempts struct {
	key    string // the client address's limit key
	n      int
	user   string // the first refused user name, clipped
	fp     string // the first refused key's fingerprint
	reason string
}

// failed records a refused attempt and charges the address's budget; when
// the budget is gone it closes the connection, so one connection cannot
// spend more than what is left.
func (e *Endpoint) failed(nc net.Conn, a *loginAttempts, user, fp, reason string) error {
	a.n++
	if a.n == 1 {
		a.user, a.fp, a.reason = clip(user, maxUserText), fp, reason
	}
	e.lim.authFailures.Add(1)
	e.lim.authFail.Charge(a.key)
	if !e.lim.authFail.Has(a.key) {
		nc.Close()
	}
	return errLoginRefused
}

// logHandshakeEnd writes the one line of a connection that did not get in.
func (e *Endpoint) logHandshakeEnd(remote string, a *loginAttempts, err error) {
	if a.n == 0 {
		// Scanners and health checks: no login was tried.
		e.log.Debug("tunnel handshake ended before a login", "remote", remote, "err", clip(err.Error(), maxErrText))
		return
	}
	e.log.Info("tunnel login refused", "remote", remote, "user", a.user, "key", a.fp,
		"reason", a.reason, "attempts", a.n)
}

// refuse answers a refused request of a logged-in VMA: the first
// AuditedRefusals of the connection are logged and audited one by one,
// later ones only counted (summarizeRefusals audits them when the
// connection ends), and the MaxRefusals-th closes the connection. It runs
// in the connection's serving goroutine only.
func (e *Endpoint) refuse(ctx context.Context, tc *tunnelConn, what string, meta enroll.Meta, log *slog.Logger) {
	what = clip(what, maxWhatText)
	e.lim.requestsRefused.Add(1)
	tc.refusals++
	lim := e.cfg.Limits
	if tc.refusals <= lim.AuditedRefusals {
		log.Warn("tunnel request refused", "refused", what)
		if err := e.svc.TunnelRefused(ctx, tc.id, what, meta); err != nil {
			log.Warn("audit refusal", "err", err)
		}
	} else {
		tc.lastRefused = what
	}
	if tc.refusals == lim.MaxRefusals {
		e.lim.closedForRefusals.Add(1)
		log.Warn("tunnel closed: too many refused requests", "refusals", tc.refusals)
		tc.close(fmt.Sprintf("closed after %d refused requests", tc.refusals))
	}
}

// summarizeRefusals audits, as one event, the refusals of a connection
// that were not audited one by one.
func (e *Endpoint) summarizeRefusals(ctx context.Context, tc *tunnelConn, meta enroll.Meta, log *slog.Logger) {
	n := tc.refusals - e.cfg.Limits.AuditedRefusals
	if n <= 0 {
		return
	}
	log.Warn("tunnel requests refused (not audited one by one)", "count", n, "last", tc.lastRefused)
	if err := e.svc.TunnelRefusalsSummary(ctx, tc.id, n, tc.lastRefused, meta); err != nil {
		log.Warn("audit refusal summary", "err", err)
	}
}

// takeChannel reserves one of the connection's forward channels, or
// reports false at MaxChannels; releaseChannel gives it back. A channel
// refused for the cap is counted, logged once per connection and not
// audited: a busy VMA may meet the cap without doing anything wrong, so
// it does not count toward MaxRefusals either.
func (e *Endpoint) takeChannel(tc *tunnelConn, log *slog.Logger) bool {
	if tc.channels.Add(1) > int32(e.cfg.Limits.MaxChannels) {
		tc.channels.Add(-1)
		e.lim.requestsRefused.Add(1)
		if !tc.capLogged {
			tc.capLogged = true
			log.Warn("tunnel forward refused: too many open channels on this connection", "max", e.cfg.Limits.MaxChannels)
		}
		return false
	}
	return true
}

func (tc *tunnelConn) releaseChannel() { tc.channels.Add(-1) }

// forwardTarget is HOST:PORT of a direct-tcpip request for messages, with
// the host clipped.
func forwardTarget(host string, port uint32) string {
	return net.JoinHostPort(clip(host, maxHostText), strconv.Itoa(int(port)))
}

// --- the public port's sniffing stage ---

// preAuthGate bounds the connections of each client address that are not
// authenticated yet.
type preAuthGate struct {
	slots  *ratelimit.Concurrent
	capped atomic.Uint64
}

func newPreAuthGate(max int) *preAuthGate {
	return &preAuthGate{slots: ratelimit.NewConcurrent(max)}
}

// admit takes a slot for c's address, or reports false (c is then to be
// closed).
func (g *preAuthGate) admit(c net.Conn) (*preAuthSlot, bool) {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		host = c.RemoteAddr().String()
	}
	key := ratelimit.Key(host)
	if !g.slots.Acquire(key) {
		g.capped.Add(1)
		return nil, false
	}
	return &preAuthSlot{g: g, key: key}, true
}

type preAuthSlot struct {
	g    *preAuthGate
	key  string
	once sync.Once
}

func (s *preAuthSlot) release() {
	s.once.Do(func() { s.g.slots.Release(s.key) })
}

// sshPreAuthConn holds its slot until the login succeeded (Endpoint.Serve
// calls authenticated) or the connection ends.
type sshPreAuthConn struct {
	*peekedConn
	slot *preAuthSlot
}

func (c *sshPreAuthConn) authenticated() { c.slot.release() }

// Unwrap returns the connection under the slot (tunnel.Abort finds the TCP
// connection through it).
func (c *sshPreAuthConn) Unwrap() net.Conn { return c.peekedConn }

func (c *sshPreAuthConn) Close() error {
	c.slot.release()
	return c.peekedConn.Close()
}

// tlsPreAuthConn holds its slot until the server first writes (its answer
// to a complete ClientHello) or the connection ends: HTTP's own limits
// take over from there.
type tlsPreAuthConn struct {
	*peekedConn
	slot *preAuthSlot
}

func (c *tlsPreAuthConn) Write(b []byte) (int, error) {
	c.slot.release()
	return c.peekedConn.Write(b)
}

// Unwrap returns the connection under the slot.
func (c *tlsPreAuthConn) Unwrap() net.Conn { return c.peekedConn }

func (c *tlsPreAuthConn) Close() error {
	c.slot.release()
	return c.peekedConn.Close()
}

// markAuthenticated releases the pre-authentication slot of nc, if it has
// one.
func markAuthenticated(nc net.Conn) {
	if c, ok := nc.(interface{ authenticated() }); ok {
		c.authenticated()
	}
}
