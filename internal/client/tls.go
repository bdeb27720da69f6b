package client

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// FingerprintPrefix starts every OMA certificate fingerprint.
const FingerprintPrefix = "sha256:"

// FingerprintMismatchError means the server's TLS key is not the pinned one:
// the client may be talking to an impostor.
type FingerprintMismatchError struct {
	Want, Got string
}

func (e *FingerprintMismatchError) Error() string {
	return fmt.Sprintf("the server's certificate fingerprint is %s, not the expected %s", e.Got, e.Want)
}

// SPKIFingerprint returns "sha256:<hex>" of the certificate's
// SubjectPublicKeyInfo, the form `omactl pairing-code` prints.
func SPKIFingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return FingerprintPrefix + hex.EncodeToString(sum[:])
}

// NormalizeFingerprint accepts "sha256:<64 hex>" in any case, with or without
// colons between the bytes, and returns the canonical lower-case form.
func NormalizeFingerprint(s string) (string, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t, ok := strings.CutPrefix(t, FingerprintPrefix)
	if !ok {
		return "", fmt.Errorf("fingerprint %q must start with %q (copy it from 'omactl pairing-code')", enroll.Printable(s), FingerprintPrefix)
	}
	t = strings.ReplaceAll(t, ":", "")
	if b, err := hex.DecodeString(t); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("fingerprint %q is not sha256: followed by 64 hex digits (copy it from 'omactl pairing-code')", enroll.Printable(s))
	}
	return FingerprintPrefix + t, nil
}

// TLSConfig returns the client TLS settings: TLS 1.2 or newer; with a pin,
// the server's public key must hash to it (the pin replaces the CA check);
// with insecure and no pin, any certificate is accepted; otherwise the
// system roots verify the server as usual.
func TLSConfig(pin string, insecure bool) *tls.Config {
	if pin != "" {
		return TLSConfigPins(func() []string { return []string{pin} })
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	cfg.InsecureSkipVerify = insecure
	return cfg
}

// TLSConfigPins is TLSConfig pinned to any of the fingerprints pins
// returns at each handshake (the OMA's current and, during a rotation of
// its certificate, next one; docs/rotation.md).
func TLSConfigPins(pins func() []string) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true} // the pins replace the CA check
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		want := pins()
		if len(cs.PeerCertificates) == 0 {
			return &FingerprintMismatchError{Want: strings.Join(want, " or "), Got: "(no certificate)"}
		}
		got := SPKIFingerprint(cs.PeerCertificates[0])
		for _, p := range want {
			if p != "" && subtle.ConstantTimeCompare([]byte(got), []byte(p)) == 1 {
				return nil
			}
		}
		return &FingerprintMismatchError{Want: strings.Join(want, " or "), Got: got}
	}
	return cfg
}

// FetchFingerprint connects to addr (host:port) over TLS without trusting
// it and returns the fingerprint of the certificate it presents, so that a
// person can compare it with the one the admin gave them.
func FetchFingerprint(ctx context.Context, addr string) (string, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("address %q: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config:    &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}, // only to read the key; nothing is sent
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", &NetworkError{Op: "TLS connect to " + addr, Err: err, Dial: true}
	}
	defer conn.Close()
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return "", errors.New("not a TLS connection")
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", fmt.Errorf("%s presented no certificate", addr)
	}
	return SPKIFingerprint(certs[0]), nil
}

// ProbeListener asks the server at baseURL which oma-server listener it is
// (api.HeaderListener of its /health), without checking its certificate:
// only to explain an error (an untrusted certificate on what may be the
// public listener), so it sends nothing secret, no token. It returns ""
// when the answer does not say, within two seconds.
func ProbeListener(ctx context.Context, baseURL string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(baseURL, "/")+api.PathHealth, nil)
	if err != nil {
		return ""
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}} // nothing secret is sent
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return ""
	}
	resp.Body.Close()
	return resp.Header.Get(api.HeaderListener)
}
