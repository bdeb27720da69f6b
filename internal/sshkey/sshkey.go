// Package sshkey handles the Ed25519 keys of the enrollment: generation,
// OpenSSH encodings, SHA256 fingerprints and strict parsing that accepts
// ssh-ed25519 keys only.
package sshkey

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/atomicfile"
)

// MaxLineLength bounds an authorized_keys line we are willing to parse.
const MaxLineLength = 4096

// ErrNotEd25519 is returned for a well-formed key of another type.
var ErrNotEd25519 = errors.New("only ssh-ed25519 keys are accepted")

// Generate makes a new Ed25519 key pair from rnd (crypto/rand when nil).
func Generate(rnd io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return pub, priv, nil
}

// AuthorizedKey returns the authorized_keys line of pub ("ssh-ed25519 AAAA…"),
// with comment appended when it is not empty.
func AuthorizedKey(pub ed25519.PublicKey, comment string) string {
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err) // ed25519.PublicKey of the right size cannot fail
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	if comment != "" {
		line += " " + comment
	}
	return line
}

// MarshalPrivateKey encodes priv in the OpenSSH private key format.
func MarshalPrivateKey(priv ed25519.PrivateKey, comment string) ([]byte, error) {
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(block), nil
}

// ParsePrivateKey decodes an unencrypted OpenSSH Ed25519 private key.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	switch k := raw.(type) {
	case *ed25519.PrivateKey:
		return *k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("parse private key: %w", ErrNotEd25519)
	}
}

// Fingerprint returns the SHA256 fingerprint exactly as `ssh-keygen -lf`
// prints it ("SHA256:" + unpadded base64).
func Fingerprint(pub ed25519.PublicKey) string {
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return ssh.FingerprintSHA256(k)
}

// ParseAuthorizedKey parses one authorized_keys line holding an ssh-ed25519
// key (an optional comment is allowed, options are not) and returns the key
// and its canonical line without comment.
func ParseAuthorizedKey(line string) (ed25519.PublicKey, string, error) {
	if len(line) > MaxLineLength {
		return nil, "", fmt.Errorf("public key is too long (%d bytes, at most %d)", len(line), MaxLineLength)
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return nil, "", errors.New("public key is empty: send the content of id_ed25519.pub")
	}
	if strings.ContainsAny(line, "\r\n\x00") {
		return nil, "", errors.New("public key must be a single authorized_keys line")
	}
	typ, _, _ := strings.Cut(line, " ")
	if typ != ssh.KeyAlgoED25519 {
		if strings.HasPrefix(typ, "ssh-") || strings.HasPrefix(typ, "ecdsa-") || strings.HasPrefix(typ, "sk-") {
			return nil, "", fmt.Errorf("%w, got %q", ErrNotEd25519, truncate(typ, 40))
		}
		return nil, "", errors.New("public key is not an authorized_keys line starting with \"ssh-ed25519 \"")
	}
	k, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, "", fmt.Errorf("public key is malformed: %v", err)
	}
	if len(opts) > 0 || len(bytes.TrimSpace(rest)) > 0 {
		return nil, "", errors.New("public key must be one key without options")
	}
	if k.Type() != ssh.KeyAlgoED25519 {
		return nil, "", fmt.Errorf("%w, got %q", ErrNotEd25519, k.Type())
	}
	ck, ok := k.(ssh.CryptoPublicKey)
	if !ok {
		return nil, "", fmt.Errorf("%w", ErrNotEd25519)
	}
	pub, ok := ck.CryptoPublicKey().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, "", fmt.Errorf("%w", ErrNotEd25519)
	}
	return pub, AuthorizedKey(pub, ""), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// KeyPair is a loaded or generated key pair with the paths it lives at.
type KeyPair struct {
	Private ed25519.PrivateKey
	Public  ed25519.PublicKey
	// PrivatePath and PublicPath are the id_ed25519 files in the directory.
	PrivatePath, PublicPath string
	// Generated is true when this call created the pair.
	Generated bool
}

// LoadOrGenerate reads dir/id_ed25519 (and checks id_ed25519.pub matches), or
// generates a new pair and writes both files atomically (0600 and 0644).
func LoadOrGenerate(dir, comment string) (*KeyPair, error) {
	return LoadOrGenerateFile(filepath.Join(dir, "id_ed25519"), comment)
}

// LoadOrGenerateFile is LoadOrGenerate for a private key at privPath (the
// public key goes to privPath + ".pub").
func LoadOrGenerateFile(privPath, comment string) (*KeyPair, error) {
	dir := filepath.Dir(privPath)
	kp := &KeyPair{PrivatePath: privPath, PublicPath: privPath + ".pub"}
	data, err := os.ReadFile(kp.PrivatePath)
	switch {
	case err == nil:
		priv, err := ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kp.PrivatePath, err)
		}
		kp.Private = priv
		kp.Public = priv.Public().(ed25519.PublicKey)
		// Re-create a missing or stale .pub from the private key.
		if pubData, err := os.ReadFile(kp.PublicPath); err != nil || !pubMatches(pubData, kp.Public) {
			if err := atomicfile.WriteFile(kp.PublicPath, []byte(AuthorizedKey(kp.Public, comment)+"\n"), 0o644); err != nil {
				return nil, err
			}
		}
		return kp, nil
	case errors.Is(err, os.ErrNotExist):
	default:
		return nil, fmt.Errorf("read key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	pub, priv, err := Generate(nil)
	if err != nil {
		return nil, err
	}
	pem, err := MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(kp.PrivatePath, pem, 0o600); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(kp.PublicPath, []byte(AuthorizedKey(pub, comment)+"\n"), 0o644); err != nil {
		return nil, err
	}
	kp.Private, kp.Public, kp.Generated = priv, pub, true
	return kp, nil
}

func pubMatches(data []byte, pub ed25519.PublicKey) bool {
	got, _, err := ParseAuthorizedKey(string(data))
	return err == nil && got.Equal(pub)
}
