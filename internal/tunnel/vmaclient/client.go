package vmaclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
)

// ErrKeyRefused means the OMA refused this VMA's key (it was revoked or
// replaced by a new enrollment), twice in a row: retrying will not help.
var ErrKeyRefused = errors.New("the OMA refused this VMA's key: it was revoked or replaced")

// HostKeyMismatchError means the OMA presented another SSH host key than the
// one pinned at enrollment: someone may be impersonating it.
type HostKeyMismatchError struct {
	Addr string
	Want string // fingerprint of the pinned key
	Got  string // fingerprint of the presented key
}

func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("OMA host key mismatch: %s presented the SSH host key %s, but this VMA pinned %s when it enrolled", e.Addr, e.Got, e.Want)
}

// EventType names a state change of the tunnel client. The names are part
// of `vma-enroll tunnel -o json`: never renamed or re-meant.
type EventType string

// Events of the tunnel client.
const (
	EventConnecting      EventType = "connecting"
	EventConnected       EventType = "connected"
	EventForwardUp       EventType = "forward_up"
	EventForwardFailed   EventType = "forward_failed" // a forward could not be set up: the connection is dropped
	EventForwardError    EventType = "forward_error"  // one forwarded connection failed; the tunnel stays up
	EventConnectFailed   EventType = "connect_failed"
	EventDisconnected    EventType = "disconnected"
	EventRetrying        EventType = "retrying"
	EventKeyRefused      EventType = "key_refused"
	EventHostKeyMismatch EventType = "host_key_mismatch"
	EventStopped         EventType = "stopped"
)

// Event is one state change, as `vma-enroll tunnel` logs it: a plain line
// (Message) or, with -o json, this object on one line.
type Event struct {
	Time    time.Time `json:"time"`
	Type    EventType `json:"event"`
	Message string    `json:"message"`
	OMA     string    `json:"oma"`
	Attempt int       `json:"attempt,omitempty"`
	// Direction is "local" (VMA listens, OMA dials) or "remote" (OMA
	// listens, VMA dials) for forward events.
	Direction string  `json:"direction,omitempty"`
	Listen    string  `json:"listen,omitempty"`
	Target    string  `json:"target,omitempty"`
	Reason    string  `json:"reason,omitempty"`
	RetryIn   float64 `json:"retry_in_seconds,omitempty"`
}

// ClientConfig configures the native tunnel client of a VMA.
type ClientConfig struct {
	// Addr is the OMA's SSH endpoint, host:port.
	Addr string
	// User is the SSH user (vma_tunnel).
	User string
	// HostKey is the OMA's pinned SSH host key; any other key is refused,
	// but for NextHostKeys.
	HostKey ssh.PublicKey
	// NextHostKeys are host keys the OMA announced and proved during a
	// rotation (hostkeys.go), trusted like HostKey; once the OMA
	// presents one, it replaces HostKey.
	NextHostKeys []ssh.PublicKey
	// OnHostKeys, when set, records the trusted host keys whenever they
	// change (a next key learned, or the switch to it).
	OnHostKeys func(current ssh.PublicKey, next []ssh.PublicKey) error
	// Signer is the VMA's enrolled key.
	Signer ssh.Signer
	// LocalForwards listen on the VMA and reach their target through the
	// OMA (direct-tcpip); RemoteForwards listen on the OMA and reach their
	// target on the VMA.
	LocalForwards  []api.Forward
	RemoteForwards []api.Forward
	// ClientVersion is the SSH version string ("SSH-2.0-vma-enroll").
	ClientVersion string

	// Keepalive is the period of keepalive@openssh.com requests (30s);
	// negative turns them off. KeepaliveMax unanswered ones in a row (3)
	// drop the connection.
	Keepalive    time.Duration
	KeepaliveMax int
	// ConnectTimeout bounds the TCP connect plus the SSH handshake (30s).
	ConnectTimeout time.Duration
	// MinBackoff and MaxBackoff bound the pause between attempts (1s, 60s):
	// it doubles after each failed attempt, with jitter, and starts over
	// once a connection stayed up for StableAfter (1m).
	MinBackoff, MaxBackoff, StableAfter time.Duration
	// RefusedRetry is the pause before checking a refused key once more
	// (3s): a single refusal may be a passing database problem on the OMA.
	RefusedRetry time.Duration
	// DialTimeout bounds dialing a VMA-local target of a remote forward (10s).
	DialTimeout time.Duration
	// DataTLS, when set, lets local forwards to DataTarget ride TLS data
	// streams on the OMA's public port (tunnel/dataproto.go): the pinned OMA
	// certificate, the VMA's client certificate, NextProtos ALPNData. At
	// most DataConnections streams are open at once; more connections,
	// and every one when the OMA does not offer the data path, ride the
	// SSH connection.
	DataTLS         *tls.Config
	DataAddr        string // the OMA's public port, host:port
	DataTarget      string
	DataConnections int

	// Once makes Run return after the first connection ends, without
	// reconnecting; a refused key then ends it at the first refusal.
	Once bool

	// OnEvent receives every state change, one call at a time.
	OnEvent func(Event)
	// Now and Jitter (in [0,1)) are the clock and randomness (tests).
	Now    func() time.Time
	Jitter func() float64
}

