// Package endpoint is the OMA's side of the VMA tunnel in the embedded
// mode, linked by oma-server only: the SSH endpoint that shares the public
// port with HTTPS (demux.go), its limits on unauthenticated and approved
// peers (limits.go) and the listener side of the TLS data path
// (tlsdata.go). The VMA's side is package vmaclient; what both share
// (algorithms, bulk copies, the data path protocol) is package tunnel.
package endpoint

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/ratelimit"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
)

// Config configures the embedded SSH endpoint.
type Config struct {
	HostKey ssh.Signer
	User    string // the only accepted SSH user (vma_tunnel)
	// NBDTarget is the only direct-tcpip destination allowed (127.0.0.1:10809).
	NBDTarget string
	// RecheckEvery is how often live tunnels are checked against the
	// database, so a revocation on any instance closes them (500ms).
	RecheckEvery time.Duration
	// KeepaliveEvery is the server-side keepalive period (30s); three
	// unanswered ones close the connection.
	KeepaliveEvery time.Duration
	// SeenEvery throttles last_seen_at writes (15s).
	SeenEvery time.Duration
	// HandshakeTimeout cuts clients that do not finish authentication (10s).
	HandshakeTimeout time.Duration
	// Limits bound what peers can make the endpoint do (limits.go).
	Limits Limits
	// BulkGCPercent is GOGC while forwarded connections carry data (400;
	// negative leaves GOGC alone). See tunnel/copy.go.
	BulkGCPercent int
}

func (c *Config) fill() {
	if c.User == "" {
		c.User = contract.TunnelUser
	}
	if c.NBDTarget == "" {
		c.NBDTarget = contract.NBDTarget
	}
	if c.RecheckEvery == 0 {
		c.RecheckEvery = 500 * time.Millisecond
	}
	if c.KeepaliveEvery == 0 {
		c.KeepaliveEvery = 30 * time.Second
	}
	if c.SeenEvery == 0 {
		c.SeenEvery = 15 * time.Second
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	c.Limits.fill()
	if c.BulkGCPercent == 0 {
		c.BulkGCPercent = 400
	}
}

// Endpoint is the embedded SSH server of the VMA tunnels.
type Endpoint struct {
	cfg Config
	svc *enroll.Service
	log *slog.Logger
	ssh *ssh.ServerConfig
	lim *endpointLimits

	mu    sync.Mutex
	conns map[string]map[*tunnelConn]bool // live connections by enrollment id
	wg    sync.WaitGroup
	gc    *tunnel.BulkGC // GOGC while forwards carry data (tunnel/copy.go)
	// data holds the live TLS data streams by enrollment id (tlsdata.go);
	// stopping refuses new ones at shutdown.
	data     map[string]map[*dataConn]bool
	stopping bool
	// hostKeys is what the handshake presents and a rotation announces
	// (hostkeys.go).
	hostKeys atomic.Pointer[hostKeySet]
}

type tunnelConn struct {
	id string
	// key and keyFP are the key this connection logged in with: once the
	// VMA rotated it away, the connection lasts only while the OMA still
	// accepts it (the rotation's grace; recheck).
	key, keyFP string
	conn       *ssh.ServerConn
	closed     chan struct{}
	once       sync.Once
	reason     string
	fwd        forwardState

	// refusals and lastRefused are touched by the serving goroutine only;
	// channels counts the open forward channels (limits.go).
	refusals    int
	lastRefused string
	capLogged   bool
	channels    atomic.Int32

	seenMu   sync.Mutex
	lastSeen time.Time

	announcedFlag // told of the host keys of a rotation (hostkeys.go)
}

func (t *tunnelConn) close(reason string) {
	t.once.Do(func() {
		t.reason = reason
		close(t.closed)
		// The reverse port first: once the VMA sees its connection end, the
		// port must already be gone.
		t.fwd.closeAll()
		t.conn.Close()
	})
}

// Permission extension keys carrying the identity from the auth callback
// to the connection (never re-derived from "the last key tried").
const (
	extEnrollmentID = "oma-enrollment-id"
	extTunnelPort   = "oma-tunnel-port"
	extVMAName      = "oma-vma-name"
	extKey          = "oma-key" // the authorized_keys line that logged in
	extKeyFP        = "oma-key-fingerprint"
)

// New builds the endpoint.
func New(cfg Config, svc *enroll.Service, log *slog.Logger) *Endpoint {
	cfg.fill()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Endpoint{cfg: cfg, svc: svc, log: log, conns: map[string]map[*tunnelConn]bool{}, lim: newEndpointLimits(cfg.Limits), gc: &tunnel.BulkGC{Percent: cfg.BulkGCPercent}}
	sc := &ssh.ServerConfig{
		Config:                  tunnel.AlgorithmsConfig(tunnel.Ciphers()),
		PublicKeyAuthAlgorithms: []string{ssh.KeyAlgoED25519},
		MaxAuthTries:            6,
		ServerVersion:           "SSH-2.0-oma-enroll",
	}
	e.ssh = sc // its host key is added per connection (SetHostKeys)
	e.SetHostKeys(cfg.HostKey, nil)
	return e
}

// authorize is the public-key check of one connection. When the database
// cannot answer, it closes the connection instead of refusing the key: the
// VMA then sees a dropped connection and retries, rather than a refusal it
// would take for a revocation. A refusal is recorded in a (one log line per
// connection, limits.go) and charged to the address's failure budget.
func (e *Endpoint) authorize(nc net.Conn, a *loginAttempts) func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
	return func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		fp := ssh.FingerprintSHA256(key)
		if meta.User() != e.cfg.User {
			return nil, e.failed(nc, a, meta.User(), fp, "not the tunnel user")
		}
		if key.Type() != ssh.KeyAlgoED25519 {
			return nil, e.failed(nc, a, meta.User(), fp, "not an ssh-ed25519 key")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		id, err := e.svc.AuthorizeTunnelKey(ctx, string(ssh.MarshalAuthorizedKey(key)))
		if err != nil {
			if enroll.ErrorCode(err) != enroll.CodeUnauthorized {
				e.log.Warn("tunnel key check failed; dropping the connection so the VMA retries", "remote", nc.RemoteAddr().String(), "err", err)
				nc.Close()
				return nil, errLoginRefused
			}
			return nil, e.failed(nc, a, meta.User(), fp, "key not approved (unknown, revoked, superseded or expired)")
		}
		return &ssh.Permissions{Extensions: map[string]string{
			extEnrollmentID: id.EnrollmentID,
			extTunnelPort:   strconv.Itoa(id.TunnelPort),
			extVMAName:      id.VMAName,
			extKey:          string(ssh.MarshalAuthorizedKey(key)),
			extKeyFP:        id.Fingerprint,
		}}, nil
	}
}

