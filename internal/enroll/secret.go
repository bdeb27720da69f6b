package enroll

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// CodeAlphabet is Crockford's base32: no I, L, O or U.
const CodeAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// CodeLength is the number of symbols in a pairing code: 12 × 5 = 60 bits.
const CodeLength = 12

// Secret is a string that must not be logged.
type Secret string

// LogValue redacts the secret in structured logs.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String redacts the secret when printed with %v or %s.
func (Secret) String() string { return "[redacted]" }

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// NewPairingCode returns a random 60-bit code in canonical form (12 symbols, no dashes).
func NewPairingCode(rnd io.Reader) (string, error) {
	var b [8]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return "", fmt.Errorf("random pairing code: %w", err)
	}
	v := binary.BigEndian.Uint64(b[:]) >> 4 // 60 bits
	out := make([]byte, CodeLength)
	for i := CodeLength - 1; i >= 0; i-- {
		out[i] = CodeAlphabet[v&31]
		v >>= 5
	}
	return string(out), nil
}

// FormatPairingCode shows a canonical code as XXXX-XXXX-XXXX.
func FormatPairingCode(code string) string {
	if len(code) != CodeLength {
		return code
	}
	return code[0:4] + "-" + code[4:8] + "-" + code[8:12]
}

// NormalizePairingCode accepts a code as a person types it: any case, dashes
// and spaces optional, O read as 0 and I/L as 1. It returns the canonical
// 12-symbol form, or an error saying what is wrong.
func NormalizePairingCode(in string) (string, error) {
	if len(in) > 64 {
		return "", malformedCode("pairing code is too long: it has 12 characters, like ABCD-EFGH-JKMN")
	}
	var b strings.Builder
	for _, r := range in {
		switch {
		case r == '-' || r == ' ' || r == '\t':
			continue
		case r >= 'a' && r <= 'z':
			r -= 'a' - 'A'
		}
		switch r {
		case 'O':
			r = '0'
		case 'I', 'L':
			r = '1'
		}
		if r > 127 || !strings.ContainsRune(CodeAlphabet, r) {
			return "", malformedCode(fmt.Sprintf("pairing code contains %q, which is not a pairing code character (0-9 and A-Z without U)", string(r)))
		}
		b.WriteRune(r)
	}
	if b.Len() != CodeLength {
		return "", malformedCode(fmt.Sprintf("pairing code has %d characters, want 12 (like ABCD-EFGH-JKMN)", b.Len()))
	}
	return b.String(), nil
}

// errMalformedCode marks a pairing code that is not even well-formed.
var errMalformedCode = errors.New("malformed pairing code")

func malformedCode(msg string) error {
	return &Error{Code: CodeInvalidRequest, Message: msg, Err: errMalformedCode}
}

// IsCodeFailure reports whether err is a refused pairing code: rejected
// (wrong, used, expired) or malformed. Rate limits count both.
func IsCodeFailure(err error) bool {
	return ErrorCode(err) == CodePairingCodeRejected || errors.Is(err, errMalformedCode)
}

// HashSecret returns the hex SHA-256 of a secret, the form stored in the database.
func HashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// PairingCodeHash returns the stored form of a canonical pairing code: a
// hex HMAC-SHA256 of the code under a key derived from the audit chain's key
// (auditKey, kept in the data directory and shared by every instance, never
// in the database). A copy of the database alone therefore gives nothing to
// guess codes against: unlike a plain SHA-256, the hash cannot be searched
// offline without the key. The derivation keeps the two uses of the key apart.
func PairingCodeHash(auditKey []byte, code string) string {
	k := hmac.New(sha256.New, auditKey)
	k.Write([]byte("oma-enroll pairing-code hash key v1"))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write([]byte(code))
	return hex.EncodeToString(m.Sum(nil))
}

// EqualHash compares two hex hashes in constant time.
func EqualHash(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// NewToken returns a random bearer token with the given prefix (32 random bytes, base64url).
func NewToken(rnd io.Reader, prefix string) (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// NewID returns a random UUID v4 string.
func NewID(rnd io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}
