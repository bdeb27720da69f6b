package tunnel_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/omatest"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/vmaclient"
	"github.com/oma-enroll/oma-enroll/internal/vmaauth"
)

// streamEcho echoes every connection as it arrives (not after the end, as
// copyEcho does), so that hundreds of MiB stream through both directions.
func streamEcho(t *testing.T) string {
	t.Helper()
	return testbin.Serve(t, "127.0.0.1:0", func(c net.Conn) {
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
}

// vmaKey is v's private key, as vma-enroll wrote it.
func vmaKey(t *testing.T, v *vma) ed25519.PrivateKey {
	t.Helper()
	return testbin.PrivateKey(t, filepath.Join(v.dir, "id_ed25519"))
}

// withDataPath lets the client carry NBD connections on TLS data streams,
// as `vma-enroll tunnel` sets it up.
func withDataPath(t *testing.T, o *oma, v *vma, n int) func(*vmaclient.ClientConfig) {
	t.Helper()
	priv := vmaKey(t, v)
	return func(c *vmaclient.ClientConfig) {
		c.DataTLS = dataTLS(t, o.srv.Fingerprint(), priv)
		c.DataAddr = o.srv.PublicAddr()
		c.DataTarget = v.tun.LocalForwards[0].Target
		c.DataConnections = n
	}
}

func dataTLS(t *testing.T, pin string, priv ed25519.PrivateKey) *tls.Config {
	t.Helper()
	cert, err := vmaauth.ClientCertificate(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := client.TLSConfig(pin, false)
	cfg.MinVersion = tls.VersionTLS13
	cfg.NextProtos = []string{tunnel.ALPNData}
	cfg.Certificates = []tls.Certificate{cert}
	return cfg
}

// checksumEcho sends size pseudo-random bytes through addr while reading
// the echo, and checks that the SHA-256 of what came back is that of what
// was sent.
func checksumEcho(addr string, size int64, seed uint64) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	sent := sha256.New()
	werr := make(chan error, 1)
	go func() {
		src := io.LimitReader(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}), size)
		_, err := io.Copy(c, io.TeeReader(src, sent))
		c.(*net.TCPConn).CloseWrite()
		werr <- err
	}()
	got := sha256.New()
	n, rerr := io.Copy(got, c)
	if err := <-werr; err != nil {
		return fmt.Errorf("write through %s: %w", addr, err)
	}
	if rerr != nil {
		return fmt.Errorf("read through %s: %w", addr, rerr)
	}
	if n != size || string(got.Sum(nil)) != string(sent.Sum(nil)) {
		return fmt.Errorf("through %s: %d bytes came back, want %d, checksums %x and %x", addr, n, size, got.Sum(nil), sent.Sum(nil))
	}
	return nil
}

// TestDataPathIntactBothWays pushes 256 MiB each way through the NBD
// forward on a TLS data stream, through the NBD forward inside SSH, and
// through the reverse forward, and checks them by SHA-256.
func TestDataPathIntactBothWays(t *testing.T) {
	const size = 256 << 20
	t.Run("tls", func(t *testing.T) {
		db, _ := omatest.OpenStore(t, "sqlite")
		o := runOMA(t, db, newSetup(t, streamEcho(t), streamEcho(t)))
		v := o.enrollVMA("vma-tls", nil)
		rc := startClient(t, o.oma, v, withDataPath(t, o.oma, v, 4))
		rc.waitUp(t, 1)
		if err := checksumEcho(o.nbdLocal, size, 1); err != nil {
			t.Fatal(err)
		}
		rc.ev.waitFor(t, vmaclient.EventDataPath, 1, time.Second)
		if ev := rc.ev.first(vmaclient.EventDataPath); ev.Reason != "" {
			t.Fatalf("the NBD connection did not take the TLS data path: %s", ev.Message)
		}
		eventuallyT(t, 5*time.Second, "the data stream to end", func() bool { return o.ep.LiveDataStreams() == 0 })
		// The reverse forward (SSH) while we are at it.
		if err := checksumEcho(fmt.Sprintf("127.0.0.1:%d", v.port), size, 2); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ssh", func(t *testing.T) {
		db, _ := omatest.OpenStore(t, "sqlite")
		o := runOMA(t, db, newSetup(t, streamEcho(t), streamEcho(t)))
		v := o.enrollVMA("vma-ssh", nil)
		rc := startClient(t, o.oma, v, nil)
		rc.waitUp(t, 1)
		if err := checksumEcho(o.nbdLocal, size, 3); err != nil {
			t.Fatal(err)
		}
		if n := rc.ev.count(vmaclient.EventDataPath); n != 0 {
			t.Fatalf("the client without DataTLS used the data path:\n%s", rc.ev)
		}
	})
}