// Run watches live tunnels against the database until ctx ends, then
// closes them all.
func (e *Endpoint) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.RecheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			e.mu.Lock()
			e.stopping = true
			e.mu.Unlock()
			e.closeData("")
			e.mu.Lock()
			for _, set := range e.conns {
				for c := range set {
					c.close("server shutting down")
				}
			}
			e.mu.Unlock()
			e.wg.Wait()
			return
		case <-t.C:
			e.recheck(ctx)
		}
	}
}

// recheck closes tunnels whose enrollment is no longer approved, whichever
// instance changed it, or whose key expired (oma-server --key-max-age),
// and SSH tunnels and TLS data streams of a key the
// VMA rotated away once the OMA stopped accepting it (its grace ended, or
// the VMA used the new key): one query for all live tunnels, one more per
// rotated-away key still in use.
func (e *Endpoint) recheck(ctx context.Context) {
	ids := e.liveIDs() // SSH tunnels and TLS data streams (tlsdata.go)
	if len(ids) == 0 {
		return
	}
	st, err := e.svc.TunnelKeyStates(ctx, ids)
	if err != nil {
		e.log.Warn("tunnel recheck failed; keeping tunnels until the database answers", "err", err)
		return
	}
	const rotatedAway = "the VMA rotated its key and the previous key's grace ended"
	for _, id := range ids {
		if st[id].Status != enroll.StatusApproved {
			e.Disconnect(id, "enrollment "+string(st[id].Status))
			continue
		}
		if st[id].Expired {
			e.Disconnect(id, "the VMA's key expired (key max age + grace)")
			continue
		}
		// stale reports whether key (of fingerprint fp), which logged in
		// for id, is no longer accepted for id; asked once per key.
		checked := map[string]bool{}
		stale := func(key, fp string) bool {
			if key == "" || fp == "" || st[id].Fingerprint == "" || fp == st[id].Fingerprint {
				return false
			}
			if v, ok := checked[key]; ok {
				return v
			}
			who, err := e.svc.AuthorizeTunnelKey(ctx, key)
			v := enroll.ErrorCode(err) == enroll.CodeUnauthorized || (err == nil && who.EnrollmentID != id)
			checked[key] = v
			return v
		}
		for _, c := range e.live(id) {
			if stale(c.key, c.keyFP) {
				c.close(rotatedAway)
			}
		}
		for _, d := range e.liveData(id) {
			if stale(d.key, d.keyFP) {
				e.log.Info("tunnel data stream closed", "enrollment_id", id, "key_fingerprint", d.keyFP, "reason", rotatedAway)
				d.close()
			}
		}
	}
}

