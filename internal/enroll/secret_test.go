package enroll_test

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

func TestCodeAlphabet(t *testing.T) {
	if got := len(enroll.CodeAlphabet); got != 32 {
		t.Fatalf("alphabet has %d symbols, want 32 (5 bits each)", got)
	}
	seen := map[rune]bool{}
	for _, r := range enroll.CodeAlphabet {
		if seen[r] {
			t.Errorf("symbol %q appears twice", r)
		}
		seen[r] = true
		if strings.ContainsRune("ILOU", r) {
			t.Errorf("alphabet contains the ambiguous %q", r)
		}
		if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z') {
			t.Errorf("alphabet contains %q, want digits and capitals only", r)
		}
	}
	if bits := enroll.CodeLength * 5; bits != 60 {
		t.Errorf("a code carries %d bits, want 60", bits)
	}
}

func TestNewPairingCode(t *testing.T) {
	// All-zero and all-one randomness give the alphabet's ends.
	for _, c := range []struct {
		rnd  []byte
		want string
	}{
		{bytes.Repeat([]byte{0}, 8), "000000000000"},
		{bytes.Repeat([]byte{0xff}, 8), "ZZZZZZZZZZZZ"},
		// The top 60 of the 64 bits are used: 0x0123456789abcdef >> 4.
		{[]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}, "04HMASW9NF6Y"},
	} {
		got, err := enroll.NewPairingCode(bytes.NewReader(c.rnd))
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("NewPairingCode(%x) = %q, want %q", c.rnd, got, c.want)
		}
	}
	if _, err := enroll.NewPairingCode(bytes.NewReader([]byte{1, 2, 3})); err == nil {
		t.Errorf("NewPairingCode with short randomness = nil error, want one")
	}
	// Real randomness: every symbol shows up over enough codes.
	counts := map[rune]int{}
	for range 2000 {
		code, err := enroll.NewPairingCode(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(code) != enroll.CodeLength {
			t.Fatalf("code %q has %d symbols, want %d", code, len(code), enroll.CodeLength)
		}
		for _, r := range code {
			counts[r]++
		}
	}
	if len(counts) != 32 {
		t.Errorf("2000 codes used %d distinct symbols, want 32", len(counts))
	}
}

func TestFormatPairingCode(t *testing.T) {
	for in, want := range map[string]string{
		"ABCDEFGHJKMN": "ABCD-EFGH-JKMN",
		"000000000000": "0000-0000-0000",
		"SHORT":        "SHORT",
		"":             "",
	} {
		if got := enroll.FormatPairingCode(in); got != want {
			t.Errorf("FormatPairingCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalizePairingCode(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"ABCD-EFGH-JKMN", "ABCDEFGHJKMN"},
		{"abcd-efgh-jkmn", "ABCDEFGHJKMN"},
		{"abcdefghjkmn", "ABCDEFGHJKMN"},
		{" ABCD EFGH\tJKMN ", "ABCDEFGHJKMN"},
		{"O0O0-IiLl-oooo", "000011110000"},
		{"A-B-C-D-E-F-G-H-J-K-M-N", "ABCDEFGHJKMN"},
	} {
		got, err := enroll.NormalizePairingCode(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormalizePairingCode(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "ABCD-EFGH-JKM", "ABCD-EFGH-JKMNP", "ABCD-EFGH-JKMU", "ABCD_EFGH_JKMN",
		"ÄBCD-EFGH-JKMN", strings.Repeat("A", 65), "ABCD-EFGH-JKM\x00"} {
		if got, err := enroll.NormalizePairingCode(in); err == nil {
			t.Errorf("NormalizePairingCode(%q) = %q, want an error", in, got)
		} else if enroll.ErrorCode(err) != enroll.CodeInvalidRequest {
			t.Errorf("NormalizePairingCode(%q): code %s, want invalid_request", in, enroll.ErrorCode(err))
		}
	}
}

// FuzzNormalizePairingCode: never panics; whatever it accepts is 12
// alphabet symbols and normalizes to itself, also when formatted.
func FuzzNormalizePairingCode(f *testing.F) {
	for _, s := range []string{"ABCD-EFGH-JKMN", "abcd efgh jkmn", "O0O0-IiLl-oooo", "", "-", "ABCD-EFGH-JKMU",
		"ÄBCD-EFGH-JKMN", "\xff\xfe", strings.Repeat("-", 64), strings.Repeat("A", 65), "ａｂｃｄ-efgh-jkmn", "ABCD-EFGH-JKM\u0130"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		code, err := enroll.NormalizePairingCode(in)
		if err != nil {
			if enroll.ErrorCode(err) != enroll.CodeInvalidRequest {
				t.Fatalf("NormalizePairingCode(%q): error code %s, want invalid_request", in, enroll.ErrorCode(err))
			}
			return
		}
		if len(code) != enroll.CodeLength {
			t.Fatalf("NormalizePairingCode(%q) = %q: %d bytes, want %d", in, code, len(code), enroll.CodeLength)
		}
		for _, r := range code {
			if !strings.ContainsRune(enroll.CodeAlphabet, r) {
				t.Fatalf("NormalizePairingCode(%q) = %q: %q is not in the alphabet", in, code, r)
			}
		}
		for _, again := range []string{code, enroll.FormatPairingCode(code), strings.ToLower(code)} {
			if got, err := enroll.NormalizePairingCode(again); err != nil || got != code {
				t.Fatalf("NormalizePairingCode(%q) = %q, %v; want %q", again, got, err, code)
			}
		}
	})
}

func TestHashSecret(t *testing.T) {
	// SHA-256 of "abc".
	if got, want := enroll.HashSecret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("HashSecret(abc) = %s, want %s", got, want)
	}
	if !enroll.EqualHash(enroll.HashSecret("x"), enroll.HashSecret("x")) || enroll.EqualHash(enroll.HashSecret("x"), enroll.HashSecret("y")) {
		t.Errorf("EqualHash does not compare hashes")
	}
}

func TestSecretRedacts(t *testing.T) {
	s := enroll.Secret("ABCD-EFGH-JKMN")
	var b strings.Builder
	for _, out := range []string{s.String(), s.LogValue().String()} {
		b.WriteString(out)
	}
	if strings.Contains(b.String(), "ABCD") {
		t.Errorf("Secret printed as %q, want it redacted", b.String())
	}
	if s.Reveal() != "ABCD-EFGH-JKMN" {
		t.Errorf("Reveal = %q", s.Reveal())
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id, err := enroll.NewID(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		norm, err := enroll.NormalizeID(id)
		if err != nil || norm != id {
			t.Fatalf("NewID = %q, which does not normalize to itself (%q, %v)", id, norm, err)
		}
		if id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Errorf("NewID = %q, want a version 4, RFC 4122 variant UUID", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
}
