package endpoint

import (
	"bytes"
	"crypto/rand"
	"sync/atomic"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/tunnel"
)

// The endpoint's side of the OMA's SSH host key rotation (the protocol:
// tunnel/hostkeyproto.go).

// hostKeySet is the endpoint's host keys: the one the handshake presents
// and, during a rotation's overlap, the next one.
type hostKeySet struct {
	current, next ssh.Signer
}

func (s *hostKeySet) signers() []ssh.Signer {
	if s.next == nil {
		return []ssh.Signer{s.current}
	}
	return []ssh.Signer{s.current, s.next}
}

// SetHostKeys sets the host key the handshake presents (current) and the
// next one that is announced beside it (nil: no rotation under way). Live
// connections that have not been told of the keys yet are told now, once
// each: OpenSSH's client ends a connection that announces twice.
func (e *Endpoint) SetHostKeys(current, next ssh.Signer) {
	if current == nil {
		return
	}
	e.hostKeys.Store(&hostKeySet{current: current, next: next})
	if next == nil {
		return
	}
	e.mu.Lock()
	var live []*tunnelConn
	for _, set := range e.conns {
		for c := range set {
			live = append(live, c)
		}
	}
	e.mu.Unlock()
	for _, c := range live {
		go e.announceHostKeys(c)
	}
}

// HostKeys returns the current and the next host key (nil outside an
// overlap).
func (e *Endpoint) HostKeys() (current, next ssh.PublicKey) {
	ks := e.hostKeys.Load()
	if ks.next != nil {
		next = ks.next.PublicKey()
	}
	return ks.current.PublicKey(), next
}

// announceHostKeys tells a connection of the current and next host keys,
// when a rotation is under way and it was not told yet.
func (e *Endpoint) announceHostKeys(c *tunnelConn) {
	ks := e.hostKeys.Load()
	if ks.next == nil || !c.announced.CompareAndSwap(false, true) {
		return
	}
	var payload []byte
	for _, s := range ks.signers() {
		payload = append(payload, ssh.Marshal(struct{ Blob []byte }{s.PublicKey().Marshal()})...)
	}
	if _, _, err := c.conn.SendRequest(tunnel.ReqHostKeys, false, payload); err != nil {
		e.log.Debug("host key announcement not sent", "enrollment_id", c.id, "err", err)
	}
}

// proveHostKeys answers hostkeys-prove-00@openssh.com: a signature for
// each asked key that is one of the endpoint's, else a refusal.
func (e *Endpoint) proveHostKeys(c *tunnelConn, req *ssh.Request) {
	// A client asks once per announcement, and a connection is announced
	// to at most once: a few asks are plenty, more are refused unsigned.
	if c.proofs.Add(1) > maxProofsPerConn {
		req.Reply(false, nil)
		return
	}
	blobs, err := tunnel.ParseKeyBlobs(req.Payload)
	if err != nil || len(blobs) == 0 {
		req.Reply(false, nil)
		return
	}
	signers := e.hostKeys.Load().signers()
	var out []byte
	for _, blob := range blobs {
		var signer ssh.Signer
		for _, s := range signers {
			if bytes.Equal(s.PublicKey().Marshal(), blob) {
				signer = s
			}
		}
		if signer == nil {
			req.Reply(false, nil)
			return
		}
		sig, err := signer.Sign(rand.Reader, tunnel.HostKeyProofData(c.conn.SessionID(), blob))
		if err != nil {
			req.Reply(false, nil)
			return
		}
		out = append(out, ssh.Marshal(struct{ Sig []byte }{ssh.Marshal(sig)})...)
	}
	req.Reply(true, out)
}

// announcedFlag is embedded in tunnelConn: whether the connection was told
// of the host keys (at most once), and how many proofs it asked for.
type announcedFlag struct {
	announced atomic.Bool
	proofs    atomic.Int32 // hostkeys-prove-00 requests answered or refused
}

// maxProofsPerConn bounds the host key proofs one connection gets.
const maxProofsPerConn = 4