func (c *ClientConfig) fill() {
	if c.User == "" {
		c.User = contract.TunnelUser
	}
	if c.ClientVersion == "" {
		c.ClientVersion = "SSH-2.0-vma-enroll"
	}
	if c.Keepalive == 0 {
		c.Keepalive = 30 * time.Second
	}
	if c.KeepaliveMax <= 0 {
		c.KeepaliveMax = 3
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 60 * time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.StableAfter <= 0 {
		c.StableAfter = time.Minute
	}
	if c.RefusedRetry <= 0 {
		c.RefusedRetry = 3 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.OnEvent == nil {
		c.OnEvent = func(Event) {}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Jitter == nil {
		c.Jitter = rand.Float64
	}
}

// Client keeps a VMA's tunnel to its OMA up: it connects with the enrolled
// key, pins the OMA's host key, opens the forwards, sends keepalives and
// reconnects with backoff after any drop.
type Client struct {
	cfg    ClientConfig
	emitMu sync.Mutex
	gc     *tunnel.BulkGC // GOGC while forwards carry data (tunnel/copy.go)
	// hostKeys is the trusted OMA host keys (hostkeys.go).
	hostKeys clientHostKeys
}

// NewClient checks cfg and builds the client.
func NewClient(cfg ClientConfig) (*Client, error) {
	cfg.fill()
	if cfg.Signer == nil {
		return nil, errors.New("tunnel client: no key")
	}
	if cfg.HostKey == nil {
		return nil, errors.New("tunnel client: no pinned OMA host key")
	}
	if err := validHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("tunnel client: OMA address: %w", err)
	}
	if len(cfg.LocalForwards)+len(cfg.RemoteForwards) == 0 {
		return nil, errors.New("tunnel client: the tunnel has no forwards")
	}
	for _, f := range append(append([]api.Forward{}, cfg.LocalForwards...), cfg.RemoteForwards...) {
		for _, a := range []string{f.Listen, f.Target} {
			if err := validHostPort(a); err != nil {
				return nil, fmt.Errorf("tunnel client: forward %q -> %q: %w", f.Listen, f.Target, err)
			}
		}
	}
	c := &Client{cfg: cfg, gc: &tunnel.BulkGC{Percent: 400}}
	c.hostKeys.current = cfg.HostKey
	for _, k := range cfg.NextHostKeys {
		if k != nil && !sameKey(k, cfg.HostKey) && !containsKey(c.hostKeys.next, k) {
			c.hostKeys.next = append(c.hostKeys.next, k)
		}
	}
	return c, nil
}

func (c *Client) emit(e Event) {
	e.Time = c.cfg.Now().UTC()
	e.OMA = c.cfg.Addr
	c.emitMu.Lock()
	defer c.emitMu.Unlock()
	c.cfg.OnEvent(e)
}

// Run keeps the tunnel up until ctx ends (it then returns nil), the OMA
// refuses the key twice in a row (ErrKeyRefused), the OMA presents another
// host key (*HostKeyMismatchError), or, with Once, the first connection
// ends.
func (c *Client) Run(ctx context.Context) error {
	failures, refusals := 0, 0
	for attempt := 1; ; attempt++ {
		c.emit(Event{Type: EventConnecting, Attempt: attempt,
			Message: fmt.Sprintf("connecting to %s as %s (attempt %d)", c.cfg.Addr, c.cfg.User, attempt)})
		up, err := c.session(ctx)
		if ctx.Err() != nil {
			c.emit(Event{Type: EventStopped, Message: "stopped"})
			return nil
		}
		var hk *HostKeyMismatchError
		switch {
		case errors.As(err, &hk):
			c.emit(Event{Type: EventHostKeyMismatch, Reason: hk.Error(), Message: hk.Error() + "; not retrying"})
			return hk
		case errors.Is(err, ErrKeyRefused):
			refusals++
			if c.cfg.Once || refusals >= 2 {
				c.emit(Event{Type: EventKeyRefused, Reason: err.Error(), Message: err.Error() + "; giving up"})
				return err
			}
			c.emit(Event{Type: EventKeyRefused, Reason: err.Error(), RetryIn: c.cfg.RefusedRetry.Seconds(),
				Message: fmt.Sprintf("%s; checking once more in %s, in case the OMA had a passing problem", err, c.cfg.RefusedRetry)})
			if !sleep(ctx, c.cfg.RefusedRetry) {
				c.emit(Event{Type: EventStopped, Message: "stopped"})
				return nil
			}
			continue
		}
		refusals = 0
		if c.cfg.Once {
			return fmt.Errorf("the tunnel ended: %w", err)
		}
		if up >= c.cfg.StableAfter {
			failures = 0
		}
		wait := c.backoff(failures)
		failures++
		c.emit(Event{Type: EventRetrying, RetryIn: wait.Seconds(), Message: fmt.Sprintf("retrying in %s", wait.Round(100*time.Millisecond))})
		if !sleep(ctx, wait) {
			c.emit(Event{Type: EventStopped, Message: "stopped"})
			return nil
		}
	}
}

// backoff is the pause after n failed attempts in a row: MinBackoff·2ⁿ
// capped at MaxBackoff, less up to a quarter at random, so that many VMAs
// cut off together do not come back in lockstep.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.MinBackoff
	for i := 0; i < n && d < c.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.cfg.MaxBackoff)
	return d - time.Duration(c.cfg.Jitter()*float64(d)/4)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// hostKeyAlgorithms asks the server for the pinned key's algorithm, so that
// a server with several host keys presents the pinned one.
func hostKeyAlgorithms(k ssh.PublicKey) []string {
	if k.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256} // never ssh-rsa (SHA-1)
	}
	return []string{k.Type()}
}

