package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
	"github.com/oma-enroll/oma-enroll/internal/vmaauth"
)

// echoServer answers each connection with what it reads, as it reads it.
func echoServer(t *testing.T) string {
	t.Helper()
	return testbin.Serve(t, "127.0.0.1:0", func(c net.Conn) { io.Copy(c, c) })
}

// dataStream opens a TLS data stream (ALPN oma-nbd/1) to the OMA at addr
// with priv as the client certificate, as vma-enroll tunnel does.
func dataStream(t *testing.T, addr, pin string, priv ed25519.PrivateKey) (net.Conn, error) {
	t.Helper()
	cert, err := vmaauth.ClientCertificate(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := client.TLSConfig(pin, false)
	cfg.MinVersion = tls.VersionTLS13
	cfg.NextProtos = []string{tunnel.ALPNData}
	cfg.Certificates = []tls.Certificate{cert}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return tunnel.DialData(ctx, addr, cfg)
}

// echoes reports whether msg comes back through c (the NBD target of these
// tests echoes).
func echoes(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echoed " + string(buf))
	}
	return nil
}

// waitClosed waits until the OMA ends c (a read error other than the
// deadline), or fails after timeout.
func waitClosed(t *testing.T, c net.Conn, timeout time.Duration, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	_, err := c.Read(make([]byte, 64))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("%s: still open after %s (read: %v)", what, timeout, err)
	}
}

// TestRotateDataStreams: an open TLS data stream authenticated by the key
// the VMA rotates away lasts while the OMA still accepts that key (the
// grace) and is closed once it stops accepting it (the VMA used the new
// key), as the SSH tunnels of that key are; a stream of the new key stays;
// a revocation ends the new key's stream. The OMA is the real oma-server,
// the streams are the data path's client (internal/tunnel.DialData).
func TestRotateDataStreams(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startServer(t, b, "--tunnel-mode", "embedded", "--nbd-target", echoServer(t), "--rotation-grace", "10m")
		dir := s.enrolled("vma-rot-data")
		id, fp0, pin := readState(t, dir)
		k0 := readPriv(t, filepath.Join(dir, "id_ed25519"))

		old, err := dataStream(t, s.public, pin, k0)
		if err != nil {
			t.Fatalf("data stream with the enrolled key: %v", err)
		}
		defer old.Close()
		if err := echoes(old, "before the rotation"); err != nil {
			t.Fatalf("data stream before the rotation: %v", err)
		}

		// The swap alone (no use of the new key yet): the old key is in its
		// grace, its stream carries on.
		_, k1, _ := ed25519.GenerateKey(nil)
		c := mtls(t, s, pin, k0)
		if code, ec := rawRotate(t, c, id, fp0, k1, nil); code != 200 {
			t.Fatalf("rotate: %d %s", code, ec)
		}
		c.Close()
		time.Sleep(time.Second) // two rechecks of the OMA (every 500ms)
		if err := echoes(old, "inside the grace"); err != nil {
			t.Fatalf("the old key's data stream inside its grace: %v", err)
		}
		fresh, err := dataStream(t, s.public, pin, k1)
		if err != nil {
			t.Fatalf("data stream with the new key: %v", err)
		}
		defer fresh.Close()

		// The new key was used (its data stream): the grace ended, the old
		// key's stream is closed, the new one's carries on.
		waitClosed(t, old, 10*time.Second, "the data stream of the rotated-away key")
		eventually(t, 10*time.Second, "the OMA to log why it closed the old key's stream", func() bool {
			l := s.log.String()
			return strings.Contains(l, "tunnel data stream closed") && strings.Contains(l, "previous key's grace ended")
		})
		if err := echoes(fresh, "after the grace"); err != nil {
			t.Fatalf("the new key's data stream: %v", err)
		}
		if _, err := dataStream(t, s.public, pin, k0); !errors.Is(err, tunnel.ErrDataRefused) {
			t.Fatalf("a new data stream with the rotated-away key: %v, want refused", err)
		}

		// Revocation ends the new key's stream too.
		if r := s.omactl("revoke", "vma-rot-data", "--reason", "test", "--yes"); r.code != 0 {
			t.Fatalf("revoke: %s", r)
		}
		waitClosed(t, fresh, 10*time.Second, "the data stream of a revoked VMA")
	})
}
