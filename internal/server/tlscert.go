package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/atomicfile"
)

// SPKIFingerprint is "sha256:" + hex of SHA-256 over the certificate's
// SubjectPublicKeyInfo: what pairing-code answers show and vma-enroll pins.
func SPKIFingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// SelfSignedYears is the validity of the self-signed certificate. VMAs do
// not check it: they pin the certificate's public key (SPKIFingerprint),
// so the validity only has to outlast the deployment, and rotating the key
// means handing out a new fingerprint (SECURITY.md, "The certificate pin").
const SelfSignedYears = 20

// LoadOrCreateCertificate loads certFile/keyFile when given, else the
// self-signed pair in dataDir (tls.crt, tls.key), creating it once with
// hosts in its SANs. The same certificate is kept across restarts so the
// fingerprint that admins hand out stays valid.
func LoadOrCreateCertificate(certFile, keyFile, dataDir string, hosts []string) (tls.Certificate, error) {
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return tls.Certificate{}, errors.New("give both --tls-cert and --tls-key, or neither for a self-signed certificate")
		}
		return loadPair(certFile, keyFile)
	}
	certFile, keyFile = filepath.Join(dataDir, "tls.crt"), filepath.Join(dataDir, "tls.key")
	if _, err := os.Stat(certFile); err == nil {
		return loadPair(certFile, keyFile)
	}
	return CreateSelfSigned(certFile, keyFile, hosts)
}

// CreateSelfSigned makes a new key and a self-signed certificate for
// hosts (plus localhost and the loopback addresses) and writes them to
// keyFile (0600) and then certFile (0644), each atomically.
func CreateSelfSigned(certFile, keyFile string, hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "oma-server enrollment", Organization: []string{"OMA"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(SelfSignedYears, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	seen := map[string]bool{}
	for _, h := range append(slices.Clone(hosts), "localhost", "127.0.0.1", "::1") {
		if h == "" {
			continue
		}
		ip := net.ParseIP(h)
		key := strings.ToLower(h)
		if ip != nil {
			key = ip.String() // "::0001" and "::1" are one SAN
		}
		if seen[key] {
			continue // --public-host 127.0.0.1 is already in the list
		}
		seen[key] = true
		if ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := atomicfile.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := atomicfile.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return loadPair(certFile, keyFile)
}

// LoadPair loads a PEM certificate and key, with the certificate's Leaf.
func LoadPair(certFile, keyFile string) (tls.Certificate, error) { return loadPair(certFile, keyFile) }

func loadPair(certFile, keyFile string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load TLS certificate: %w", err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return tls.Certificate{}, err
		}
	}
	return c, nil
}