// dial connects and authenticates. Errors: *HostKeyMismatchError,
// ErrKeyRefused (wrapped), or anything else for a passing failure.
func (c *Client) dial(ctx context.Context) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, err
	}
	pinned, next := c.hostKeys.get()
	var switched ssh.PublicKey // a next key the OMA presented
	conf := &ssh.ClientConfig{
		Config:            tunnel.AlgorithmsConfig(tunnel.ClientCiphers()),
		User:              c.cfg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(c.cfg.Signer)},
		HostKeyAlgorithms: hostKeyAlgorithmsFor(pinned, next),
		ClientVersion:     c.cfg.ClientVersion,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if bytes.Equal(key.Marshal(), pinned.Marshal()) {
				return nil
			}
			if containsKey(next, key) {
				switched = key
				return nil
			}
			return &HostKeyMismatchError{Addr: c.cfg.Addr, Want: ssh.FingerprintSHA256(pinned), Got: ssh.FingerprintSHA256(key)}
		},
	}
	// The handshake ends with ctx: on a stop or after ConnectTimeout.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	conn, chans, reqs, err := ssh.NewClientConn(&tunnel.BulkReadConn{Conn: nc}, c.cfg.Addr, conf)
	if !stop() {
		if err == nil {
			conn.Close()
		}
		if ctx.Err() == context.DeadlineExceeded {
			return nil, fmt.Errorf("no SSH handshake within %s", c.cfg.ConnectTimeout)
		}
		return nil, ctx.Err()
	}
	if err != nil {
		var hk *HostKeyMismatchError
		if errors.As(err, &hk) {
			return nil, hk
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("%w (public key authentication failed)", ErrKeyRefused)
		}
		return nil, err
	}
	if switched != nil {
		c.switchedTo(switched)
	}
	return ssh.NewClient(conn, chans, c.watchHostKeys(conn, reqs)), nil
}

