package store

import (
	"context"
	crand "crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// InTx runs fn in one transaction and commits it when fn returns nil. On a
// transient conflict (MySQL deadlock or lock wait timeout, a unique-key race,
// a busy or locked SQLite database) the transaction is rolled back and fn
// runs again, up to Options.MaxAttempts times with a short jittered backoff.
// Connection failures are returned as enroll.ErrUnavailable.
func (s *DB) InTx(ctx context.Context, fn func(enroll.Tx) error) error {
	return s.retry(ctx, func() error { return s.tryTx(ctx, fn) })
}

// retry runs attempt until it succeeds, fails for good or the attempts run
// out; see InTx.
func (s *DB) retry(ctx context.Context, attempt func() error) error {
	for n := 1; ; n++ {
		err := attempt()
		if err == nil {
			return nil
		}
		var de *enroll.Error
		if errors.As(err, &de) {
			return err
		}
		k := classify(err)
		if k != kindRetry && k != kindDuplicate {
			return mapErr(err)
		}
		// With one writer, a unique-key violation on SQLite is no race:
		// trying again would fail the same way.
		if n >= s.opts.MaxAttempts || (k == kindDuplicate && s.dialect == dialectSQLite) {
			return mapExhausted(err, n)
		}
		if sleep(ctx, backoff(n)) != nil {
			return mapExhausted(err, n)
		}
	}
}

// backoff is a jittered exponential delay: up to 1ms, 2ms, 4ms, … capped at 50ms.
func backoff(attempt int) time.Duration {
	d := time.Millisecond << min(attempt-1, 6)
	d = min(d, 50*time.Millisecond)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (s *DB) tryTx(ctx context.Context, fn func(enroll.Tx) error) (err error) {
	stx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = stx.Rollback()
		}
	}()
	if err := fn(&tx{db: s, tx: stx}); err != nil {
		return err
	}
	done = true
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// tx implements enroll.Tx over one sqlx transaction.
type tx struct {
	db *DB
	tx *sqlx.Tx
}

var _ enroll.Tx = (*tx)(nil)

// forUpdate is the locking-read suffix: on MySQL a plain SELECT inside a
// REPEATABLE READ transaction reads a snapshot, so reads that decide a write
// lock the rows and read their newest version. SQLite transactions already
// hold the database's write lock (BEGIN IMMEDIATE).
func (t *tx) forUpdate() string {
	if t.db.dialect == dialectMySQL {
		return " FOR UPDATE"
	}
	return ""
}

func (t *tx) CreatePairingCode(ctx context.Context, pc *enroll.PairingCode) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO vma_pairing_codes
		(id, pairing_code_hash, code_hint, generated_by, note, used_by_enrollment_id, expires_at, used_at, created_at,
		 max_uses, use_count, labels, auto_approve, from_cidr, revoked_at, revoked_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		pc.ID, pc.CodeHash, pc.CodeHint, pc.GeneratedBy, pc.Note, pc.UsedByEnrollmentID,
		ts(pc.ExpiresAt), tsp(pc.UsedAt), ts(pc.CreatedAt),
		max(pc.MaxUses, 1), pc.UseCount, pc.Labels, pc.AutoApprove, pc.FromCIDR, tsp(pc.RevokedAt), pc.RevokedBy)
	if err != nil {
		return fmt.Errorf("insert pairing code: %w", err)
	}
	return nil
}

func (t *tx) ConsumePairingCode(ctx context.Context, hash string, now time.Time) (bool, error) {
	// used_at is assigned first: MySQL evaluates SET left to right with
	// the values already assigned, SQLite with the old ones; this way both
	// compare the old use_count.
	res, err := t.tx.ExecContext(ctx, `UPDATE vma_pairing_codes
		SET used_at = CASE WHEN use_count + 1 >= max_uses THEN ? ELSE NULL END,
		    use_count = use_count + 1
		WHERE pairing_code_hash = ? AND used_at IS NULL AND revoked_at IS NULL
		  AND use_count < max_uses AND expires_at > ?`,
		ts(now), hash, ts(now))
	if err != nil {
		return false, fmt.Errorf("consume pairing code: %w", err)
	}
	return oneRow(res, "consume pairing code")
}

