package enroll

import (
	"crypto/ed25519"
)

// ChallengeSize is the number of random bytes in a challenge.
const ChallengeSize = 32

// ChallengePrefix starts every signed challenge message.
const ChallengePrefix = "vma-enrollment-challenge-v1\n"

// SignedMessage is the exact byte string a VMA signs to prove possession of
// its key: the prefix, the enrollment id, a newline and the raw challenge.
func SignedMessage(enrollmentID string, challenge []byte) []byte {
	msg := make([]byte, 0, len(ChallengePrefix)+len(enrollmentID)+1+len(challenge))
	msg = append(msg, ChallengePrefix...)
	msg = append(msg, enrollmentID...)
	msg = append(msg, '\n')
	return append(msg, challenge...)
}

// SignChallenge signs the challenge of an enrollment with the VMA's key.
func SignChallenge(priv ed25519.PrivateKey, enrollmentID string, challenge []byte) []byte {
	return ed25519.Sign(priv, SignedMessage(enrollmentID, challenge))
}
