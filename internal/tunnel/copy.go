package tunnel

import (
	"crypto/tls"
	"io"
	"net"
	"runtime/debug"
	"sync"
)

// The bulk data path of the tunnels (issue 12). A forwarded NBD connection
// carries a migration's disks, so its copies are sized for bulk transfer:
// 256 KiB per direction, one syscall per 256 KiB on the plain TCP side
// instead of one per 32 KiB SSH packet. The buffers come from a pool and
// go back as soon as a copy ends, so an idle tunnel holds none (bench row
// 4: at most 64 KiB per idle tunnel).

// BulkBufferSize is the size of one copy buffer.
const BulkBufferSize = 256 << 10

// bulkBuffers recycles the copy buffers across connections.
var bulkBuffers = sync.Pool{New: func() any { b := make([]byte, BulkBufferSize); return &b }}

// writerOnly and readerOnly hide ReadFrom and WriteTo: io.CopyBuffer into a
// *net.TCPConn would otherwise take TCPConn.ReadFrom, which ignores the
// buffer and copies through 32 KiB of its own (issue 12).
type writerOnly struct{ io.Writer }
type readerOnly struct{ io.Reader }

// BulkCopy copies src to dst through a pooled 256 KiB buffer and returns
// what io.Copy would.
func BulkCopy(dst io.Writer, src io.Reader) (int64, error) {
	bp := bulkBuffers.Get().(*[]byte)
	defer bulkBuffers.Put(bp)
	return io.CopyBuffer(writerOnly{dst}, readerOnly{src}, *bp)
}

// BulkGC relaxes the garbage collector while forwarded connections carry
// data. x/crypto/ssh allocates a fresh buffer for every packet it reads
// (about one byte of garbage per byte carried), so at the default GOGC a
// migration costs hundreds of collections per GiB. While at least one
// copy runs, GOGC is raised to Percent; the previous setting comes back
// when the last one ends, so idle tunnels keep the default heap.
type BulkGC struct {
	Percent int // GOGC while copies run (0: leave GOGC alone)

	mu     sync.Mutex
	active int
	prev   int
}

// Begin marks one copy running; End must follow.
func (g *BulkGC) Begin() {
	if g == nil || g.Percent <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.active++; g.active == 1 {
		g.prev = debug.SetGCPercent(g.Percent)
		if g.prev < 0 || g.prev > g.Percent {
			debug.SetGCPercent(g.prev) // GOGC=off or higher: keep the user's choice
		}
	}
}

func (g *BulkGC) End() {
	if g == nil || g.Percent <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.active--; g.active == 0 {
		debug.SetGCPercent(g.prev)
	}
}

