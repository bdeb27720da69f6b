// Package vmaauth authenticates a VMA over TLS by its enrolled key: the
// VMA presents its Ed25519 key as a self-signed client certificate, the
// TLS 1.3 handshake proves it holds the private key, and the key is then
// checked against the approved enrollments exactly as the SSH endpoint
// checks an SSH login (enroll.Service.AuthorizeTunnelKey: approved, not
// revoked, not superseded).
//
// It is one mechanism for every VMA-authenticated TLS service on the
// public port: the tunnel's TLS data path uses it today; an HTTPS endpoint
// for VMAs (e.g. GET /api/v1/vma/self) calls Authenticate with the
// request's r.TLS the same way, after ServerConfig asked for the
// certificate.
//
// The certificate carries nothing but the key: no name, no issuer to
// trust, and its validity dates are not checked (a VMA's clock may be off;
// the enrollment's status is what grants access, checked at every
// connection and again while it lasts).
package vmaauth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// Authorizer is the part of the enrollment service that decides whether a
// key belongs to an approved VMA (*enroll.Service).
type Authorizer interface {
	AuthorizeTunnelKey(ctx context.Context, authorizedKey string) (*enroll.TunnelIdentity, error)
}

// ErrNoCertificate means the peer sent no (usable) client certificate.
var ErrNoCertificate = errors.New("no VMA client certificate: present the enrolled Ed25519 key as a self-signed certificate")

// ClientCertificate is the self-signed certificate a VMA presents: its
// enrolled key, signed by itself. It is made afresh for each process run.
func ClientCertificate(priv ed25519.PrivateKey) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "oma-enroll VMA"},
		NotBefore:    now.Add(-24 * time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("VMA client certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, nil
}

// VerifyShape is a tls.Config.VerifyPeerCertificate that accepts exactly
// one self-signed Ed25519 certificate (the handshake itself proves the
// peer holds its key). Whether the key is approved is Authenticate's
// question, asked after the handshake with a context and a database.
func VerifyShape(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	_, err := keyOf(rawCerts)
	return err
}

func keyOf(rawCerts [][]byte) (ed25519.PublicKey, error) {
	if len(rawCerts) != 1 {
		return nil, fmt.Errorf("%w (got %d certificates, want 1)", ErrNoCertificate, len(rawCerts))
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return nil, fmt.Errorf("VMA client certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("VMA client certificate: only Ed25519 keys (the enrolled key)")
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return nil, fmt.Errorf("VMA client certificate is not self-signed: %w", err)
	}
	return pub, nil
}

// ServerConfig returns a copy of base that requires a VMA client
// certificate (checked by VerifyShape) and offers only protos.
func ServerConfig(base *tls.Config, protos ...string) *tls.Config {
	c := base.Clone()
	c.ClientAuth = tls.RequireAnyClientCert
	c.VerifyPeerCertificate = VerifyShape
	c.NextProtos = protos
	c.MinVersion = tls.VersionTLS13 // the client certificate stays encrypted
	return c
}

// ClientKey returns the Ed25519 key of the verified client certificate of
// a finished handshake.
func ClientKey(cs tls.ConnectionState) (ed25519.PublicKey, error) {
	if !cs.HandshakeComplete {
		return nil, errors.New("TLS handshake not complete")
	}
	raw := make([][]byte, len(cs.PeerCertificates))
	for i, c := range cs.PeerCertificates {
		raw[i] = c.Raw
	}
	return keyOf(raw)
}

// Authenticate maps a finished handshake to the approved enrollment of
// its client key. The error is an *enroll.Error with CodeUnauthorized when
// the key is not approved; any other error means the check could not be
// made (e.g. the database did not answer) and the peer should retry.
func Authenticate(ctx context.Context, a Authorizer, cs tls.ConnectionState) (*enroll.TunnelIdentity, error) {
	pub, err := ClientKey(cs)
	if err != nil {
		return nil, enroll.Errorf(enroll.CodeUnauthorized, "%v", err)
	}
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, enroll.Errorf(enroll.CodeUnauthorized, "VMA client certificate: %v", err)
	}
	return a.AuthorizeTunnelKey(ctx, string(ssh.MarshalAuthorizedKey(sk)))
}