// TestDataPathSpreadsAndRevokes opens more NBD connections than
// DataConnections: all carry their bytes, the VMA stays one active VMA,
// and a revocation ends every one of them with an error.
func TestDataPathSpreadsAndRevokes(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	o := runOMA(t, db, newSetup(t, streamEcho(t), echoServer(t, "vma-api:")))
	v := o.enrollVMA("vma-multi", nil)
	rc := startClient(t, o.oma, v, withDataPath(t, o.oma, v, 2))
	rc.waitUp(t, 1)

	// Six connections at once: two ride TLS streams, four the SSH one.
	conns := make([]net.Conn, 6)
	for i := range conns {
		c, err := net.DialTimeout("tcp", o.nbdLocal, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, b[:]); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		c.SetReadDeadline(time.Time{})
		conns[i] = c
	}
	if n := o.ep.LiveDataStreams(); n != 2 {
		t.Fatalf("data streams = %d, want 2 (DataConnections)", n)
	}
	active, err := o.svc.Active(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 1 || active[0].EnrollmentID != v.id {
		t.Fatalf("active = %+v, want only %s", active, v.id)
	}

	// Revocation: every connection ends, and the TLS streams' ends see an
	// error rather than an end of data.
	if _, err := o.svc.Revoke(context.Background(), v.id, "test", enroll.Meta{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, errs[i] = io.Copy(io.Discard, c)
		}()
	}
	wg.Wait()
	resets := 0
	for i, err := range errs {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection %d still open 20s after the revocation", i)
		}
		if err != nil {
			resets++
		}
	}
	if resets < 2 {
		t.Fatalf("%d connections ended with an error after the revocation, want at least the 2 TLS streams: %v", resets, errs)
	}
	eventuallyT(t, 10*time.Second, "the data streams to be gone", func() bool { return o.ep.LiveDataStreams() == 0 })
}

func (e *events) first(typ vmaclient.EventType) vmaclient.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.all {
		if ev.Type == typ {
			return ev
		}
	}
	return vmaclient.Event{}
}

// TestDataPathInterruptedIsAnError: a TLS data stream broken on either
// side surfaces as an error on the other end, never as a clean end of
// data that would pass for a finished transfer.
func TestDataPathInterruptedIsAnError(t *testing.T) {
	// The OMA's NBD target reads 1 MiB, then resets its connection.
	got := make(chan error, 4)
	nbd := testbin.Serve(t, "127.0.0.1:0", func(c net.Conn) {
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return
		}
		if b[0] == 'r' { // "reset": the target breaks after 1 MiB
			io.CopyN(io.Discard, c, 1<<20)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			return
		}
		_, err := io.Copy(io.Discard, c) // "keep": until the VMA side breaks
		got <- err
	})
	db, _ := omatest.OpenStore(t, "sqlite")
	o := runOMA(t, db, newSetup(t, nbd, echoServer(t, "vma-api:")))
	v := o.enrollVMA("vma-broken", nil)
	rc := startClient(t, o.oma, v, withDataPath(t, o.oma, v, 4))
	rc.waitUp(t, 1)

	t.Run("target breaks", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", o.nbdLocal, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		c.Write([]byte("r"))
		block := make([]byte, 64<<10)
		var werr error
		for sent := 0; sent < 512<<20 && werr == nil; sent += len(block) {
			_, werr = c.Write(block)
		}
		_, rerr := io.Copy(io.Discard, c)
		if werr == nil && rerr == nil {
			t.Fatal("the VMA-side writer saw neither a write nor a read error after the NBD target broke the connection")
		}
	})
	t.Run("VMA side breaks", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", o.nbdLocal, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("k"))
		c.Write(make([]byte, 4<<20))
		c.(*net.TCPConn).SetLinger(0)
		c.Close() // reset, mid-transfer
		select {
		case err := <-got:
			if err == nil {
				t.Fatal("the NBD target saw a clean end of data after the VMA side broke the transfer")
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the NBD target's connection did not end within 30s of the VMA side breaking")
		}
	})
	if ev := rc.ev.first(vmaclient.EventDataPath); ev.Reason != "" || ev.Type == "" {
		t.Fatalf("the streams did not take the TLS data path:\n%s", rc.ev)
	}
}

