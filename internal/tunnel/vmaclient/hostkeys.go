package vmaclient

import (
	"bytes"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/tunnel"
)

// The native client's side of the OMA's host key rotation (tunnel/hostkeyproto.go):
// it trusts the pinned key and the next keys the OMA announced and proved
// over a connection verified with a trusted key; when the handshake
// presents a next key (the OMA switched), that key becomes the pinned one
// and the others are dropped. Every change goes to OnHostKeys, which
// vma-enroll writes to enrollment.json and known_hosts.

// Events of the host key rotation (vma-enroll tunnel -o json).
const (
	// EventHostKeyLearned: the OMA announced and proved a next host key.
	EventHostKeyLearned EventType = "host_key_learned"
	// EventHostKeySwitched: the OMA presented the next key; it is now the
	// pinned one.
	EventHostKeySwitched EventType = "host_key_switched"
)

// clientHostKeys is the client's trusted OMA host keys.
type clientHostKeys struct {
	mu      sync.Mutex
	current ssh.PublicKey
	next    []ssh.PublicKey
}

func (h *clientHostKeys) get() (ssh.PublicKey, []ssh.PublicKey) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.current, slices.Clone(h.next)
}

func sameKey(a, b ssh.PublicKey) bool { return bytes.Equal(a.Marshal(), b.Marshal()) }

func containsKey(ks []ssh.PublicKey, k ssh.PublicKey) bool {
	return slices.ContainsFunc(ks, func(x ssh.PublicKey) bool { return sameKey(x, k) })
}

// hostKeyAlgorithmsFor asks for the types of all trusted keys.
func hostKeyAlgorithmsFor(cur ssh.PublicKey, next []ssh.PublicKey) []string {
	algs := hostKeyAlgorithms(cur)
	for _, k := range next {
		for _, a := range hostKeyAlgorithms(k) {
			if !slices.Contains(algs, a) {
				algs = append(algs, a)
			}
		}
	}
	return algs
}

// switchedTo makes k, a next key the handshake presented, the pinned one.
func (c *Client) switchedTo(k ssh.PublicKey) {
	h := &c.hostKeys
	h.mu.Lock()
	if sameKey(h.current, k) {
		h.mu.Unlock()
		return
	}
	old := h.current
	h.current, h.next = k, nil
	h.mu.Unlock()
	c.saveHostKeys()
	c.emit(Event{Type: EventHostKeySwitched, Message: fmt.Sprintf("the OMA switched to its next SSH host key %s (announced and proved before; %s is no longer trusted)",
		ssh.FingerprintSHA256(k), ssh.FingerprintSHA256(old))})
}

func (c *Client) saveHostKeys() {
	if c.cfg.OnHostKeys == nil {
		return
	}
	cur, next := c.hostKeys.get()
	if err := c.cfg.OnHostKeys(cur, next); err != nil {
		c.emit(Event{Type: EventHostKeyLearned, Reason: err.Error(),
			Message: "cannot record the OMA's SSH host keys (this run still trusts them): " + err.Error()})
	}
}

// watchHostKeys passes the server's global requests on to the ssh.Client,
// except its host key announcements, which it answers itself, one at a
// time: an OMA announces once per connection, and announcements that come
// while one is being proven are dropped, so a peer that floods them gets
// one proof request and one goroutine, not one per announcement.
func (c *Client) watchHostKeys(conn ssh.Conn, reqs <-chan *ssh.Request) <-chan *ssh.Request {
	out := make(chan *ssh.Request, 16)
	// One announcement per connection, as the OMA sends (and as OpenSSH's
	// client takes: it ends a connection that announces twice); later
	// ones are ignored, so a peer cannot make this client ask for proofs
	// without end.
	var seen bool
	go func() {
		defer close(out)
		for r := range reqs {
			if r.Type != tunnel.ReqHostKeys {
				out <- r
				continue
			}
			if r.WantReply {
				r.Reply(false, nil)
			}
			if seen {
				continue
			}
			seen = true
			go c.learnHostKeys(conn, r.Payload)
		}
	}()
	return out
}

// learnHostKeys handles an announcement: keys the client does not trust
// yet are proven (hostkeys-prove-00@openssh.com) before they are trusted;
// next keys the OMA no longer announces (a rotation it aborted) are dropped.
func (c *Client) learnHostKeys(conn ssh.Conn, payload []byte) {
	blobs, err := tunnel.ParseKeyBlobs(payload)
	if err != nil {
		return
	}
	var announced []ssh.PublicKey
	for _, b := range blobs {
		k, err := ssh.ParsePublicKey(b)
		if err != nil {
			continue // a type this client does not know
		}
		if _, isCert := k.(*ssh.Certificate); isCert || containsKey(announced, k) {
			continue
		}
		announced = append(announced, k)
	}
	cur, next := c.hostKeys.get()
	if !containsKey(announced, cur) {
		return // an announcement without the key this connection was verified with: ignore it
	}
	var fresh, keep []ssh.PublicKey
	for _, k := range announced {
		switch {
		case sameKey(k, cur):
		case containsKey(next, k):
			keep = append(keep, k)
		default:
			fresh = append(fresh, k)
		}
	}
	if len(fresh) > 0 {
		var req []byte
		for _, k := range fresh {
			req = append(req, ssh.Marshal(struct{ Blob []byte }{k.Marshal()})...)
		}
		ok, resp, err := conn.SendRequest(tunnel.ReqHostKeysProve, true, req)
		if err != nil || !ok {
			return
		}
		sigs, err := tunnel.ParseKeyBlobs(resp)
		if err != nil || len(sigs) != len(fresh) {
			return
		}
		for i, k := range fresh {
			var sig ssh.Signature
			if ssh.Unmarshal(sigs[i], &sig) != nil || k.Verify(tunnel.HostKeyProofData(conn.SessionID(), k.Marshal()), &sig) != nil {
				c.emit(Event{Type: EventHostKeyLearned, Reason: "bad proof",
					Message: "the OMA announced the SSH host key " + ssh.FingerprintSHA256(k) + " but did not prove it holds it: not trusted"})
				return
			}
		}
	}
	h := &c.hostKeys
	h.mu.Lock()
	if !sameKey(h.current, cur) {
		h.mu.Unlock()
		return // switched meanwhile
	}
	changed := len(fresh) > 0 || len(keep) != len(h.next)
	h.next = append(keep, fresh...)
	h.mu.Unlock()
	if !changed {
		return
	}
	c.saveHostKeys()
	for _, k := range fresh {
		c.emit(Event{Type: EventHostKeyLearned, Message: fmt.Sprintf("the OMA announced its next SSH host key %s and proved it holds it: trusted beside %s until the OMA switches",
			ssh.FingerprintSHA256(k), ssh.FingerprintSHA256(cur))})
	}
}