// session runs one connection until it ends and says why, and how long
// it was up.
func (c *Client) session(ctx context.Context) (time.Duration, error) {
	client, err := c.dial(ctx)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, ErrKeyRefused) {
			var hk *HostKeyMismatchError
			if !errors.As(err, &hk) {
				c.emit(Event{Type: EventConnectFailed, Reason: err.Error(), Message: "connect failed: " + err.Error()})
			}
		}
		return 0, err
	}
	start := c.cfg.Now()
	c.emit(Event{Type: EventConnected, Message: fmt.Sprintf("connected to %s (%s)", c.cfg.Addr, enroll.Printable(string(client.ServerVersion())))})

	done := make(chan struct{}) // closed when the session ends
	var wg sync.WaitGroup
	var listeners []net.Listener
	ended := make(chan string, 2) // why the session ends: the first one counts
	end := func(reason string) {
		select {
		case ended <- reason:
		default:
		}
	}
	// A stop closes the connection, which also ends a forward request
	// still waiting for its answer.
	stopOnCtx := context.AfterFunc(ctx, func() { client.Close() })
	defer stopOnCtx()
	go func() {
		err := client.Wait()
		if ctx.Err() != nil {
			end("stopping")
		} else if err == nil || errors.Is(err, io.EOF) {
			end("connection closed by the OMA")
		} else {
			end("connection lost: " + err.Error())
		}
	}()
	// Keepalives run from the start, so that an OMA that stops answering
	// while the forwards are being set up is noticed too.
	if c.cfg.Keepalive > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.keepalive(client, done, end)
		}()
	}
	teardown := func() {
		close(done)
		for _, ln := range listeners {
			ln.Close()
		}
		client.Close()
		wg.Wait()
	}

	var reason string
	if ev, err := c.openForwards(client, done, &wg, &listeners); err != nil {
		select {
		case reason = <-ended: // the connection ended first: that is why
		default:
			reason = err.Error()
			c.emit(ev)
		}
	} else {
		select {
		case <-ctx.Done():
			reason = "stopping"
		case reason = <-ended:
		}
	}
	teardown()
	up := c.cfg.Now().Sub(start)
	c.emitDisconnected(reason, start)
	return up, errors.New(reason)
}

// openForwards asks the OMA for the remote forwards and listens for the
// local ones. On failure it returns the forward_failed event to log.
func (c *Client) openForwards(client *ssh.Client, done <-chan struct{}, wg *sync.WaitGroup, listeners *[]net.Listener) (Event, error) {
	failed := func(dir string, f api.Forward, err error) (Event, error) {
		return Event{Type: EventForwardFailed, Direction: dir, Listen: f.Listen, Target: f.Target, Reason: err.Error(),
			Message: "forward failed: " + err.Error()}, err
	}
	for _, f := range c.cfg.RemoteForwards {
		ln, err := client.Listen("tcp", f.Listen)
		if err != nil {
			return failed("remote", f, fmt.Errorf("the OMA refused to listen on %s for this VMA: %v", f.Listen, err))
		}
		*listeners = append(*listeners, ln)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.serveRemote(ln, f, done, wg)
		}()
		c.emit(Event{Type: EventForwardUp, Direction: "remote", Listen: f.Listen, Target: f.Target,
			Message: fmt.Sprintf("forward up: OMA %s -> VMA %s", f.Listen, f.Target)})
	}
	dialer := c.newLocalDialer(client)
	for _, f := range c.cfg.LocalForwards {
		ln, err := net.Listen("tcp", f.Listen)
		if err != nil {
			return failed("local", f, fmt.Errorf("cannot listen on %s on this VMA: %v", f.Listen, err))
		}
		*listeners = append(*listeners, ln)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.serveLocal(dialer, ln, f, done, wg)
		}()
		c.emit(Event{Type: EventForwardUp, Direction: "local", Listen: f.Listen, Target: f.Target,
			Message: fmt.Sprintf("forward up: VMA %s -> OMA %s", f.Listen, f.Target)})
	}
	return Event{}, nil
}

func (c *Client) emitDisconnected(reason string, start time.Time) {
	up := c.cfg.Now().Sub(start).Round(time.Second)
	c.emit(Event{Type: EventDisconnected, Reason: reason, Message: fmt.Sprintf("disconnected after %s: %s", up, reason)})
}