func (t *tx) LinkPairingCode(ctx context.Context, hash, enrollmentID string) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE vma_pairing_codes SET used_by_enrollment_id = ? WHERE pairing_code_hash = ?`,
		enrollmentID, hash)
	if err != nil {
		return fmt.Errorf("link pairing code: %w", err)
	}
	ok, err := oneRow(res, "link pairing code")
	if err != nil {
		return err
	}
	if !ok {
		return notFound("no pairing code with that hash")
	}
	return nil
}

func (t *tx) PairingCodeByHash(ctx context.Context, hash string) (*enroll.PairingCode, error) {
	var pc enroll.PairingCode
	err := t.tx.GetContext(ctx, &pc, `SELECT `+pairingCodeCols+` FROM vma_pairing_codes WHERE pairing_code_hash = ?`+t.forUpdate(), hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("no pairing code with that hash")
	}
	if err != nil {
		return nil, fmt.Errorf("get pairing code: %w", err)
	}
	fixPairingCode(&pc)
	return &pc, nil
}

func (t *tx) PairingCodeByID(ctx context.Context, id string) (*enroll.PairingCode, error) {
	var pc enroll.PairingCode
	err := t.tx.GetContext(ctx, &pc, `SELECT `+pairingCodeCols+` FROM vma_pairing_codes WHERE id = ?`+t.forUpdate(), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("no pairing code with id %s", enroll.Printable(id))
	}
	if err != nil {
		return nil, fmt.Errorf("get pairing code: %w", err)
	}
	fixPairingCode(&pc)
	return &pc, nil
}

func (t *tx) RevokePairingCode(ctx context.Context, id, by string, now time.Time) (bool, error) {
	res, err := t.tx.ExecContext(ctx, `UPDATE vma_pairing_codes SET revoked_at = ?, revoked_by = ?
		WHERE id = ? AND revoked_at IS NULL`, ts(now), by, id)
	if err != nil {
		return false, fmt.Errorf("revoke pairing code: %w", err)
	}
	return oneRow(res, "revoke pairing code")
}

func (t *tx) CreateEnrollment(ctx context.Context, e *enroll.Enrollment) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO vma_enrollments (`+enrollmentCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.PairingCodeHash, e.VMAPublicKey, e.VMAName, e.VMAVersion, e.VMAFingerprint,
		e.VMAIPAddress, e.VMAUserAgent, e.ChallengeNonce, e.PollTokenHash, string(e.Status),
		e.ApprovedBy, tsp(e.ApprovedAt), e.ApprovalNotes, e.RejectedBy, tsp(e.RejectedAt), e.RejectionReason,
		e.RevokedBy, tsp(e.RevokedAt), e.RevocationNote, tsp(e.VerifiedAt), e.TunnelPort,
		tsp(e.ExpiresAt), ts(e.CreatedAt), ts(e.UpdatedAt), e.PairingCodeID, e.Labels, e.VMALabels)
	if err != nil {
		return fmt.Errorf("insert enrollment: %w", err)
	}
	return nil
}

func (t *tx) GetEnrollment(ctx context.Context, id string) (*enroll.Enrollment, error) {
	return getEnrollment(ctx, t.tx, id, t.forUpdate())
}