// Disconnect closes the live tunnels of an enrollment on this instance.
func (e *Endpoint) Disconnect(id, reason string) {
	e.closeData(id)
	for _, c := range e.live(id) {
		c.close(reason)
	}
}

func (e *Endpoint) live(id string) []*tunnelConn {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*tunnelConn, 0, len(e.conns[id]))
	for c := range e.conns[id] {
		out = append(out, c)
	}
	return out
}

// Live counts the tunnels this instance holds.
func (e *Endpoint) Live() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, set := range e.conns {
		n += len(set)
	}
	return n
}

// Connected reports whether this instance holds a live tunnel of id.
func (e *Endpoint) Connected(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.conns[id]) > 0
}

// Serve runs the SSH protocol on one accepted connection.
func (e *Endpoint) Serve(ctx context.Context, nc net.Conn) {
	e.wg.Add(1)
	defer e.wg.Done()
	defer nc.Close()
	remote := nc.RemoteAddr().String()
	remoteIP, _, _ := net.SplitHostPort(remote)
	attempts := &loginAttempts{key: ratelimit.Key(remoteIP)}
	if !e.admitConn(attempts.key) {
		return
	}
	nc.SetDeadline(time.Now().Add(e.cfg.HandshakeTimeout))
	sc := *e.ssh // per connection: the key check needs this connection
	sc.PublicKeyCallback = e.authorize(nc, attempts)
	sc.AddHostKey(e.hostKeys.Load().current)                                         // the current one until a rotation's switch
	conn, chans, reqs, err := ssh.NewServerConn(&tunnel.BulkReadConn{Conn: nc}, &sc) // tunnel/copy.go: bulk reads while data flows
	if err != nil {
		e.logHandshakeEnd(remote, attempts, err)
		return
	}
	markAuthenticated(nc)
	nc.SetDeadline(time.Time{})
	id := conn.Permissions.Extensions[extEnrollmentID]
	port, _ := strconv.Atoi(conn.Permissions.Extensions[extTunnelPort])
	meta := enroll.Meta{SourceIP: remoteIP, UserAgent: string(conn.ClientVersion())}
	log := e.log.With("enrollment_id", id, "vma_name", conn.Permissions.Extensions[extVMAName], "remote", remote)

	tc := &tunnelConn{id: id, conn: conn, closed: make(chan struct{}),
		key: conn.Permissions.Extensions[extKey], keyFP: conn.Permissions.Extensions[extKeyFP]}
	e.mu.Lock()
	if e.conns[id] == nil {
		e.conns[id] = map[*tunnelConn]bool{}
	}
	e.conns[id][tc] = true
	e.mu.Unlock()
	dbctx := context.WithoutCancel(ctx)
	if err := e.svc.TunnelConnected(dbctx, id, remote, meta); err != nil {
		log.Warn("tunnel refused after login", "err", err)
		e.remove(tc)
		conn.Close()
		return
	}
	log.Info("tunnel connected")
	e.announceHostKeys(tc) // during a host key rotation's overlap

	e.serveConn(dbctx, tc, reqs, chans, port, meta, log)
	tc.close("closed by the VMA") // no-op when closed for another reason
	tc.fwd.closeAll()
	last := e.remove(tc)
	e.summarizeRefusals(dbctx, tc, meta, log)
	if err := e.svc.TunnelDisconnected(dbctx, id, tc.reason, last, meta); err != nil {
		log.Warn("record disconnection", "err", err)
	}
	log.Info("tunnel disconnected", "reason", tc.reason)
}

