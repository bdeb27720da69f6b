package tunnel

import (
	"errors"

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
	// MaxAnnouncedKeys bounds the keys of one announcement or proof
	// request (OpenSSH servers hold a handful).
	MaxAnnouncedKeys = 16
)

// HostKeyProofData is what a host key signs to prove it is held.
func HostKeyProofData(sessionID, blob []byte) []byte {
	return ssh.Marshal(struct {
		Label     string
		SessionID []byte
		Blob      []byte
	}{ReqHostKeysProve, sessionID, blob})
}

// ParseKeyBlobs reads a sequence of SSH strings (at most MaxAnnouncedKeys).
func ParseKeyBlobs(p []byte) ([][]byte, error) {
	var out [][]byte
	for len(p) > 0 {
		if len(out) == MaxAnnouncedKeys {
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
