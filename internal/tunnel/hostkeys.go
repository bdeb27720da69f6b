package tunnel

import (
	"bytes"
	"crypto/rand"
	"errors"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
)

// The OMA's SSH host key rotation (docs/rotation.md, "The OMA's own
// keys"), OpenSSH's host key update protocol (PROTOCOL §2.5): after the
// login, during an overlap, the endpoint announces its host keys, current
// and next, in the global request hostkeys-00@openssh.com (no reply
// wanted; each key blob as an SSH string). A client that does not know a
// key yet asks hostkeys-prove-00@openssh.com with the blobs (reply
// wanted) and gets, for each, a signature over
//
//	string "hostkeys-prove-00@openssh.com", string session_id, string key_blob
//
// made with that key. OpenSSH (UpdateHostKeys yes) and the native client
// then trust the proven keys beside the pinned one, so the switch to the
// next key needs nobody on the VMA. The handshake keeps presenting the
// current key until the switch.

const (
	// ReqHostKeys is the server's announcement of its host keys.
	ReqHostKeys = "hostkeys-00@openssh.com"
	// ReqHostKeysProve asks the server to prove it holds host keys.
	ReqHostKeysProve = "hostkeys-prove-00@openssh.com"
	// maxAnnouncedKeys bounds the keys of one announcement or proof
	// request (OpenSSH servers hold a handful).
	maxAnnouncedKeys = 16
)

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
	if _, _, err := c.conn.SendRequest(ReqHostKeys, false, payload); err != nil {
		e.log.Debug("host key announcement not sent", "enrollment_id", c.id, "err", err)
	}
}

// proveHostKeys answers hostkeys-prove-00@openssh.com: a signature for
// each asked key that is one of the endpoint's, else a refusal.
func (e *Endpoint) proveHostKeys(c *tunnelConn, req *ssh.Request) {
	blobs, err := parseKeyBlobs(req.Payload)
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
		sig, err := signer.Sign(rand.Reader, hostKeyProofData(c.conn.SessionID(), blob))
		if err != nil {
			req.Reply(false, nil)
			return
		}
		out = append(out, ssh.Marshal(struct{ Sig []byte }{ssh.Marshal(sig)})...)
	}
	req.Reply(true, out)
}

// hostKeyProofData is what a host key signs to prove it is held.
func hostKeyProofData(sessionID, blob []byte) []byte {
	return ssh.Marshal(struct {
		Label     string
		SessionID []byte
		Blob      []byte
	}{ReqHostKeysProve, sessionID, blob})
}

// parseKeyBlobs reads a sequence of SSH strings (at most maxAnnouncedKeys).
func parseKeyBlobs(p []byte) ([][]byte, error) {
	var out [][]byte
	for len(p) > 0 {
		if len(out) == maxAnnouncedKeys {
			return nil, errors.New("too many keys")
		}
		if len(p) < 4 {
			return nil, errors.New("malformed key list")
		}
		n := int(p[0])<<24 | int(p[1])<<16 | int(p[2])<<8 | int(p[3])
		if n > len(p)-4 {
			return nil, errors.New("malformed key list")
		}
		out = append(out, p[4:4+n])
		p = p[4+n:]
	}
	return out, nil
}

// announcedFlag is embedded in tunnelConn: whether the connection was told
// of the host keys (at most once).
type announcedFlag struct {
	announced atomic.Bool
}