// remove forgets tc and reports whether it was the enrollment's last tunnel.
func (e *Endpoint) remove(tc *tunnelConn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.conns[tc.id], tc)
	if len(e.conns[tc.id]) == 0 {
		delete(e.conns, tc.id)
		return true
	}
	return false
}

// serveConn runs one tunnel in the connection's own goroutine: its global
// requests, its channel requests and the server's keepalives, until the
// connection ends (the library then closes both channels). One loop
// instead of a goroutine each keeps an idle tunnel small (bench row 4).
// A keepalive waits for its reply in a short-lived goroutine, so a peer
// that stops answering is noticed: three unanswered probes close it.
func (e *Endpoint) serveConn(ctx context.Context, tc *tunnelConn, reqs <-chan *ssh.Request, chans <-chan ssh.NewChannel, port int, meta enroll.Meta, log *slog.Logger) {
	tick := time.NewTicker(e.cfg.KeepaliveEvery)
	defer tick.Stop()
	var probe chan error // the keepalive in flight, if any
	missed := 0
	for reqs != nil || chans != nil {
		select {
		case req, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			e.globalRequest(ctx, tc, req, port, meta, log)
		case nch, ok := <-chans:
			if !ok {
				chans = nil
				continue
			}
			e.newChannel(ctx, tc, nch, meta, log)
		case <-tick.C:
			if probe != nil {
				if missed++; missed >= 3 {
					tc.close("keepalive timeout")
				}
				continue
			}
			probe = make(chan error, 1)
			go func(out chan<- error) {
				_, _, err := tc.conn.SendRequest("keepalive@openssh.com", true, nil)
				out <- err
			}(probe)
		case err := <-probe:
			probe = nil
			if err != nil {
				tc.close("keepalive failed")
				continue
			}
			missed = 0
			if err := e.svc.TunnelSeen(ctx, tc.id); err != nil {
				log.Warn("record keepalive", "err", err)
			}
		}
	}
}

type forwardState struct {
	mu sync.Mutex
	ln net.Listener
}

func (f *forwardState) holding() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ln != nil
}

func (f *forwardState) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln != nil {
		f.ln.Close()
		f.ln = nil
	}
}

type tcpipForward struct {
	Addr string
	Port uint32
}

type forwardedTCPIP struct {
	Addr       string
	Port       uint32
	OriginAddr string
	OriginPort uint32
}

type directTCPIP struct {
	Host       string
	Port       uint32
	OriginHost string
	OriginPort uint32
}

func (e *Endpoint) globalRequest(ctx context.Context, tc *tunnelConn, req *ssh.Request, port int, meta enroll.Meta, log *slog.Logger) {
	fwd := &tc.fwd
	switch req.Type {
	case "keepalive@openssh.com":
		req.Reply(true, nil)
		e.throttledSeen(ctx, tc, log)
	case "tcpip-forward":
		var p tcpipForward
		if err := ssh.Unmarshal(req.Payload, &p); err != nil {
			req.Reply(false, nil)
			return
		}
		if (p.Addr != "127.0.0.1" && p.Addr != "localhost") || int(p.Port) != port {
			e.refuse(ctx, tc, fmt.Sprintf("remote forward listen on %s (only 127.0.0.1:%d is allowed)", forwardTarget(p.Addr, p.Port), port), meta, log)
			req.Reply(false, nil)
			return
		}
		fwd.mu.Lock()
		defer fwd.mu.Unlock()
		if fwd.ln != nil {
			req.Reply(false, nil)
			return
		}
		ln, err := e.listenReverse(tc, port, log)
		if err != nil {
			log.Warn("reverse forward: cannot listen", "port", port, "err", err)
			req.Reply(false, nil)
			return
		}
		fwd.ln = ln
		req.Reply(true, nil)
		go e.acceptForwarded(tc, ln, p, log)
	case "cancel-tcpip-forward":
		fwd.closeAll()
		req.Reply(true, nil)
	case tunnel.ReqHostKeysProve:
		e.proveHostKeys(tc, req)
	default:
		if req.WantReply {
			req.Reply(false, nil)
		}
	}
}