// Abort closes c so that its peer sees an error, not an end of data: a TCP
// connection is reset (linger 0), a TLS stream is cut under TLS without a
// close_notify. A broken transfer must not pass for a finished one on
// either end.
func Abort(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	for {
		if u, ok := c.(interface{ Unwrap() net.Conn }); ok {
			c = u.Unwrap()
			continue
		}
		break
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	// The innermost connection is closed: a wrapper's Close might end TLS
	// cleanly. (The sniffing stage's per-address slot, the one resource a
	// wrapper holds, was released when the stream got past its handshake.)
	c.Close()
}

// tlsRecordMax is the most plaintext one TLS record carries.
const tlsRecordMax = 16 << 10

// CoalescingCopy copies a TLS stream (one record per Read) to dst in
// writes of up to 256 KiB: it keeps reading while buffered() says more
// received bytes wait below TLS, so a bulk transfer costs one write
// syscall per buffer instead of one per 16 KiB record, and an interactive
// one is passed on at once.
func CoalescingCopy(dst io.Writer, src io.Reader, buffered func() int) (int64, error) {
	bp := bulkBuffers.Get().(*[]byte)
	defer bulkBuffers.Put(bp)
	buf := *bp
	var total int64
	for {
		n, err := src.Read(buf)
		for err == nil && n <= len(buf)-tlsRecordMax && buffered() > 0 {
			var m int
			m, err = src.Read(buf[n:])
			n += m
		}
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// BatchConn sits under a TLS client connection and gathers the records
// of one large Write into few syscalls: tls.Conn writes every 16 KiB
// record on its own. Outside a batch it writes through.
type BatchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      *[]byte
	n        int
}

func (b *BatchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if !b.batching {
		b.mu.Unlock()
		return b.Conn.Write(p)
	}
	defer b.mu.Unlock()
	if b.buf == nil {
		b.buf = bulkBuffers.Get().(*[]byte)
	}
	if b.n+len(p) > len(*b.buf) {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > len(*b.buf) {
			return b.Conn.Write(p)
		}
	}
	b.n += copy((*b.buf)[b.n:], p)
	return len(p), nil
}

func (b *BatchConn) flushLocked() error {
	if b.n == 0 {
		return nil
	}
	_, err := b.Conn.Write((*b.buf)[:b.n])
	b.n = 0
	return err
}

// Unwrap is the connection underneath (to reset it on an abort).
func (b *BatchConn) Unwrap() net.Conn { return b.Conn }

// BatchedTLS is a TLS client connection whose Writes go out in batches.
type BatchedTLS struct {
	*tls.Conn
	b *BatchConn
}

// NewBatchedTLS is c, a TLS client connection made over b, with its
// Writes batched by b.
func NewBatchedTLS(c *tls.Conn, b *BatchConn) *BatchedTLS { return &BatchedTLS{Conn: c, b: b} }

func (c *BatchedTLS) Write(p []byte) (int, error) {
	c.b.mu.Lock()
	c.b.batching = true
	c.b.mu.Unlock()
	n, err := c.Conn.Write(p)
	c.b.mu.Lock()
	c.b.batching = false
	ferr := c.b.flushLocked()
	if c.b.buf != nil {
		bulkBuffers.Put(c.b.buf) // only while data flows
		c.b.buf = nil
	}
	c.b.mu.Unlock()
	if err == nil {
		err = ferr
	}
	return n, err
}

// Unwrap is the TCP connection underneath (to reset it on an abort).
func (c *BatchedTLS) Unwrap() net.Conn { return c.b.Conn }

// readAheadSize is the read buffer of a busy SSH connection.
const readAheadSize = 256 << 10

// BulkReadConn sits under x/crypto/ssh, which reads through a 4 KiB buffer
// and then each packet's rest straight from the socket: two or three read
// syscalls per 32 KiB packet. While data streams in, BulkReadConn reads
// 256 KiB at a time instead; the buffer is taken from the pool only when a
// read filled the caller's buffer (more is waiting) and goes back as soon
// as it is drained, so an idle tunnel holds none (bench row 4) and a
// blocking read on a quiet connection never holds one either.
type BulkReadConn struct {
	net.Conn
	buf  *[]byte
	r, w int
	hot  bool // the last read filled its buffer: more is likely waiting
}

func (c *BulkReadConn) Read(p []byte) (int, error) {
	if c.buf != nil {
		n := copy(p, (*c.buf)[c.r:c.w])
		if c.r += n; c.r == c.w {
			bulkBuffers.Put(c.buf)
			c.buf = nil
		}
		return n, nil
	}
	if !c.hot || len(p) >= readAheadSize {
		n, err := c.Conn.Read(p)
		c.hot = n == len(p)
		return n, err
	}
	bp := bulkBuffers.Get().(*[]byte)
	n, err := c.Conn.Read(*bp)
	c.hot = n == len(*bp)
	if n == 0 {
		bulkBuffers.Put(bp)
		return 0, err
	}
	m := copy(p, (*bp)[:n])
	if m < n {
		c.buf, c.r, c.w = bp, m, n
	} else {
		bulkBuffers.Put(bp)
	}
	return m, err
}

// Unwrap is the connection underneath (to reset it on an abort).
func (c *BulkReadConn) Unwrap() net.Conn { return c.Conn }
