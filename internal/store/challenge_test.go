package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// TestChallenge: only a signature by the enrolled key over this
// enrollment's challenge verifies, and only once.
func TestChallenge(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, _ := newService(t, s)
		ctx := context.Background()
		v, other := enrolled(t, svc, "vma-a"), enrolled(t, svc, "vma-b")
		_, strangerKey := newVMA(t, "x").pub, newVMA(t, "x").priv

		e := mustGet(t, s, v.id)
		if e.ChallengeNonce != hex.EncodeToString(v.challenge) || len(v.challenge) != enroll.ChallengeSize {
			t.Fatalf("stored challenge = %q, want the %d bytes handed out", e.ChallengeNonce, enroll.ChallengeSize)
		}
		flipped := v.sign()
		flipped[10] ^= 1
		cases := []struct {
			name string
			sig  []byte
			code enroll.Code
		}{
			{"empty", nil, enroll.CodeInvalidSignature},
			{"short", v.sign()[:63], enroll.CodeInvalidSignature},
			{"garbage", bytes.Repeat([]byte{7}, 64), enroll.CodeInvalidSignature},
			{"one bit flipped", flipped, enroll.CodeInvalidSignature},
			{"another key", enroll.SignChallenge(strangerKey, v.id, v.challenge), enroll.CodeInvalidSignature},
			{"another enrollment's challenge", enroll.SignChallenge(v.priv, other.id, other.challenge), enroll.CodeInvalidSignature},
			{"own challenge under another id", enroll.SignChallenge(v.priv, other.id, v.challenge), enroll.CodeInvalidSignature},
			{"bare challenge", ed25519.Sign(v.priv, v.challenge), enroll.CodeInvalidSignature},
		}
		for _, c := range cases {
			_, err := svc.Verify(ctx, v.id, c.sig, vmaIP)
			wantCode(t, "Verify with "+c.name+" signature", err, c.code)
			wantStatus(t, s, v.id, enroll.StatusPendingVerification)
		}
		// Bad signatures (of the right length) are audited.
		failed := auditEvents(t, s, enroll.AuditFilter{EventType: enroll.EventEnrollmentFailed, EnrollmentID: v.id})
		if len(failed) != 6 {
			t.Errorf("enrollment_failed events for %s = %d, want 6 (one per 64-byte bad signature)", v.id, len(failed))
		}
		for _, ev := range failed {
			if ev.Details()["reason"] != "invalid_signature" {
				t.Errorf("audit %d: reason = %v, want invalid_signature", ev.ID, ev.Details()["reason"])
			}
		}

		out, err := svc.Verify(ctx, v.id, v.sign(), vmaIP)
		if err != nil {
			t.Fatalf("Verify with the right signature: %v", err)
		}
		if out.Status != enroll.StatusAwaitingApproval || out.PollToken.Reveal() == "" {
			t.Errorf("Verify = %+v, want awaiting_approval and a poll token", out)
		}
		e = mustGet(t, s, v.id)
		if e.ChallengeNonce != "" || e.PollTokenHash != enroll.HashSecret(out.PollToken.Reveal()) || e.VerifiedAt == nil {
			t.Errorf("after verify: challenge %q, poll hash %q, verified_at %v; want cleared, hash of the token, set",
				e.ChallengeNonce, e.PollTokenHash, e.VerifiedAt)
		}
		_, err = svc.Verify(ctx, v.id, v.sign(), vmaIP)
		wantCode(t, "second Verify", err, enroll.CodeWrongState)

		// The poll token authenticates the result call, nothing else does.
		got, err := svc.Result(ctx, v.id, out.PollToken.Reveal(), 0)
		if err != nil || got.Status != enroll.StatusAwaitingApproval {
			t.Errorf("Result = %v, %v; want awaiting_approval", got, err)
		}
		_, err = svc.Result(ctx, v.id, "vpt_wrong", 0)
		wantCode(t, "Result with a wrong token", err, enroll.CodeUnauthorized)
		_, err = svc.Result(ctx, other.id, out.PollToken.Reveal(), 0)
		wantCode(t, "Result of another enrollment", err, enroll.CodeUnauthorized)
		wantChainOK(t, svc)
	})
}
