package tunnel

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

// EventDataPath says, once per connection, how forwarded NBD connections
// travel: as TLS data streams of their own, or inside the SSH connection.
const EventDataPath EventType = "data_path"

// localDialer picks the way of each forwarded local connection during one
// SSH session: a TLS data stream of its own (tlsdata.go) while fewer than
// DataConnections streams are open and the OMA offers the data path, else
// a channel of the SSH connection. So a migration tool's NBD connections
// spread over several connections to the OMA, and over several cores
// there, and the tunnel never waits for a free stream.
type localDialer struct {
	c      *Client
	client *ssh.Client
	active atomic.Int32
	// off is set when the OMA does not offer the data path (or refused
	// it): the rest of the session uses the SSH connection.
	off      atomic.Bool
	announce sync.Once
}

func (c *Client) newLocalDialer(client *ssh.Client) *localDialer {
	d := &localDialer{c: c, client: client}
	if c.cfg.DataTLS == nil || c.cfg.DataConnections <= 0 || c.cfg.DataAddr == "" {
		d.off.Store(true)
	}
	return d
}

// dial connects one forwarded connection to f.Target on the OMA. release
// must be called when the connection ends.
func (d *localDialer) dial(ctx context.Context, f api.Forward) (conn net.Conn, release func(), err error) {
	if !d.off.Load() && f.Target == d.c.cfg.DataTarget {
		if n := d.active.Add(1); n <= int32(d.c.cfg.DataConnections) {
			dctx, cancel := context.WithTimeout(ctx, d.c.cfg.ConnectTimeout)
			conn, err := DialData(dctx, d.c.cfg.DataAddr, d.c.cfg.DataTLS)
			cancel()
			if err == nil {
				d.announce.Do(func() {
					d.c.emit(Event{Type: EventDataPath, Direction: "local", Listen: f.Listen, Target: f.Target,
						Message: fmt.Sprintf("NBD connections ride TLS data streams of their own (up to %d at once, more share the SSH connection)", d.c.cfg.DataConnections)})
				})
				return conn, func() { d.active.Add(-1) }, nil
			}
			d.active.Add(-1)
			// Whatever failed (no data path there, a refusal, a certificate
			// that does not match the pin, the network), this connection and
			// the rest of the session take the SSH way; the next connection
			// to the OMA tries again.
			if ctx.Err() == nil {
				d.off.Store(true)
				d.announce.Do(func() {
					d.c.emit(Event{Type: EventDataPath, Direction: "local", Listen: f.Listen, Target: f.Target, Reason: err.Error(),
						Message: "NBD connections ride the SSH connection: " + err.Error()})
				})
			}
		} else {
			d.active.Add(-1)
		}
	}
	rc, err := d.client.Dial("tcp", f.Target)
	return rc, func() {}, err
}
