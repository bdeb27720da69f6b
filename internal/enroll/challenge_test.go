package enroll_test

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// TestSignedMessage pins the layout of docs/design.md §4: the prefix, the
// enrollment id, a newline, then the 32 raw challenge bytes.
func TestSignedMessage(t *testing.T) {
	id := "0b9d3c4e-1234-4abc-8def-0123456789ab"
	challenge := bytes.Repeat([]byte{0xA5}, enroll.ChallengeSize)
	got := enroll.SignedMessage(id, challenge)
	want := append([]byte("vma-enrollment-challenge-v1\n"+id+"\n"), challenge...)
	if !bytes.Equal(got, want) {
		t.Fatalf("SignedMessage = %q, want %q", got, want)
	}
	if len(got) != 28+36+1+32 {
		t.Errorf("len = %d, want %d", len(got), 28+36+1+32)
	}
	if enroll.ChallengePrefix != "vma-enrollment-challenge-v1\n" {
		t.Errorf("ChallengePrefix = %q", enroll.ChallengePrefix)
	}
}

func TestSignChallenge(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, challenge := "0b9d3c4e-1234-4abc-8def-0123456789ab", bytes.Repeat([]byte{1}, enroll.ChallengeSize)
	sig := enroll.SignChallenge(priv, id, challenge)
	if !ed25519.Verify(pub, enroll.SignedMessage(id, challenge), sig) {
		t.Fatalf("signature does not verify over SignedMessage")
	}
	if ed25519.Verify(pub, enroll.SignedMessage("0b9d3c4e-1234-4abc-8def-0123456789ac", challenge), sig) {
		t.Errorf("signature verifies for another enrollment id")
	}
	if ed25519.Verify(pub, challenge, sig) {
		t.Errorf("signature verifies over the bare challenge")
	}
}
