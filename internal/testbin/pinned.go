package testbin

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"
)

// PinnedClient is an HTTPS client that trusts exactly the certificate
// whose public key hash is fp ("sha256:<hex>", as oma-server logs and
// omactl pairing-code prints it), speaks TLS 1.2 or newer, never follows
// redirects (a redirect is an answer to assert on) and keeps up to conns
// idle connections per host (0: Go's default, 2).
func PinnedClient(fp string, conns int) *http.Client {
	return &http.Client{
		Timeout: 90 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Transport: &http.Transport{
			MaxIdleConnsPerHost: conns,
			TLSClientConfig: &tls.Config{
				InsecureSkipVerify: true, // the pin below is the check
				MinVersion:         tls.VersionTLS12,
				VerifyConnection: func(cs tls.ConnectionState) error {
					sum := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
					if got := "sha256:" + hex.EncodeToString(sum[:]); got != fp {
						return fmt.Errorf("fingerprint %s, want %s", got, fp)
					}
					return nil
				},
			},
		},
	}
}