// listenReverse binds the VMA's reverse port. When an older connection of
// the same VMA on this instance holds it (a reconnect while the old TCP
// session has not timed out yet), the newer connection takes over.
func (e *Endpoint) listenReverse(tc *tunnelConn, port int, log *slog.Logger) (net.Listener, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	replaced := false
	for _, old := range e.live(tc.id) {
		if old != tc && old.fwd.holding() {
			old.close("replaced by a newer connection")
			replaced = true
		}
	}
	if !replaced {
		return nil, err
	}
	log.Info("reverse forward taken over from an older connection", "port", port)
	for i := 0; i < 40; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, err
}

func (e *Endpoint) throttledSeen(ctx context.Context, tc *tunnelConn, log *slog.Logger) {
	tc.seenMu.Lock()
	now := time.Now()
	due := now.Sub(tc.lastSeen) >= e.cfg.SeenEvery
	if due {
		tc.lastSeen = now
	}
	tc.seenMu.Unlock()
	if due {
		if err := e.svc.TunnelSeen(ctx, tc.id); err != nil {
			log.Warn("record keepalive", "err", err)
		}
	}
}

func (e *Endpoint) acceptForwarded(tc *tunnelConn, ln net.Listener, p tcpipForward, log *slog.Logger) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			oa, op, _ := net.SplitHostPort(c.RemoteAddr().String())
			opn, _ := strconv.Atoi(op)
			ch, reqs, err := tc.conn.OpenChannel("forwarded-tcpip", ssh.Marshal(forwardedTCPIP{
				Addr: p.Addr, Port: p.Port, OriginAddr: oa, OriginPort: uint32(opn),
			}))
			if err != nil {
				log.Info("reverse forward: VMA refused the channel", "err", err)
				return
			}
			go ssh.DiscardRequests(reqs)
			e.pipe(c, ch)
		}()
	}
}

func (e *Endpoint) newChannel(ctx context.Context, tc *tunnelConn, nch ssh.NewChannel, meta enroll.Meta, log *slog.Logger) {
	switch nch.ChannelType() {
	case "direct-tcpip":
		var d directTCPIP
		if err := ssh.Unmarshal(nch.ExtraData(), &d); err != nil {
			nch.Reject(ssh.ConnectionFailed, "malformed request")
			return
		}
		target := net.JoinHostPort(d.Host, strconv.Itoa(int(d.Port)))
		if target != e.cfg.NBDTarget && !(d.Host == "localhost" && net.JoinHostPort("127.0.0.1", strconv.Itoa(int(d.Port))) == e.cfg.NBDTarget) {
			shown := forwardTarget(d.Host, d.Port)
			e.refuse(ctx, tc, "local forward to "+shown+" (only "+e.cfg.NBDTarget+" is allowed)", meta, log)
			nch.Reject(ssh.Prohibited, "forwarding to "+shown+" is not allowed")
			return
		}
		if !e.takeChannel(tc, log) {
			nch.Reject(ssh.ResourceShortage, "too many open channels on this connection")
			return
		}
		c, err := net.DialTimeout("tcp", e.cfg.NBDTarget, 5*time.Second)
		if err != nil {
			tc.releaseChannel()
			nch.Reject(ssh.ConnectionFailed, "NBD target unreachable")
			return
		}
		ch, reqs, err := nch.Accept()
		if err != nil {
			tc.releaseChannel()
			c.Close()
			return
		}
		go ssh.DiscardRequests(reqs)
		go func() {
			defer tc.releaseChannel()
			defer c.Close()
			e.pipe(c, ch)
		}()
	default:
		e.refuse(ctx, tc, "channel "+clip(nch.ChannelType(), maxHostText)+" (no shell, command, agent or X11)", meta, log)
		nch.Reject(ssh.Prohibited, "only the tunnel's port forwards are allowed")
	}
}

// pipe copies both ways until both directions end (tunnel/copy.go: bulk
// buffers, GC relaxed while data flows).
func (e *Endpoint) pipe(c net.Conn, ch ssh.Channel) {
	e.gc.Begin()
	defer e.gc.End()
	done := make(chan struct{}, 2)
	go func() {
		tunnel.BulkCopy(ch, c)
		ch.CloseWrite()
		done <- struct{}{}
	}()
	go func() {
		tunnel.BulkCopy(c, ch)
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}()
	<-done
	<-done
	ch.Close()
}
