package e2e

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/vmaclient"
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return vmaclient.DialData(ctx, addr, vmaTLS(t, pin, priv, tunnel.ALPNData))
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
// the streams are the data path's client (internal/tunnel/vmaclient.DialData).
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
		if _, err := dataStream(t, s.public, pin, k0); !errors.Is(err, vmaclient.ErrDataRefused) {
			t.Fatalf("a new data stream with the rotated-away key: %v, want refused", err)
		}

		// Revocation ends the new key's stream too.
		if r := s.omactl("revoke", "vma-rot-data", "--reason", "test", "--yes"); r.code != 0 {
			t.Fatalf("revoke: %s", r)
		}
		waitClosed(t, fresh, 10*time.Second, "the data stream of a revoked VMA")
	})
}

// nbdEcho is the NBD target of TestRotateTwoInstances: "nbd:", then what
// it reads, as it reads it (checkForwards and the data streams both work).
func nbdEcho(t *testing.T) string {
	t.Helper()
	return testbin.Serve(t, "127.0.0.1:0", func(c net.Conn) {
		io.WriteString(c, "nbd:")
		io.Copy(c, c)
	})
}

// nbdStream is a data stream to addr past the target's "nbd:".
func nbdStream(t *testing.T, addr, pin string, priv ed25519.PrivateKey) net.Conn {
	t.Helper()
	c, err := dataStream(t, addr, pin, priv)
	if err != nil {
		t.Fatalf("data stream to %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		t.Fatalf("data stream to %s: %v", addr, err)
	}
	c.SetReadDeadline(time.Time{})
	return c
}

// TestRotateTwoInstances: two oma-server instances on one MariaDB database
// behind one address (a TCP proxy stands in for the load balancer; the
// instances share the TLS certificate, the SSH host key, the audit key and
// the admin token). A rotation through instance A: B closes the OpenSSH
// session and the TLS data stream of the old key it carries (its recheck
// reads what A wrote), the native tunnel to B authenticates with the new
// key and B refuses the old one. A rotation through A whose new key is not
// used yet (vma-enroll killed before its check): B accepts the previous
// key for A's --rotation-grace, then closes its stream and refuses it.
// A revocation through A ends the tunnel and the data stream on B.
func TestRotateTwoInstances(t *testing.T) {
	testbin.Need(t, "apt-get install openssh-client", "ssh")
	nbdListen := testbin.FreeAddr(t)
	tport := strconv.Itoa(testbin.FreePort(t))
	lb := newRotProxy(t, "")
	_, lbPort, _ := net.SplitHostPort(lb.addr)
	// Both instances send VMAs to the load balancer's port.
	a := startServer(t, backend{"mysql"}, "--tunnel-mode", "embedded", "--nbd-target", nbdEcho(t),
		"--vma-api-target", prefixEcho(t, "vma-api:"), "--vma-nbd-listen", nbdListen, "--tunnel-port-range", tport+"-"+tport,
		"--public-port", lbPort)
	b := a.second()
	lb.setTarget(a.public)
	db := a.sqlDB()

	const name = "vma-rot-two"
	pc := a.pairingCode()
	dir := t.TempDir()
	v := startVMA(t, dir, "--oma", lb.addr, "--code", pc.PairingCode, "--fingerprint", pc.OMAFingerprint, "--name", name, "-o", "json", "--timeout", "60s")
	a.waitPending(name)
	if r := a.omactl("approve", name); r.code != 0 {
		t.Fatalf("approve: %s", r)
	}
	if r := v.wait(30 * time.Second); r.code != 0 {
		t.Fatalf("vma-enroll: %s", r)
	}
	id, k0, pin := readState(t, dir)
	key := filepath.Join(dir, "id_ed25519")
	old := saveKey(t, key)
	activeKey := func(fp string) func() bool {
		return func() bool {
			var active []api.Connection
			b.omactlJSON(&active, "active")
			return len(active) == 1 && active[0].ConnectionStatus == "connected" && active[0].VMAFingerprint == fp
		}
	}

	// The OpenSSH client and a data stream on B with the enrolled key.
	lb.setTarget(b.public)
	sshTun := startVMA(t, dir, "tunnel", "--openssh")
	eventually(t, 20*time.Second, "the OpenSSH tunnel on B", activeKey(k0))
	// (the instance logs the connection after it recorded it)
	eventually(t, 10*time.Second, "B to log the tunnel", func() bool { return strings.Contains(b.log.String(), "tunnel connected") })
	if strings.Contains(a.log.String(), "tunnel connected") {
		t.Fatalf("the tunnel is on A:\n%s", a.log.String())
	}
	checkForwards(t, nbdListen, tport, "over OpenSSH to B")
	d0 := nbdStream(t, b.public, pin, readPriv(t, old))

	// Rotate through A: B ends both of the old key.
	lb.setTarget(a.public)
	rr := rotate(t, dir)
	rotated := time.Now()
	k1 := rr.KeyFingerprint
	if rr.PreviousKeyFingerprint != k0 || dbKey(db, id) != k1 {
		t.Fatalf("rotation through A: %+v, the database holds %s", rr, dbKey(db, id))
	}
	waitClosed(t, d0, 10*time.Second, "B's data stream of the rotated-away key")
	select {
	case <-sshTun.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("B kept the OpenSSH session of the rotated-away key open")
	}
	t.Logf("B closed the old key's session and stream %s after the rotation through A returned", time.Since(rotated).Round(time.Millisecond))
	eventually(t, 10*time.Second, "B to log why it closed them", func() bool {
		l := b.log.String()
		return strings.Contains(l, "tunnel data stream closed") && strings.Contains(l, "previous key's grace ended\"")
	})

	// The native tunnel to B with the new key; B refuses the old one.
	lb.setTarget(b.public)
	tun := startVMA(t, dir, "tunnel", "-o", "json")
	waitTunnel(t, b, tun, 1)
	eventually(t, 10*time.Second, "the tunnel on B with the new key", activeKey(k1))
	checkForwards(t, nbdListen, tport, "over the native tunnel to B")
	if _, err := dataStream(t, b.public, pin, readPriv(t, old)); !errors.Is(err, vmaclient.ErrDataRefused) {
		t.Fatalf("B and the rotated-away key: %v, want refused", err)
	}
	if st := statusWith(t, dir, old); st != "revoked" {
		t.Fatalf("B and the rotated-away key (self): %s, want refused", st)
	}
	tun.cmd.Process.Signal(syscall.SIGTERM)
	tun.wait(15 * time.Second)

	// A rotation through A (grace 5s) whose new key is not used: vma-enroll
	// is killed before its check with it (the proxy never connects it).
	a.Opts.Args = append(a.Opts.Args, "--rotation-grace", "5s")
	a.Restart()
	old = saveKey(t, key)
	d1 := nbdStream(t, b.public, pin, readPriv(t, old))
	lb.setTarget(a.public)
	blackholed := lb.blackholeAfterNext(1) // the rotation's request; not the check after it
	v = startVMA(t, dir, "rotate")
	v.reach(blackholed, "its check with the new key")
	v.cmd.Process.Kill()
	<-v.done
	lb.reset()
	lb.setTarget(b.public)
	k2 := dbKey(db, id)
	if k2 == k1 || keyFP(t, key) != k2 {
		t.Fatalf("the rotation through A: the database holds %s, id_ed25519 is %s (was %s)", k2, keyFP(t, key), k1)
	}
	// B still accepts k1 (A's grace); then it ends, and B closes the
	// stream of k1 and refuses it.
	if err := echoes(d1, " inside the grace"); err != nil {
		t.Fatalf("B's data stream of the previous key inside its grace: %v", err)
	}
	waitClosed(t, d1, 15*time.Second, "B's data stream of the previous key after its grace")
	if _, err := dataStream(t, b.public, pin, readPriv(t, old)); !errors.Is(err, vmaclient.ErrDataRefused) {
		t.Fatalf("B and the previous key after its grace: %v, want refused", err)
	}

	// A revocation through A ends the tunnel and the data stream on B.
	tun = startVMA(t, dir, "tunnel", "-o", "json")
	waitTunnel(t, b, tun, 1)
	eventually(t, 10*time.Second, "the tunnel on B with the newest key", activeKey(k2))
	d2 := nbdStream(t, b.public, pin, readPriv(t, key))
	if r := a.omactl("revoke", name, "--reason", "test", "--yes"); r.code != 0 {
		t.Fatalf("revoke through A: %s", r)
	}
	revoked := time.Now()
	waitClosed(t, d2, 10*time.Second, "B's data stream after the revocation through A")
	eventually(t, 10*time.Second, "B to end the tunnel of the revoked VMA", func() bool {
		return strings.Contains(b.log.String(), `reason="enrollment revoked"`)
	})
	t.Logf("B ended the tunnel and the stream %s after the revocation through A returned", time.Since(revoked).Round(time.Millisecond))
	if r := tun.wait(30 * time.Second); r.code != 7 {
		t.Fatalf("vma-enroll tunnel after the revocation: %s", r)
	}
}
