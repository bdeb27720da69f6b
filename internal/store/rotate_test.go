package store

import (
	"context"
	"crypto/ed25519"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

var testBinding = make([]byte, enroll.RotationBindingSize)

// rotateReq is a correctly signed rotation of v (current key curFP) to next.
func rotateReq(v *vma, curFP string, next ed25519.PrivateKey) enroll.RotateKeyRequest {
	line := sshkey.AuthorizedKey(next.Public().(ed25519.PublicKey), "")
	_, canon, _ := sshkey.ParseAuthorizedKey(line)
	return enroll.RotateKeyRequest{EnrollmentID: v.id, CurrentFingerprint: curFP, NewPublicKey: line,
		Signature: ed25519.Sign(next, enroll.RotationMessage(v.id, curFP, canon, testBinding)), Binding: testBinding}
}

func authKey(priv ed25519.PrivateKey) string {
	return sshkey.AuthorizedKey(priv.Public().(ed25519.PublicKey), "")
}

// TestKeyRotation: the swap and its audit event, the previous key's grace
// (ended by the clock or by the first use of the new key), the refusals
// (stale current key, another VMA's key, a bad signature, a revoked VMA),
// and of concurrent rotations from one key exactly one wins.
func TestKeyRotation(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, clk := newService(t, s)
		ctx := context.Background()
		a, b := approved(t, svc, "vma-a"), approved(t, svc, "vma-b")
		fp0 := sshkey.Fingerprint(a.pub)
		_, k1, _ := sshkey.Generate(nil)
		e, err := svc.RotateKey(ctx, rotateReq(a, fp0, k1), vmaIP)
		if err != nil {
			t.Fatalf("RotateKey: %v", err)
		}
		fp1 := sshkey.Fingerprint(k1.Public().(ed25519.PublicKey))
		if got := mustGet(t, s, a.id); got.VMAFingerprint != fp1 || got.VMAPublicKey != e.VMAPublicKey || got.Status != enroll.StatusApproved {
			t.Fatalf("after the rotation: %+v", got)
		}
		evs := auditEvents(t, s, enroll.AuditFilter{EventType: enroll.EventKeyRotation})
		if len(evs) != 1 || evs[0].Details()["old_fingerprint"] != fp0 || evs[0].Details()["new_fingerprint"] != fp1 || *evs[0].EnrollmentID != a.id {
			t.Fatalf("key_rotation events: %+v", evs)
		}

		// The previous key works during the grace, not after it.
		id, err := svc.AuthorizeTunnelKey(ctx, sshkey.AuthorizedKey(a.pub, ""))
		if err != nil || id.EnrollmentID != a.id || !id.PreviousKey {
			t.Fatalf("previous key in its grace: %+v, %v", id, err)
		}
		clk.Advance(enroll.DefaultRotationGrace + time.Second)
		_, err = svc.AuthorizeTunnelKey(ctx, sshkey.AuthorizedKey(a.pub, ""))
		wantCode(t, "previous key after its grace", err, enroll.CodeUnauthorized)

		// A second rotation; the new key's first use ends the grace at once.
		_, k2, _ := sshkey.Generate(nil)
		if _, err := svc.RotateKey(ctx, rotateReq(a, fp1, k2), vmaIP); err != nil {
			t.Fatalf("second RotateKey: %v", err)
		}
		if id, err := svc.AuthorizeTunnelKey(ctx, authKey(k1)); err != nil || !id.PreviousKey {
			t.Fatalf("k1 in its grace: %+v, %v", id, err)
		}
		if id, err := svc.AuthorizeTunnelKey(ctx, authKey(k2)); err != nil || id.PreviousKey {
			t.Fatalf("k2: %+v, %v", id, err)
		}
		_, err = svc.AuthorizeTunnelKey(ctx, authKey(k1))
		wantCode(t, "k1 after k2 was used", err, enroll.CodeUnauthorized)
		if r, err := s.KeyRotation(ctx, a.id); err != nil || r.Rotations != 2 || r.PreviousUntil != nil || r.PreviousFingerprint != fp1 {
			t.Fatalf("rotation record: %+v, %v", r, err)
		}
		fp2 := sshkey.Fingerprint(k2.Public().(ed25519.PublicKey))

		// Refusals.
		_, k3, _ := sshkey.Generate(nil)
		_, err = svc.RotateKey(ctx, rotateReq(a, fp1, k3), vmaIP)
		wantCode(t, "rotation from a stale key", err, enroll.CodeWrongState)
		_, err = svc.RotateKey(ctx, rotateReq(a, fp2, b.priv), vmaIP)
		wantCode(t, "rotation to another VMA's key", err, enroll.CodeConflict)
		bad := rotateReq(a, fp2, k3)
		bad.Binding = make([]byte, enroll.RotationBindingSize)
		bad.Binding[0] = 1 // signed over another connection
		_, err = svc.RotateKey(ctx, bad, vmaIP)
		wantCode(t, "rotation signed for another connection", err, enroll.CodeInvalidSignature)

		// Concurrent rotations from one key: exactly one wins.
		const n = 6
		var wg sync.WaitGroup
		errs := make([]error, n)
		keys := make([]ed25519.PrivateKey, n)
		for i := range n {
			_, keys[i], _ = sshkey.Generate(nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = svc.RotateKey(ctx, rotateReq(a, fp2, keys[i]), vmaIP)
			}()
		}
		wg.Wait()
		wins := -1
		for i, err := range errs {
			if err == nil {
				if wins >= 0 {
					t.Fatalf("two concurrent rotations won: %d and %d", wins, i)
				}
				wins = i
				continue
			}
			wantCode(t, "a losing concurrent rotation", err, enroll.CodeWrongState)
		}
		if wins < 0 {
			t.Fatalf("no concurrent rotation won: %v", errs)
		}
		if got := mustGet(t, s, a.id); got.VMAFingerprint != sshkey.Fingerprint(keys[wins].Public().(ed25519.PublicKey)) {
			t.Fatalf("the key is %s, not the winner's", got.VMAFingerprint)
		}

		// Revoked: no rotation, and neither key works.
		winFP := sshkey.Fingerprint(keys[wins].Public().(ed25519.PublicKey))
		if _, err := svc.Revoke(ctx, a.id, "test", admin); err != nil {
			t.Fatal(err)
		}
		_, err = svc.RotateKey(ctx, rotateReq(a, winFP, k3), vmaIP)
		wantCode(t, "rotation of a revoked VMA", err, enroll.CodeUnauthorized)
		_, err = svc.AuthorizeTunnelKey(ctx, authKey(k2))
		wantCode(t, "the previous key of a revoked VMA", err, enroll.CodeUnauthorized)
		wantChainOK(t, svc)
	})
}