// TestDataPathRefusesUnapprovedKeys: a key that is not approved (unknown,
// or revoked) gets "refused", and a client without a certificate does not
// finish the handshake; an approved key gets its stream.
func TestDataPathRefusesUnapprovedKeys(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	o := runOMA(t, db, newSetup(t, streamEcho(t), echoServer(t, "vma-api:")))
	v := o.enrollVMA("vma-keys", nil)
	priv := vmaKey(t, v)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr := o.srv.PublicAddr()
	c, err := vmaclient.DialData(ctx, addr, dataTLS(t, o.srv.Fingerprint(), priv))
	if err != nil {
		t.Fatalf("approved key: %v", err)
	}
	c.Close()

	_, stranger, _ := ed25519.GenerateKey(nil)
	if _, err := vmaclient.DialData(ctx, addr, dataTLS(t, o.srv.Fingerprint(), stranger)); !errors.Is(err, vmaclient.ErrDataRefused) {
		t.Fatalf("unknown key: %v, want ErrDataRefused", err)
	}
	noCert := dataTLS(t, o.srv.Fingerprint(), priv)
	noCert.Certificates = nil
	if c, err := vmaclient.DialData(ctx, addr, noCert); err == nil {
		c.Close()
		t.Fatal("a client without a certificate got a data stream")
	}
	if _, err := o.svc.Revoke(context.Background(), v.id, "test", enroll.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := vmaclient.DialData(ctx, addr, dataTLS(t, o.srv.Fingerprint(), priv)); !errors.Is(err, vmaclient.ErrDataRefused) {
		t.Fatalf("revoked key: %v, want ErrDataRefused", err)
	}
	// HTTPS on the same port is unaffected (no certificate asked).
	res, err := o.client.Get("https://" + addr + "/health")
	if err != nil {
		t.Fatalf("HTTPS next to the data path: %v", err)
	}
	res.Body.Close()
}

// TestDataPathFallsBackToSSH: where the OMA's port does not offer the data
// path (an older OMA, or a plain HTTPS server), NBD connections ride the
// SSH connection, and the client says so once.
func TestDataPathFallsBackToSSH(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	o := runOMA(t, db, newSetup(t, streamEcho(t), echoServer(t, "vma-api:")))
	v := o.enrollVMA("vma-old-oma", nil)
	plain := httptest.NewTLSServer(http.NotFoundHandler())
	defer plain.Close()
	pin := client.SPKIFingerprint(plain.Certificate())
	priv := vmaKey(t, v)
	rc := startClient(t, o.oma, v, func(c *vmaclient.ClientConfig) {
		c.DataTLS = dataTLS(t, pin, priv)
		c.DataAddr = plain.Listener.Addr().String()
		c.DataTarget = v.tun.LocalForwards[0].Target
		c.DataConnections = 4
	})
	rc.waitUp(t, 1)
	for i := range 3 {
		if err := checksumEcho(o.nbdLocal, 1<<20, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := rc.ev.count(vmaclient.EventDataPath); n != 1 {
		t.Fatalf("%d data_path events, want 1:\n%s", n, rc.ev)
	}
	if ev := rc.ev.first(vmaclient.EventDataPath); ev.Reason == "" {
		t.Fatalf("the data_path event gives no reason for the fallback: %s", ev.Message)
	}
}

// TestDataPathFailuresSpendTheLoginBudget: a refused key on the TLS data
// path charges the address's failed-login budget like a refused SSH login,
// so an address that used it up gets no more key checks (each one a
// database lookup), not even for an approved key, until it refills.
func TestDataPathFailuresSpendTheLoginBudget(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	o := runOMA(t, db, newSetup(t, streamEcho(t), echoServer(t, "vma-api:")))
	v := o.enrollVMA("vma-budget", nil)
	priv := vmaKey(t, v)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := o.srv.PublicAddr()
	_, stranger, _ := ed25519.GenerateKey(nil)
	const budget = 10 // the default failed-login burst
	for i := 0; i < budget; i++ {
		if _, err := vmaclient.DialData(ctx, addr, dataTLS(t, o.srv.Fingerprint(), stranger)); !errors.Is(err, vmaclient.ErrDataRefused) {
			t.Fatalf("unknown key, attempt %d: %v, want ErrDataRefused", i+1, err)
		}
	}
	if got := o.ep.Stats().AuthFailures; got != budget {
		t.Errorf("AuthFailures = %d, want %d", got, budget)
	}
	if c, err := vmaclient.DialData(ctx, addr, dataTLS(t, o.srv.Fingerprint(), priv)); err == nil {
		c.Close()
		t.Fatal("an address out of failed logins still got a data stream")
	}
	if got := o.ep.Stats().AuthLocked; got == 0 {
		t.Error("AuthLocked = 0 after the budget was spent")
	}
}
