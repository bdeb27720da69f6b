package enroll_test

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// FuzzSignedMessage: the signed message is exactly prefix, id, newline,
// challenge; for challenges of the fixed size it is injective (no two
// enrollments or challenges share a message, so a signature answers one
// challenge of one enrollment only), and it parses back into its parts.
func FuzzSignedMessage(f *testing.F) {
	ch := bytes.Repeat([]byte{0xA5}, enroll.ChallengeSize)
	for _, s := range []struct {
		id1 string
		ch1 []byte
		id2 string
		ch2 []byte
	}{
		{"0b9d3c4e-1111-4222-8333-444455556666", ch, "0b9d3c4e-1111-4222-8333-444455556667", ch},
		{"a", append([]byte("\n"), ch[1:]...), "a\n", ch},
		{"", ch, "\n", ch},
		{"id", ch, "id", append(append([]byte{}, ch[:31]...), 0)},
		{"x\ny", []byte("short"), "x", []byte("y\nshort")},
	} {
		f.Add(s.id1, s.ch1, s.id2, s.ch2)
	}
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, id1 string, ch1 []byte, id2 string, ch2 []byte) {
		m1 := enroll.SignedMessage(id1, ch1)
		want := enroll.ChallengePrefix + id1 + "\n" + string(ch1)
		if string(m1) != want {
			t.Fatalf("SignedMessage(%q, %x) = %q, want %q", id1, ch1, m1, want)
		}
		// It parses back: the challenge is the fixed-size tail, the id what
		// lies between the prefix and the newline before it.
		if len(ch1) == enroll.ChallengeSize {
			rest, ok := bytes.CutPrefix(m1, []byte(enroll.ChallengePrefix))
			tail := rest[len(rest)-enroll.ChallengeSize:]
			id := rest[:len(rest)-enroll.ChallengeSize]
			if !ok || !bytes.Equal(tail, ch1) || !bytes.HasSuffix(id, []byte("\n")) || string(id[:len(id)-1]) != id1 {
				t.Fatalf("message %q does not parse back into %q and %x", m1, id1, ch1)
			}
		}
		m2 := enroll.SignedMessage(id2, ch2)
		same := id1 == id2 && bytes.Equal(ch1, ch2)
		fixed := len(ch1) == enroll.ChallengeSize && len(ch2) == enroll.ChallengeSize
		// Ids are UUIDs, without newlines: then the message is injective
		// for any challenge length too.
		noNL := !strings.Contains(id1, "\n") && !strings.Contains(id2, "\n")
		if !same && (fixed || noNL) && bytes.Equal(m1, m2) {
			t.Fatalf("(%q, %x) and (%q, %x) give the same message %q", id1, ch1, id2, ch2, m1)
		}
		// A signature over one answers that one only.
		if fixed && len(id1) < 64 {
			sig := enroll.SignChallenge(priv, id1, ch1)
			if !ed25519.Verify(pub, m1, sig) {
				t.Fatal("a signature does not verify over its own message")
			}
			if !same && ed25519.Verify(pub, m2, sig) {
				t.Fatalf("a signature for (%q, %x) verifies for (%q, %x)", id1, ch1, id2, ch2)
			}
		}
	})
}
