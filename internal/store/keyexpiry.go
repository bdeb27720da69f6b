package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// Refused expired keys (vma_key_expiries, migration 0005): one row per key,
// so that its key_expired audit event is written once.

var (
	_ enroll.KeyExpiryStore = (*DB)(nil)
	_ enroll.KeyExpiryTx    = (*tx)(nil)
)

// KeyExpiryRecorded reports whether the refusal of this key of the
// enrollment was recorded (a primary-key lookup).
func (s *DB) KeyExpiryRecorded(ctx context.Context, enrollmentID, fingerprint string) (bool, error) {
	var n int
	err := s.r.GetContext(ctx, &n, `SELECT COUNT(*) FROM vma_key_expiries WHERE enrollment_id = ? AND fingerprint = ?`, enrollmentID, fingerprint)
	if err != nil {
		return false, mapErr(fmt.Errorf("key expiry of %s: %w", enroll.Printable(enrollmentID), err))
	}
	return n > 0, nil
}

// RotatedAt returns the time of the newest rotation of each id that
// rotated its key, in one query per 500 ids.
func (s *DB) RotatedAt(ctx context.Context, ids []string) (map[string]time.Time, error) {
	out := make(map[string]time.Time, len(ids))
	tcol := "rotated_at"
	if s.dialect == dialectSQLite {
		tcol = "CAST(rotated_at AS TEXT)"
	}
	for start := 0; start < len(ids); start += 500 {
		end := min(start+500, len(ids))
		q, args, err := sqlx.In(`SELECT enrollment_id, `+tcol+` FROM vma_key_rotations WHERE enrollment_id IN (?)`, ids[start:end])
		if err != nil {
			return nil, err
		}
		rows, err := s.r.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, mapErr(fmt.Errorf("key rotation times: %w", err))
		}
		for rows.Next() {
			var id string
			var t dbTime
			if err := rows.Scan(&id, &t); err != nil {
				rows.Close()
				return nil, mapErr(err)
			}
			if t.valid {
				out[id] = t.t
			}
		}
		if err := rows.Close(); err != nil {
			return nil, mapErr(err)
		}
		if err := rows.Err(); err != nil {
			return nil, mapErr(err)
		}
	}
	return out, nil
}

// RecordKeyExpiry records the refusal of a key unless it is recorded: of
// concurrent callers one inserts, the others see the row (the enrollment
// row they locked first orders them; a duplicate key retries the
// transaction, which then sees it).
func (t *tx) RecordKeyExpiry(ctx context.Context, enrollmentID, fingerprint string, now time.Time) (bool, error) {
	var n int
	if err := t.tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM vma_key_expiries WHERE enrollment_id = ? AND fingerprint = ?`, enrollmentID, fingerprint); err != nil {
		return false, fmt.Errorf("key expiry of %s: %w", enrollmentID, err)
	}
	if n > 0 {
		return false, nil
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO vma_key_expiries (enrollment_id, fingerprint, expired_at) VALUES (?, ?, ?)`,
		enrollmentID, fingerprint, ts(now)); err != nil {
		return false, fmt.Errorf("record the key expiry of %s: %w", enrollmentID, err)
	}
	return true, nil
}
