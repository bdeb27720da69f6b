package vmaclient

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
)

// The native client's side of the OMA's host key rotation against an OMA
// that does not follow the protocol: an SSH server (golang.org/x/crypto/ssh)
// holding the pinned host key, driven by the test.

// hostilePeer is the server's end of one connection with the client.
type hostilePeer struct {
	conn  *ssh.ServerConn
	reqs  <-chan *ssh.Request // the client's global requests
	host  ssh.Signer          // the pinned host key
	other ssh.Signer          // a key the peer announces as its next one
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dialHostile connects a Client to a server holding the pinned key and
// returns both ends; events collects what the client reported.
func dialHostile(t *testing.T) (*Client, *hostilePeer, func() []Event) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &hostilePeer{host: newSigner(t), other: newSigner(t)}
	srvConf := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil }}
	srvConf.AddHostKey(p.host)
	accepted := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			accepted <- err
			return
		}
		conn, chans, reqs, err := ssh.NewServerConn(nc, srvConf)
		if err == nil {
			p.conn, p.reqs = conn, reqs
			go func() {
				for ch := range chans {
					ch.Reject(ssh.Prohibited, "no channels")
				}
			}()
		}
		accepted <- err
	}()

	var mu sync.Mutex
	var events []Event
	c, err := NewClient(ClientConfig{
		Addr: ln.Addr().String(), HostKey: p.host.PublicKey(), Signer: newSigner(t),
		LocalForwards: []api.Forward{{Listen: "127.0.0.1:1", Target: "127.0.0.1:2"}},
		Keepalive:     -1,
		OnEvent:       func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := c.dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.conn.Close() })
	return c, p, func() []Event { mu.Lock(); defer mu.Unlock(); return append([]Event(nil), events...) }
}

// announce sends hostkeys-00@openssh.com with the keys.
func (p *hostilePeer) announce(t *testing.T, keys ...ssh.PublicKey) {
	t.Helper()
	var payload []byte
	for _, k := range keys {
		payload = append(payload, ssh.Marshal(struct{ Blob []byte }{k.Marshal()})...)
	}
	if _, _, err := p.conn.SendRequest(tunnel.ReqHostKeys, false, payload); err != nil {
		t.Fatal(err)
	}
}

// proveRequest waits for the client's next hostkeys-prove-00@openssh.com.
func (p *hostilePeer) proveRequest(t *testing.T, within time.Duration) *ssh.Request {
	t.Helper()
	for {
		select {
		case r, ok := <-p.reqs:
			if !ok {
				t.Fatal("the client closed the connection")
			}
			if r.Type == tunnel.ReqHostKeysProve {
				return r
			}
			if r.WantReply {
				r.Reply(false, nil)
			}
		case <-time.After(within):
			return nil
		}
	}
}

// proof is the answer to a proof request for key signed by signer.
func (p *hostilePeer) proof(t *testing.T, signer ssh.Signer, key ssh.PublicKey) []byte {
	t.Helper()
	sig, err := signer.Sign(rand.Reader, tunnel.HostKeyProofData(p.conn.SessionID(), key.Marshal()))
	if err != nil {
		t.Fatal(err)
	}
	return ssh.Marshal(struct{ Sig []byte }{ssh.Marshal(sig)})
}

// A next key is trusted only once the OMA proved it holds it: a proof
// signed by another key (here the current host key) is refused and said.
func TestHostKeyTrustedOnlyWithProof(t *testing.T) {
	c, p, events := dialHostile(t)
	next := p.other.PublicKey()

	p.announce(t, p.host.PublicKey(), next)
	r := p.proveRequest(t, 10*time.Second)
	if r == nil {
		t.Fatal("the client trusted or dropped the announced key without asking for a proof")
	}
	r.Reply(true, p.proof(t, p.host, next)) // signed with the wrong key
	deadline := time.Now().Add(10 * time.Second)
	for !hasReason(events(), "bad proof") {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal of the bad proof; events %+v", events())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, nx := c.hostKeys.get(); len(nx) != 0 {
		t.Fatalf("a key with a bad proof is trusted: %d next keys", len(nx))
	}

	// A second announcement on the same connection is ignored (the OMA
	// announces once per connection, and OpenSSH ends a connection that
	// announces twice): no second proof request.
	p.announce(t, p.host.PublicKey(), next)
	if r := p.proveRequest(t, time.Second); r != nil {
		r.Reply(false, nil)
		t.Fatal("a second announcement on one connection got a proof request")
	}

	// On a connection of its own, the same key with its own signature is
	// trusted beside the pinned one.
	c, p, events = dialHostile(t)
	next = p.other.PublicKey()
	p.announce(t, p.host.PublicKey(), next)
	if r = p.proveRequest(t, 10*time.Second); r == nil {
		t.Fatal("no proof request for the announced key")
	}
	r.Reply(true, p.proof(t, p.other, next))
	deadline = time.Now().Add(10 * time.Second)
	for {
		if cur, nx := c.hostKeys.get(); len(nx) == 1 && sameKey(nx[0], next) && sameKey(cur, p.host.PublicKey()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proven key is not trusted; events %+v", events())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An announcement without the key the connection was verified with is
// ignored: no proof asked, nothing trusted.
func TestHostKeyAnnouncementWithoutPinnedKeyIgnored(t *testing.T) {
	c, p, _ := dialHostile(t)
	p.announce(t, p.other.PublicKey())
	if r := p.proveRequest(t, time.Second); r != nil {
		t.Fatal("the client asked to prove keys of an announcement that lacks the pinned key")
	}
	if _, nx := c.hostKeys.get(); len(nx) != 0 {
		t.Fatalf("%d next keys trusted", len(nx))
	}
}

// A peer that floods announcements while the client waits for its proof
// gets one proof request, not one (and one waiting goroutine) per
// announcement: the announcements that came meanwhile are dropped. (The
// ssh package sends global requests one at a time, so the surplus shows
// as further proof requests once the first is answered.)
func TestHostKeyAnnouncementFloodBounded(t *testing.T) {
	_, p, _ := dialHostile(t)
	for range 50 {
		p.announce(t, p.host.PublicKey(), p.other.PublicKey())
	}
	first := p.proveRequest(t, 10*time.Second)
	if first == nil {
		t.Fatal("no proof request for the announced key")
	}
	first.Reply(false, nil)
	n := 0
	for r := p.proveRequest(t, time.Second); r != nil; r = p.proveRequest(t, time.Second) {
		r.Reply(false, nil)
		n++
	}
	if n != 0 {
		t.Fatalf("%d more proof requests after the first: the announcements are not bounded", n)
	}
}

func hasReason(evs []Event, reason string) bool {
	for _, e := range evs {
		if e.Reason == reason {
			return true
		}
	}
	return false
}