// UpdateEnrollment writes every column that changes over an enrollment's
// life (all but id, pairing_code_hash, vma_public_key, vma_fingerprint and
// created_at) where the row still has a status verb v is allowed from (the
// state machine's table, enroll.Verb.Transition); e.Status must be the
// status v leads to. MySQL reports matched rather than changed rows
// (clientFoundRows), so an update that changes nothing still counts.
func (t *tx) UpdateEnrollment(ctx context.Context, e *enroll.Enrollment, v enroll.Verb) (bool, error) {
	tr := v.Transition()
	if len(tr.From) == 0 || e.Status != tr.To {
		return false, fmt.Errorf("update enrollment %s: %q leads to %q, not %q", e.ID, v, tr.To, e.Status)
	}
	in, from := statusIn(tr.From)
	args := []any{
		e.VMAName, e.VMAVersion, e.VMAIPAddress, e.VMAUserAgent,
		e.ChallengeNonce, e.PollTokenHash, string(e.Status),
		e.ApprovedBy, tsp(e.ApprovedAt), e.ApprovalNotes,
		e.RejectedBy, tsp(e.RejectedAt), e.RejectionReason,
		e.RevokedBy, tsp(e.RevokedAt), e.RevocationNote,
		tsp(e.VerifiedAt), e.TunnelPort, tsp(e.ExpiresAt), ts(e.UpdatedAt),
		e.ID,
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE vma_enrollments SET
		vma_name = ?, vma_version = ?, vma_ip_address = ?, vma_user_agent = ?,
		challenge_nonce = ?, poll_token_hash = ?, status = ?,
		approved_by = ?, approved_at = ?, approval_notes = ?,
		rejected_by = ?, rejected_at = ?, rejection_reason = ?,
		revoked_by = ?, revoked_at = ?, revocation_reason = ?,
		verified_at = ?, tunnel_port = ?, expires_at = ?, updated_at = ?
		WHERE id = ? AND status IN (`+in+`)`,
		append(args, from...)...)
	if err != nil {
		return false, fmt.Errorf("update enrollment %s: %w", e.ID, err)
	}
	return oneRow(res, "update enrollment")
}

func (t *tx) ApprovedByName(ctx context.Context, name string) ([]enroll.Enrollment, error) {
	var out []enroll.Enrollment
	err := t.tx.SelectContext(ctx, &out, `SELECT `+enrollmentCols+` FROM vma_enrollments
		WHERE vma_name = ? AND status = ? ORDER BY created_at, id`+t.forUpdate(),
		name, string(enroll.StatusApproved))
	if err != nil {
		return nil, fmt.Errorf("approved enrollments by name: %w", err)
	}
	for i := range out {
		fixEnrollment(&out[i])
	}
	return out, nil
}

// ApprovedByFingerprint lists (and on MySQL locks) the approved
// enrollments holding this key; uq_vma_enrollments_approved_key (migration
// 0002) keeps it to at most one.
func (t *tx) ApprovedByFingerprint(ctx context.Context, fingerprint string) ([]enroll.Enrollment, error) {
	var out []enroll.Enrollment
	err := t.tx.SelectContext(ctx, &out, `SELECT `+enrollmentCols+` FROM vma_enrollments
		WHERE vma_fingerprint = ? AND status = ? ORDER BY created_at, id`+t.forUpdate(),
		fingerprint, string(enroll.StatusApproved))
	if err != nil {
		return nil, fmt.Errorf("approved enrollments by key: %w", err)
	}
	for i := range out {
		fixEnrollment(&out[i])
	}
	return out, nil
}

func (t *tx) UsedTunnelPorts(ctx context.Context) ([]int, error) {
	var ports []int
	err := t.tx.SelectContext(ctx, &ports, `SELECT tunnel_port FROM vma_enrollments
		WHERE tunnel_port IS NOT NULL ORDER BY tunnel_port`+t.forUpdate())
	if err != nil {
		return nil, fmt.Errorf("used tunnel ports: %w", err)
	}
	return ports, nil
}

// UpsertConnection inserts the connection row of c.EnrollmentID or, when
// there is one, replaces its columns (keeping its id and created_at). A new
// row without c.ID gets a random UUID.
func (t *tx) UpsertConnection(ctx context.Context, c *enroll.Connection) error {
	id := c.ID
	if id == "" {
		var err error
		if id, err = enroll.NewID(crand.Reader); err != nil {
			return err
		}
	}
	upsert := ` ON CONFLICT (enrollment_id) DO UPDATE SET
		vma_name = excluded.vma_name, vma_fingerprint = excluded.vma_fingerprint,
		ssh_user = excluded.ssh_user, connection_status = excluded.connection_status,
		tunnel_port = excluded.tunnel_port, remote_addr = excluded.remote_addr,
		last_seen_at = excluded.last_seen_at, connected_at = excluded.connected_at,
		revoked_at = excluded.revoked_at, revoked_by = excluded.revoked_by,
		updated_at = excluded.updated_at`
	if t.db.dialect == dialectMySQL {
		upsert = ` ON DUPLICATE KEY UPDATE
		vma_name = VALUES(vma_name), vma_fingerprint = VALUES(vma_fingerprint),
		ssh_user = VALUES(ssh_user), connection_status = VALUES(connection_status),
		tunnel_port = VALUES(tunnel_port), remote_addr = VALUES(remote_addr),
		last_seen_at = VALUES(last_seen_at), connected_at = VALUES(connected_at),
		revoked_at = VALUES(revoked_at), revoked_by = VALUES(revoked_by),
		updated_at = VALUES(updated_at)`
	}
	created := c.CreatedAt
	if created.IsZero() {
		created = c.UpdatedAt
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO vma_active_connections (`+connectionCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`+upsert,
		id, c.EnrollmentID, c.VMAName, c.VMAFingerprint, c.SSHUser, c.ConnectionStatus,
		c.TunnelPort, c.RemoteAddr, tsp(c.LastSeenAt), tsp(c.ConnectedAt), tsp(c.RevokedAt), c.RevokedBy,
		ts(created), ts(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("upsert connection of %s: %w", c.EnrollmentID, err)
	}
	return nil
}

func (t *tx) GetConnection(ctx context.Context, enrollmentID string) (*enroll.Connection, error) {
	var c enroll.Connection
	err := t.tx.GetContext(ctx, &c, `SELECT `+connectionCols+` FROM vma_active_connections WHERE enrollment_id = ?`+t.forUpdate(), enrollmentID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("no connection for enrollment %s", enrollmentID)
	}
	if err != nil {
		return nil, fmt.Errorf("get connection of %s: %w", enrollmentID, err)
	}
	fixConnection(&c)
	return &c, nil
}

// LockAuditHead reads the chain head. On MySQL the row is locked FOR UPDATE
// until the transaction ends, which serializes every appender across server
// instances; on SQLite the transaction already holds the write lock.
func (t *tx) LockAuditHead(ctx context.Context) (int64, string, error) {
	var head struct {
		LastID  int64  `db:"last_id"`
		LastMAC string `db:"last_mac"`
	}
	err := t.tx.GetContext(ctx, &head, `SELECT last_id, last_mac FROM vma_audit_head WHERE id = 1`+t.forUpdate())
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", errors.New("lock audit head: the vma_audit_head row is missing (run the migrations)")
	}
	if err != nil {
		return 0, "", fmt.Errorf("lock audit head: %w", err)
	}
	return head.LastID, head.LastMAC, nil
}

func (t *tx) InsertAudit(ctx context.Context, ev *enroll.AuditEvent) error {
	details := ev.EventDetails
	if details == "" {
		details = "{}"
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO vma_connection_audit (`+auditCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ev.ID, ev.EnrollmentID, string(ev.EventType), ev.VMAName, ev.VMAFingerprint, ev.SourceIP,
		ev.UserAgent, ev.ApprovedBy, details, ts(ev.CreatedAt), ev.PrevMAC, ev.MAC)
	if err != nil {
		return fmt.Errorf("insert audit event %d: %w", ev.ID, err)
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE vma_audit_head SET last_id = ?, last_mac = ? WHERE id = 1`, ev.ID, ev.MAC)
	if err != nil {
		return fmt.Errorf("move audit head: %w", err)
	}
	if ok, err := oneRow(res, "move audit head"); err != nil || !ok {
		return errors.Join(err, errors.New("move audit head: the vma_audit_head row is missing"))
	}
	return nil
}

// CreateAdminToken stores a new token; a name that exists (live or revoked)
// is a conflict.
func (t *tx) CreateAdminToken(ctx context.Context, tok *enroll.AdminToken) error {
	var n int
	if err := t.tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM admin_tokens WHERE name = ?`, tok.Name); err != nil {
		return fmt.Errorf("check admin token name: %w", err)
	}
	if n > 0 {
		return enroll.Errorf(enroll.CodeConflict, "an admin token named %q exists already (names stay taken after revocation): choose another name", enroll.Printable(tok.Name))
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO admin_tokens (`+adminTokenCols+`) VALUES (?, ?, ?, ?, ?)`,
		tok.Name, tok.TokenHash, ts(tok.CreatedAt), tsp(tok.LastUsedAt), tsp(tok.RevokedAt))
	if err != nil {
		return fmt.Errorf("insert admin token: %w", err)
	}
	return nil
}

func (t *tx) RevokeAdminToken(ctx context.Context, name string, now time.Time) (bool, error) {
	res, err := t.tx.ExecContext(ctx, `UPDATE admin_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL`, ts(now), name)
	if err != nil {
		return false, fmt.Errorf("revoke admin token: %w", err)
	}
	return oneRow(res, "revoke admin token")
}

// oneRow reports whether res affected (matched) exactly one row.
func oneRow(res sql.Result, what string) (bool, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("%s: rows affected: %w", what, err)
	}
	if n > 1 {
		return false, fmt.Errorf("%s: %d rows affected, want at most 1", what, n)
	}
	return n == 1, nil
}
