package store

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// ApprovedByFingerprint lists approved enrollments whose key has this
// fingerprint (the SSH endpoint's key lookup; indexed).
func (s *DB) ApprovedByFingerprint(ctx context.Context, fingerprint string) ([]enroll.Enrollment, error) {
	var out []enroll.Enrollment
	err := sqlx.SelectContext(ctx, s.r, &out, `SELECT `+enrollmentCols+` FROM vma_enrollments
		WHERE vma_fingerprint = ? AND status = ?`, fingerprint, enroll.StatusApproved)
	if err != nil {
		return nil, mapErr(fmt.Errorf("enrollments by fingerprint: %w", err))
	}
	for i := range out {
		fixEnrollment(&out[i])
	}
	return out, nil
}

// EnrollmentStatuses returns the status of each id that exists, in one
// query (the SSH endpoint's revocation re-check of all live tunnels).
func (s *DB) EnrollmentStatuses(ctx context.Context, ids []string) (map[string]enroll.Status, error) {
	out := make(map[string]enroll.Status, len(ids))
	for start := 0; start < len(ids); start += 500 {
		end := min(start+500, len(ids))
		q, args, err := sqlx.In(`SELECT id, status FROM vma_enrollments WHERE id IN (?)`, ids[start:end])
		if err != nil {
			return nil, err
		}
		rows, err := s.r.QueryxContext(ctx, q, args...)
		if err != nil {
			return nil, mapErr(fmt.Errorf("enrollment statuses: %w", err))
		}
		for rows.Next() {
			var id string
			var st enroll.Status
			if err := rows.Scan(&id, &st); err != nil {
				rows.Close()
				return nil, mapErr(err)
			}
			out[id] = st
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
