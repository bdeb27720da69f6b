package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// Key rotation records (vma_key_rotations, migration 0004).

const keyRotationCols = `enrollment_id, previous_public_key, previous_fingerprint, previous_until, rotations, rotated_at`

var (
	_ enroll.RotationStore = (*DB)(nil)
	_ enroll.RotationTx    = (*tx)(nil)
)

func fixKeyRotation(r *enroll.KeyRotation) {
	utcp(r.PreviousUntil)
	utc(&r.RotatedAt)
}

func keyRotation(ctx context.Context, q sqlx.QueryerContext, id, suffix string) (*enroll.KeyRotation, error) {
	var r enroll.KeyRotation
	err := sqlx.GetContext(ctx, q, &r, `SELECT `+keyRotationCols+` FROM vma_key_rotations WHERE enrollment_id = ?`+suffix, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("no key rotation of enrollment %s", enroll.Printable(id))
	}
	if err != nil {
		return nil, fmt.Errorf("key rotation of %s: %w", enroll.Printable(id), err)
	}
	fixKeyRotation(&r)
	return &r, nil
}

// KeyRotation returns the newest rotation of an enrollment.
func (s *DB) KeyRotation(ctx context.Context, enrollmentID string) (*enroll.KeyRotation, error) {
	r, err := keyRotation(ctx, s.r, enrollmentID, "")
	return r, mapErr(err)
}

// RotationsByPreviousFingerprint lists the rotations whose previous key has
// this fingerprint and is still in its grace at now (indexed).
func (s *DB) RotationsByPreviousFingerprint(ctx context.Context, fingerprint string, now time.Time) ([]enroll.KeyRotation, error) {
	var out []enroll.KeyRotation
	err := sqlx.SelectContext(ctx, s.r, &out, `SELECT `+keyRotationCols+` FROM vma_key_rotations
		WHERE previous_fingerprint = ? AND previous_until IS NOT NULL AND previous_until > ?`, fingerprint, ts(now))
	if err != nil {
		return nil, mapErr(fmt.Errorf("rotations by previous key: %w", err))
	}
	for i := range out {
		fixKeyRotation(&out[i])
	}
	return out, nil
}

// EndKeyGrace ends the previous key's grace of an enrollment (a single
// idempotent UPDATE: no audit row, the key_rotation event recorded the
// grace's bound).
func (s *DB) EndKeyGrace(ctx context.Context, enrollmentID string) error {
	return s.retry(ctx, func() error {
		_, err := s.w.ExecContext(ctx, `UPDATE vma_key_rotations SET previous_until = NULL WHERE enrollment_id = ?`, enrollmentID)
		if err != nil {
			return fmt.Errorf("end key grace of %s: %w", enroll.Printable(enrollmentID), err)
		}
		return nil
	})
}

// SetEnrollmentKey replaces the key of an approved enrollment whose key
// still has oldFingerprint.
func (t *tx) SetEnrollmentKey(ctx context.Context, id, oldFingerprint, newKey, newFingerprint string, now time.Time) (bool, error) {
	res, err := t.tx.ExecContext(ctx, `UPDATE vma_enrollments SET vma_public_key = ?, vma_fingerprint = ?, updated_at = ?
		WHERE id = ? AND status = ? AND vma_fingerprint = ?`,
		newKey, newFingerprint, ts(now), id, string(enroll.StatusApproved), oldFingerprint)
	if err != nil {
		return false, fmt.Errorf("set the key of enrollment %s: %w", id, err)
	}
	return oneRow(res, "set enrollment key")
}

func (t *tx) KeyRotation(ctx context.Context, enrollmentID string) (*enroll.KeyRotation, error) {
	return keyRotation(ctx, t.tx, enrollmentID, t.forUpdate())
}

func (t *tx) PutKeyRotation(ctx context.Context, r *enroll.KeyRotation) error {
	upsert := ` ON CONFLICT (enrollment_id) DO UPDATE SET
		previous_public_key = excluded.previous_public_key, previous_fingerprint = excluded.previous_fingerprint,
		previous_until = excluded.previous_until, rotations = excluded.rotations, rotated_at = excluded.rotated_at`
	if t.db.dialect == dialectMySQL {
		upsert = ` ON DUPLICATE KEY UPDATE
		previous_public_key = VALUES(previous_public_key), previous_fingerprint = VALUES(previous_fingerprint),
		previous_until = VALUES(previous_until), rotations = VALUES(rotations), rotated_at = VALUES(rotated_at)`
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO vma_key_rotations (`+keyRotationCols+`) VALUES (?, ?, ?, ?, ?, ?)`+upsert,
		r.EnrollmentID, r.PreviousPublicKey, r.PreviousFingerprint, tsp(r.PreviousUntil), r.Rotations, ts(r.RotatedAt))
	if err != nil {
		return fmt.Errorf("record the key rotation of %s: %w", r.EnrollmentID, err)
	}
	return nil
}

// EnrollmentKeys returns the status, key fingerprint and key_since of each
// id that exists, in one query per 500 ids (the tunnel endpoint's re-check
// of all live tunnels: revocations, rotated-away and expired keys).
func (s *DB) EnrollmentKeys(ctx context.Context, ids []string) (map[string]enroll.KeyState, error) {
	out := make(map[string]enroll.KeyState, len(ids))
	tcol := func(c string) string {
		if s.dialect == dialectSQLite {
			return "CAST(" + c + " AS TEXT)"
		}
		return c
	}
	for start := 0; start < len(ids); start += 500 {
		end := min(start+500, len(ids))
		q, args, err := sqlx.In(`SELECT e.id, e.status, e.vma_fingerprint, `+tcol("e.approved_at")+`, `+tcol("r.rotated_at")+`
			FROM vma_enrollments e LEFT JOIN vma_key_rotations r ON r.enrollment_id = e.id WHERE e.id IN (?)`, ids[start:end])
		if err != nil {
			return nil, err
		}
		rows, err := s.r.QueryxContext(ctx, q, args...)
		if err != nil {
			return nil, mapErr(fmt.Errorf("enrollment keys: %w", err))
		}
		for rows.Next() {
			var id string
			var ks enroll.KeyState
			var approved, rotated dbTime
			if err := rows.Scan(&id, &ks.Status, &ks.Fingerprint, &approved, &rotated); err != nil {
				rows.Close()
				return nil, mapErr(err)
			}
			ks.KeySince = approved.ptr()
			if rotated.valid {
				ks.KeySince = rotated.ptr()
			}
			out[id] = ks
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
