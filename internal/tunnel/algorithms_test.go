package tunnel_test

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/omatest"
	"github.com/oma-enroll/oma-enroll/internal/server"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/vmaclient"
)

// sha1Free fails for any algorithm name that uses SHA-1, or a MAC that is
// not encrypt-then-MAC.
func sha1Free(t *testing.T, what string, names []string) {
	t.Helper()
	for _, n := range names {
		if strings.Contains(n, "sha1") || n == "ssh-rsa" || n == "ssh-dss" {
			t.Errorf("%s offers %s (SHA-1)", what, n)
		}
	}
}

// TestSSHAlgorithmsAsSSHAuditSeesThem runs the real ssh-audit against the
// public port and checks what the endpoint offers: the ML-KEM hybrid and
// curve25519 key exchanges, AEAD ciphers only (AES-GCM alone on AES
// hardware), ETM MACs only, an Ed25519 host key, nothing with SHA-1.
func TestSSHAlgorithmsAsSSHAuditSeesThem(t *testing.T) {
	bin, err := exec.LookPath("ssh-audit")
	if err != nil {
		t.Fatalf("ssh-audit is required (apt-get install ssh-audit; .ci/lib.sh ensure_tools): %v", err)
	}
	db, _ := omatest.OpenStore(t, "sqlite")
	o := runOMA(t, db, newSetup(t, echoServer(t, "nbd:"), echoServer(t, "vma-api:")))
	host, port, _ := net.SplitHostPort(o.srv.PublicAddr())
	out, err := exec.Command(bin, "-j", "-p", port, host).Output()
	if len(out) == 0 {
		t.Fatalf("ssh-audit: %v", err) // it exits non-zero on any warning; the JSON is what counts
	}
	var rep struct {
		Kex []struct{ Algorithm string } `json:"kex"`
		Key []struct{ Algorithm string } `json:"key"`
		Enc []string                     `json:"enc"`
		Mac []string                     `json:"mac"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("ssh-audit -j: %v\n%s", err, out)
	}
	var kex, keys []string
	for _, k := range rep.Kex {
		kex = append(kex, k.Algorithm)
	}
	for _, k := range rep.Key {
		keys = append(keys, k.Algorithm)
	}
	t.Logf("ssh-audit: kex %v, host keys %v, ciphers %v, MACs %v", kex, keys, rep.Enc, rep.Mac)
	for _, want := range []string{"mlkem768x25519-sha256", "curve25519-sha256"} {
		if !slices.Contains(kex, want) {
			t.Errorf("key exchanges %v lack %s", kex, want)
		}
	}
	for _, k := range kex {
		if !strings.HasPrefix(k, "mlkem768x25519") && !strings.HasPrefix(k, "curve25519") && !strings.HasPrefix(k, "kex-strict-") && !strings.HasPrefix(k, "ext-info-") {
			t.Errorf("key exchange %s offered; only the ML-KEM hybrid and curve25519 should be", k)
		}
	}
	if !slices.Equal(keys, []string{"ssh-ed25519"}) {
		t.Errorf("host key algorithms %v, want [ssh-ed25519]", keys)
	}
	if !slices.Equal(rep.Enc, tunnel.Ciphers()) {
		t.Errorf("ciphers %v, want %v", rep.Enc, tunnel.Ciphers())
	}
	for _, c := range rep.Enc {
		if !strings.Contains(c, "gcm") && !strings.Contains(c, "poly1305") {
			t.Errorf("cipher %s is not AEAD", c)
		}
	}
	for _, m := range rep.Mac {
		if !strings.HasSuffix(m, "-etm@openssh.com") {
			t.Errorf("MAC %s is not encrypt-then-MAC", m)
		}
	}
	sha1Free(t, "the endpoint", slices.Concat(kex, keys, rep.Enc, rep.Mac))
}

// kexInit reads the lists of an SSH KEXINIT packet (RFC 4253 7.1), sent in
// the clear.
func kexInit(r *bufio.Reader) ([][]string, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n > 64<<10 {
		return nil, errors.New("packet too long")
	}
	body := make([]byte, n-1)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	body = body[:len(body)-int(hdr[4])]
	if len(body) < 17 || body[0] != 20 {
		return nil, errors.New("not a KEXINIT")
	}
	body = body[17:]
	var lists [][]string
	for range 10 {
		if len(body) < 4 {
			return nil, errors.New("short KEXINIT")
		}
		l := binary.BigEndian.Uint32(body)
		if int(l) > len(body)-4 {
			return nil, errors.New("short KEXINIT")
		}
		lists = append(lists, strings.Split(string(body[4:4+l]), ","))
		body = body[4+l:]
	}
	return lists, nil
}

// TestClientOffersModernAlgorithms reads the KEXINIT the native client
// sends: the same key exchanges and MACs, AEAD ciphers only, the pinned
// key's algorithm only, nothing with SHA-1.
func TestClientOffersModernAlgorithms(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	o := runOMA(t, db, newSetup(t, echoServer(t, "nbd:"), echoServer(t, "vma-api:")))
	v := o.enrollVMA("vma-kex", nil)
	got := make(chan [][]string, 1)
	addr := testbin.Serve(t, "127.0.0.1:0", func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte("SSH-2.0-capture\r\n"))
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
		lists, err := kexInit(r)
		if err != nil {
			t.Errorf("client KEXINIT: %v", err)
		}
		select {
		case got <- lists:
		default:
		}
	})
	startClient(t, o.oma, v, func(c *vmaclient.ClientConfig) { c.Addr = addr })
	var lists [][]string
	select {
	case lists = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("the client sent no KEXINIT")
	}
	kex, hostKeys, ciphers, macs := lists[0], lists[1], lists[2], lists[4]
	t.Logf("client: kex %v, host keys %v, ciphers %v, MACs %v", kex, hostKeys, ciphers, macs)
	if kex[0] != "mlkem768x25519-sha256" || !slices.Contains(kex, "curve25519-sha256") {
		t.Errorf("key exchanges %v: want the ML-KEM hybrid first, then curve25519", kex)
	}
	if !slices.Equal(hostKeys, []string{"ssh-ed25519"}) {
		t.Errorf("host key algorithms %v, want the pinned key's, [ssh-ed25519]", hostKeys)
	}
	if !slices.Equal(ciphers, tunnel.ClientCiphers()) || !slices.Equal(lists[3], ciphers) {
		t.Errorf("ciphers %v / %v, want %v", ciphers, lists[3], tunnel.ClientCiphers())
	}
	if !slices.Equal(macs, tunnel.MACs) {
		t.Errorf("MACs %v, want %v", macs, tunnel.MACs)
	}
	sha1Free(t, "the client", slices.Concat(kex, hostKeys, ciphers, macs))
}

// TestWrittenSSHConfigAlgorithms asks the real OpenSSH client what the
// written ssh_config makes it offer (ssh -G): AES-GCM first, AEAD only,
// ETM MACs only.
func TestWrittenSSHConfigAlgorithms(t *testing.T) {
	requireSSH(t)
	db, _ := omatest.OpenStore(t, "sqlite")
	o := runOMA(t, db, newSetup(t, echoServer(t, "nbd:"), echoServer(t, "vma-api:")))
	v := o.enrollVMA("vma-conf", nil)
	out, err := exec.Command("ssh", "-G", "-F", filepath.Join(v.dir, vmaclient.FileSSHConfig), vmaclient.SSHHostAlias).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh -G: %v\n%s", err, out)
	}
	var ciphers, macs string
	for _, line := range strings.Split(string(out), "\n") {
		if k, val, ok := strings.Cut(line, " "); ok {
			switch k {
			case "ciphers":
				ciphers = val
			case "macs":
				macs = val
			}
		}
	}
	if ciphers != tunnel.SSHConfigCiphers || !strings.HasPrefix(ciphers, "aes128-gcm@openssh.com,") {
		t.Errorf("ssh -G ciphers %q, want %q (AES-GCM first)", ciphers, tunnel.SSHConfigCiphers)
	}
	if macs != tunnel.SSHConfigMACs {
		t.Errorf("ssh -G macs %q, want %q", macs, tunnel.SSHConfigMACs)
	}
}

// TestPublicPortTLSSuites offers the public port only CBC suites over TLS
// 1.2 (refused), then only AEAD ones (accepted), as testssl.sh would.
func TestPublicPortTLSSuites(t *testing.T) {
	db, _ := omatest.OpenStore(t, "sqlite")
	o := runOMA(t, db, newSetup(t, echoServer(t, "nbd:"), echoServer(t, "vma-api:")))
	dial := func(suites []uint16) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", o.srv.PublicAddr(), &tls.Config{
			InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: suites})
		if err == nil {
			c.Close()
		}
		return err
	}
	for _, s := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_RSA_WITH_AES_256_CBC_SHA, tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256} {
		if err := dial([]uint16{s}); err == nil {
			t.Errorf("the public port accepted %s over TLS 1.2", tls.CipherSuiteName(s))
		}
	}
	for _, s := range server.TLS12CipherSuites[:3] { // the ECDSA ones: the certificate's key
		if err := dial([]uint16{s}); err != nil {
			t.Errorf("the public port refused %s over TLS 1.2: %v", tls.CipherSuiteName(s), err)
		}
	}
}
