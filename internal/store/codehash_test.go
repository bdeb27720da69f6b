package store

import (
	"context"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// TestPairingCodeHashIsKeyed: the stored pairing-code hash is keyed by a
// secret outside the database, so a copy of the database cannot be searched
// for the code (issue 13, finding 5: a plain SHA-256 beside the 20-bit hint
// left 40 bits, about 30 core-hours). The same code under another key gives
// another hash; the plain SHA-256 of the code is nowhere.
func TestPairingCodeHashIsKeyed(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, _ := newService(t, s)
		code := mustNormalize(t, newCode(t, svc))
		if n := count(t, s, "SELECT COUNT(*) FROM vma_pairing_codes WHERE pairing_code_hash = ?", enroll.HashSecret(code)); n != 0 {
			t.Fatalf("the pairing code is stored as its plain SHA-256: a database copy can be searched for it")
		}
		if n := count(t, s, "SELECT COUNT(*) FROM vma_pairing_codes WHERE pairing_code_hash = ?", enroll.PairingCodeHash(testAuditKey, code)); n != 1 {
			t.Fatalf("the pairing code is not stored under its keyed hash")
		}
		if enroll.PairingCodeHash([]byte("another key, another installation"), code) == enroll.PairingCodeHash(testAuditKey, code) {
			t.Fatal("the code hash does not depend on the key")
		}
		v := newVMA(t, "vma-keyed")
		if _, err := svc.Enroll(context.Background(), v.request(code), vmaIP); err != nil {
			t.Fatalf("Enroll with a keyed code: %v", err)
		}
	})
}

// TestLegacyPairingCodeAfterUpgrade: a code issued before the keyed hash
// (stored as plain SHA-256) still enrolls until it expires, once; an expired
// one is refused as expired.
func TestLegacyPairingCodeAfterUpgrade(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, clk := newService(t, s)
		ctx := context.Background()
		legacy := func(code string, ttl time.Duration) {
			err := s.InTx(ctx, func(tx enroll.Tx) error {
				return tx.CreatePairingCode(ctx, &enroll.PairingCode{ID: code + "-id", CodeHash: enroll.HashSecret(code),
					ExpiresAt: clk.Now().Add(ttl), CreatedAt: clk.Now()})
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		legacy("ABCDEFGHJKMN", 10*time.Minute)
		legacy("ABCDEFGHJKMP", time.Second)
		clk.Advance(2 * time.Second)
		v := newVMA(t, "vma-legacy")
		if _, err := svc.Enroll(ctx, v.request("ABCD-EFGH-JKMN"), vmaIP); err != nil {
			t.Fatalf("Enroll with an unexpired code from before the upgrade: %v", err)
		}
		_, err := svc.Enroll(ctx, newVMA(t, "vma-again").request("ABCD-EFGH-JKMN"), vmaIP)
		wantCode(t, "Enroll with the legacy code again", err, enroll.CodePairingCodeRejected)
		_, err = svc.Enroll(ctx, newVMA(t, "vma-late").request("ABCD-EFGH-JKMP"), vmaIP)
		wantCode(t, "Enroll with an expired legacy code", err, enroll.CodePairingCodeRejected)
		var reasons []any
		for _, ev := range auditEvents(t, s, enroll.AuditFilter{EventType: enroll.EventEnrollmentFailed}) {
			reasons = append(reasons, ev.Details()["reason"])
		}
		if len(reasons) != 2 || reasons[0] != "pairing_code_used" || reasons[1] != "pairing_code_expired" {
			t.Errorf("audited reasons %v, want used then expired", reasons)
		}
		wantChainOK(t, svc)
	})
}