// keepalive probes the OMA every Keepalive. Once KeepaliveMax probes in a
// row went unanswered it ends the session (the reason first, so that the
// connection's closing does not pass for the cause) and closes the
// connection. It returns when done closes or the connection failed.
func (c *Client) keepalive(client *ssh.Client, done <-chan struct{}, end func(string)) {
	t := time.NewTicker(c.cfg.Keepalive)
	defer t.Stop()
	replies := make(chan error, 1)
	pending, missed := false, 0
	for {
		select {
		case <-done:
			return
		case err := <-replies:
			if err != nil {
				return // the connection failed: Wait reports it
			}
			pending, missed = false, 0
		case <-t.C:
			if pending {
				if missed++; missed >= c.cfg.KeepaliveMax {
					end(fmt.Sprintf("keepalive timeout: %d keepalives in a row got no answer", missed))
					client.Close()
					return
				}
				continue
			}
			pending = true
			go func() {
				// Any answer, even a refusal, shows the OMA is alive.
				_, _, err := client.SendRequest("keepalive@openssh.com", true, nil)
				replies <- err
			}()
		}
	}
}

// serveLocal accepts on the VMA and opens a TLS data stream or a
// direct-tcpip channel per connection (clientdata.go).
func (c *Client) serveLocal(dialer *localDialer, ln net.Listener, f api.Forward, done <-chan struct{}, wg *sync.WaitGroup) {
	for {
		lc, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-done:
					cancel()
				case <-ctx.Done():
				}
			}()
			rc, release, err := dialer.dial(ctx, f)
			cancel()
			if err != nil {
				lc.Close()
				select {
				case <-done:
				default:
					c.emit(Event{Type: EventForwardError, Direction: "local", Listen: f.Listen, Target: f.Target, Reason: err.Error(),
						Message: fmt.Sprintf("forward VMA %s -> OMA %s: %v", f.Listen, f.Target, err)})
				}
				return
			}
			defer release()
			c.gc.Begin()
			defer c.gc.End()
			proxy(lc, rc, done)
		}()
	}
}

// serveRemote accepts the OMA's forwarded-tcpip channels and dials the
// VMA-local target for each.
func (c *Client) serveRemote(ln net.Listener, f api.Forward, done <-chan struct{}, wg *sync.WaitGroup) {
	for {
		rc, err := ln.Accept()
		if err != nil {
			select {
			case <-done:
				return
			default:
			}
			if errors.Is(err, io.EOF) {
				return // the connection ended
			}
			continue // one channel failed to open
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d net.Dialer
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.DialTimeout)
			go func() {
				select {
				case <-done:
					cancel()
				case <-ctx.Done():
				}
			}()
			lc, err := d.DialContext(ctx, "tcp", f.Target)
			cancel()
			if err != nil {
				rc.Close()
				select {
				case <-done:
					return
				default:
				}
				c.emit(Event{Type: EventForwardError, Direction: "remote", Listen: f.Listen, Target: f.Target, Reason: err.Error(),
					Message: fmt.Sprintf("forward OMA %s -> VMA %s: %v", f.Listen, f.Target, err)})
				return
			}
			c.gc.Begin()
			defer c.gc.End()
			proxy(lc, rc, done)
		}()
	}
}

// proxy copies both ways, passing each side's end of data on as a
// half-close, until both directions ended or done closes.
func proxy(a, b net.Conn, done <-chan struct{}) {
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, err := tunnel.BulkCopy(dst, src)
		if err != nil {
			// A broken stream is passed on as a reset, not an end of data.
			tunnel.Abort(a)
			tunnel.Abort(b)
		} else if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	go cp(a, b)
	go cp(b, a)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
		a.Close()
		b.Close()
	case <-done:
		// The session ended under a live connection (revocation, a lost
		// OMA, a stop): whatever was in flight is cut, and both ends must
		// see that as an error, never as a finished transfer.
		tunnel.Abort(a)
		tunnel.Abort(b)
	}
	<-finished
}

// ParseHostKey parses the tunnel object's host_key (authorized_keys format).
func ParseHostKey(line string) (ssh.PublicKey, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, fmt.Errorf("the OMA's SSH host key is malformed: %v", err)
	}
	return k, nil
}

// HostKeyFromKnownHosts returns the key that known_hosts data pins for
// host:port (as "[host]:port", or the bare host for port 22). Hashed host
// names are not supported; the first matching line wins.
func HostKeyFromKnownHosts(data []byte, host string, port int) (ssh.PublicKey, error) {
	want := KnownHostsHost(host, port)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		marker, hosts, key, _, _, err := ssh.ParseKnownHosts(line)
		if err != nil || marker != "" {
			continue
		}
		for _, h := range hosts {
			if h == want {
				return key, nil
			}
		}
	}
	return nil, fmt.Errorf("no host key for %s", want)
}
