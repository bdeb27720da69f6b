package vmaauth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/vmaauth"
)

// TestVerifyShape accepts exactly one self-signed Ed25519 certificate: the
// VMA's own, as ClientCertificate makes it.
func TestVerifyShape(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	own, err := vmaauth.ClientCertificate(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := vmaauth.VerifyShape(own.Certificate, nil); err != nil {
		t.Fatalf("the VMA's own certificate: %v", err)
	}
	if err := vmaauth.VerifyShape(nil, nil); err == nil {
		t.Error("no certificate accepted")
	}
	if err := vmaauth.VerifyShape([][]byte{own.Certificate[0], own.Certificate[0]}, nil); err == nil {
		t.Error("a chain of two accepted")
	}
	// An ECDSA key (not an enrolled key).
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ek.PublicKey, ek)
	if err := vmaauth.VerifyShape([][]byte{der}, nil); err == nil {
		t.Error("an ECDSA certificate accepted")
	}
	// The VMA's key, but signed by another key: not self-signed.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	der, _ = x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), other)
	if err := vmaauth.VerifyShape([][]byte{der}, nil); err == nil {
		t.Error("a certificate not signed by its own key accepted")
	}
}
