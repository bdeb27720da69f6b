package vmaenroll

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/tunnel/vmaclient"
)

// Results of asking the OMA whether it still accepts this VMA's key.
const (
	CheckAccepted    = "accepted"          // the key still opens the tunnel
	CheckRefused     = "refused"           // revoked, or replaced by a newer enrollment
	CheckUnreachable = "unreachable"       // no answer in time: the local state is shown
	CheckMismatch    = "identity_mismatch" // another SSH host key than the pinned one
	CheckSkipped     = "skipped"           // --offline
	CheckUnknown     = "unknown"           // cannot ask: the local configuration is incomplete
)

// errKeyAccepted stops the SSH login once the OMA said it would accept the
// key: the check never logs in, so it opens no tunnel and writes no
// connection event on the OMA.
var errKeyAccepted = errors.New("key accepted (probe: no login)")

// probeSigner answers the server's "would you accept this key" query with
// the real public key but refuses to sign, which ends the handshake right
// after the server's answer (RFC 4252 §7: SSH_MSG_USERAUTH_PK_OK).
type probeSigner struct{ ssh.AlgorithmSigner }

func (probeSigner) Sign(io.Reader, []byte) (*ssh.Signature, error) { return nil, errKeyAccepted }
func (probeSigner) SignWithAlgorithm(io.Reader, []byte, string) (*ssh.Signature, error) {
	return nil, errKeyAccepted
}

// probeKey asks the OMA's SSH endpoint whether it still accepts this VMA's
// key, within timeout. It returns one of the Check* results and, for the
// unreachable and mismatch ones, what went wrong.
func probeKey(ctx context.Context, tc vmaclient.ClientConfig, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", tc.Addr)
	if err != nil {
		if ctx.Err() != nil {
			return CheckUnreachable, fmt.Errorf("no connection to %s within %s", tc.Addr, timeout)
		}
		return CheckUnreachable, err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	as, ok := tc.Signer.(ssh.AlgorithmSigner)
	if !ok {
		return CheckUnreachable, errors.New("the key cannot sign SSH requests")
	}
	pinned := tc.HostKey
	var mismatch *vmaclient.HostKeyMismatchError
	conf := &ssh.ClientConfig{
		User:              tc.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(probeSigner{as})},
		HostKeyAlgorithms: hostKeyAlgos(pinned),
		ClientVersion:     tc.ClientVersion,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if bytes.Equal(key.Marshal(), pinned.Marshal()) {
				return nil
			}
			mismatch = &vmaclient.HostKeyMismatchError{Addr: tc.Addr, Want: ssh.FingerprintSHA256(pinned), Got: ssh.FingerprintSHA256(key)}
			return mismatch
		},
	}
	conn, _, _, err := ssh.NewClientConn(nc, tc.Addr, conf)
	switch {
	case err == nil:
		conn.Close() // cannot happen: the probe never signs
		return CheckAccepted, nil
	case errors.Is(err, errKeyAccepted):
		return CheckAccepted, nil
	case mismatch != nil:
		return CheckMismatch, mismatch
	case strings.Contains(err.Error(), "unable to authenticate"):
		return CheckRefused, nil
	case ctx.Err() != nil:
		return CheckUnreachable, fmt.Errorf("no SSH answer from %s within %s", tc.Addr, timeout)
	}
	return CheckUnreachable, err
}

// listening reports whether something listens on addr (host:port) on this
// machine, from /proc/net/tcp{,6} without connecting (a connection to a
// local forward would open a channel to the OMA). ok is false when it
// cannot tell (no /proc, say).
func listening(addr string) (up, ok bool) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return false, false
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return false, false
	}
	ip := net.ParseIP(host)
	if host == "localhost" {
		ip = net.IPv4(127, 0, 0, 1)
	}
	read := false
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		read = true
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			lip, lport, ok := parseProcAddr(fields[1])
			if !ok || lport != port {
				continue
			}
			if ip == nil || lip.IsUnspecified() || lip.Equal(ip) {
				return true, true
			}
		}
	}
	return false, read
}

// parseProcAddr reads a /proc/net/tcp address: hex IP (in host byte order
// per 32-bit word) and hex port.
func parseProcAddr(s string) (net.IP, int, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return nil, 0, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil || (len(h) != 8 && len(h) != 32) {
		return nil, 0, false
	}
	raw := make(net.IP, len(h)/2)
	for i := 0; i < len(h)/8; i++ {
		w, err := strconv.ParseUint(h[i*8:i*8+8], 16, 32)
		if err != nil {
			return nil, 0, false
		}
		// little-endian words on the machines a VMA runs on (amd64, arm64)
		raw[i*4], raw[i*4+1], raw[i*4+2], raw[i*4+3] = byte(w), byte(w>>8), byte(w>>16), byte(w>>24)
	}
	return raw, int(port), true
}

func hostKeyAlgos(k ssh.PublicKey) []string {
	if k.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256} // never ssh-rsa (SHA-1)
	}
	return []string{k.Type()}
}
