package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// Column lists, in the order the INSERTs bind them. They are exactly the
// db tags of the enroll structs.
const (
	enrollmentCols = `id, pairing_code_hash, vma_public_key, vma_name, vma_version, vma_fingerprint,
		vma_ip_address, vma_user_agent, challenge_nonce, poll_token_hash, status,
		approved_by, approved_at, approval_notes, rejected_by, rejected_at, rejection_reason,
		revoked_by, revoked_at, revocation_reason, verified_at, tunnel_port,
		expires_at, created_at, updated_at, pairing_code_id, labels, vma_labels`
	pairingCodeCols = `id, pairing_code_hash, code_hint, generated_by, note, used_by_enrollment_id,
		expires_at, used_at, created_at, max_uses, use_count, labels, auto_approve, from_cidr,
		revoked_at, revoked_by`
	connectionCols = `id, enrollment_id, vma_name, vma_fingerprint, ssh_user, connection_status,
		tunnel_port, remote_addr, last_seen_at, connected_at, revoked_at, revoked_by,
		created_at, updated_at`
	auditCols = `id, enrollment_id, event_type, vma_name, vma_fingerprint, source_ip,
		user_agent, approved_by, event_details, created_at, prev_mac, mac`
	adminTokenCols = `name, token_hash, created_at, last_used_at, revoked_at`
)

func fixEnrollment(e *enroll.Enrollment) {
	utcp(e.ApprovedAt)
	utcp(e.RejectedAt)
	utcp(e.RevokedAt)
	utcp(e.VerifiedAt)
	utcp(e.ExpiresAt)
	utc(&e.CreatedAt)
	utc(&e.UpdatedAt)
}

func fixPairingCode(pc *enroll.PairingCode) {
	utc(&pc.ExpiresAt)
	utcp(pc.UsedAt)
	utc(&pc.CreatedAt)
	utcp(pc.RevokedAt)
}

func fixConnection(c *enroll.Connection) {
	utcp(c.LastSeenAt)
	utcp(c.ConnectedAt)
	utcp(c.RevokedAt)
	utc(&c.CreatedAt)
	utc(&c.UpdatedAt)
}

func fixAdminToken(t *enroll.AdminToken) {
	utc(&t.CreatedAt)
	utcp(t.LastUsedAt)
	utcp(t.RevokedAt)
}

func getEnrollment(ctx context.Context, q sqlx.QueryerContext, id, suffix string) (*enroll.Enrollment, error) {
	var e enroll.Enrollment
	err := sqlx.GetContext(ctx, q, &e, `SELECT `+enrollmentCols+` FROM vma_enrollments WHERE id = ?`+suffix, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("no enrollment with id %s", enroll.Printable(id))
	}
	if err != nil {
		return nil, fmt.Errorf("get enrollment %s: %w", enroll.Printable(id), err)
	}
	fixEnrollment(&e)
	return &e, nil
}

// GetEnrollment returns the enrollment with this id.
func (s *DB) GetEnrollment(ctx context.Context, id string) (*enroll.Enrollment, error) {
	e, err := getEnrollment(ctx, s.r, id, "")
	return e, mapErr(err)
}

// likeEscaper escapes a LIKE pattern for ESCAPE '!' (the same in both
// dialects, unlike a backslash).
var likeEscaper = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")

// ListEnrollments returns the enrollments matching f, oldest first.
// IDPrefix is matched case-insensitively (ids are lower-case UUIDs).
func (s *DB) ListEnrollments(ctx context.Context, f enroll.EnrollmentFilter) ([]enroll.Enrollment, error) {
	var (
		where []string
		args  []any
	)
	if len(f.Statuses) > 0 {
		where = append(where, "status IN (?"+strings.Repeat(", ?", len(f.Statuses)-1)+")")
		for _, st := range f.Statuses {
			args = append(args, string(st))
		}
	}
	if f.VMAName != "" {
		where = append(where, "vma_name = ?")
		args = append(args, f.VMAName)
	}
	if f.IDPrefix != "" {
		where = append(where, "id LIKE ? ESCAPE '!'")
		args = append(args, likeEscaper.Replace(strings.ToLower(f.IDPrefix))+"%")
	}
	q := `SELECT ` + enrollmentCols + ` FROM vma_enrollments`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at, id"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	out := []enroll.Enrollment{}
	if err := s.r.SelectContext(ctx, &out, q, args...); err != nil {
		return nil, mapErr(fmt.Errorf("list enrollments: %w", err))
	}
	for i := range out {
		fixEnrollment(&out[i])
	}
	return out, nil
}

// ListConnections returns the connection state of every approved VMA,
// ordered by VMA name. The tunnel port is the enrollment's. The list can
// be long (a row per VMA), so it is scanned by hand, with SQLite's times
// read as text (see dbTime).
func (s *DB) ListConnections(ctx context.Context) ([]enroll.Connection, error) {
	rows, err := s.r.QueryContext(ctx, listConnectionsSQL(s.dialect), string(enroll.StatusApproved))
	if err != nil {
		return nil, mapErr(fmt.Errorf("list connections: %w", err))
	}
	defer rows.Close()
	out := []enroll.Connection{}
	for rows.Next() {
		var (
			c                                enroll.Connection
			port                             sql.NullInt64
			last, conn, revoked, created, up dbTime
			approved, rotated                dbTime
		)
		if err := rows.Scan(&c.ID, &c.EnrollmentID, &c.VMAName, &c.VMAFingerprint, &c.SSHUser, &c.ConnectionStatus,
			&port, &c.RemoteAddr, &last, &conn, &revoked, &c.RevokedBy, &created, &up, &c.Labels, &c.VMALabels, &approved, &rotated); err != nil {
			return nil, mapErr(fmt.Errorf("list connections: %w", err))
		}
		if port.Valid {
			p := int(port.Int64)
			c.TunnelPort = &p
		}
		c.LastSeenAt, c.ConnectedAt, c.RevokedAt = last.ptr(), conn.ptr(), revoked.ptr()
		c.CreatedAt, c.UpdatedAt = created.t, up.t
		c.KeySince = approved.ptr()
		if rotated.valid {
			c.KeySince = rotated.ptr()
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(fmt.Errorf("list connections: %w", err))
	}
	return out, nil
}

// listConnectionsSQL is ListConnections' query: the approved enrollments
// with a connection row, in the order of the index of migration 0006
// (status, vma_name, id), so that the database sorts nothing.
func listConnectionsSQL(d dialect) string {
	tcol := func(c string) string {
		if d == dialectSQLite {
			return "CAST(" + c + " AS TEXT)"
		}
		return c
	}
	return `SELECT c.id, c.enrollment_id, e.vma_name, e.vma_fingerprint,
		c.ssh_user, c.connection_status, e.tunnel_port, c.remote_addr, ` + tcol("c.last_seen_at") + `,
		` + tcol("c.connected_at") + `, ` + tcol("c.revoked_at") + `, c.revoked_by, ` + tcol("c.created_at") + `, ` + tcol("c.updated_at") + `,
		e.labels, e.vma_labels, ` + tcol("e.approved_at") + `, ` + tcol("r.rotated_at") + `
		FROM vma_active_connections c JOIN vma_enrollments e ON e.id = c.enrollment_id
		LEFT JOIN vma_key_rotations r ON r.enrollment_id = e.id
		WHERE e.status = ?
		ORDER BY e.vma_name, e.id`
}

// ListAudit returns the audit events matching f, by id (ascending unless
// f.Descending). Since is inclusive and Until exclusive; After and Before
// are exclusive id bounds.
func (s *DB) ListAudit(ctx context.Context, f enroll.AuditFilter) ([]enroll.AuditEvent, error) {
	var (
		where []string
		args  []any
	)
	if f.Since != nil {
		where = append(where, "created_at >= ?")
		args = append(args, ts(*f.Since))
	}
	if f.Until != nil {
		where = append(where, "created_at < ?")
		args = append(args, ts(*f.Until))
	}
	if f.EventType != "" {
		where = append(where, "event_type = ?")
		args = append(args, string(f.EventType))
	}
	if f.EnrollmentID != "" {
		where = append(where, "enrollment_id = ?")
		args = append(args, f.EnrollmentID)
	}
	if f.VMAName != "" {
		where = append(where, "vma_name = ?")
		args = append(args, f.VMAName)
	}
	if f.After > 0 {
		where = append(where, "id > ?")
		args = append(args, f.After)
	}
	if f.Before > 0 {
		where = append(where, "id < ?")
		args = append(args, f.Before)
	}
	q := `SELECT ` + auditCols + ` FROM vma_connection_audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if f.Descending {
		q += " ORDER BY id DESC"
	} else {
		q += " ORDER BY id"
	}
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	out := []enroll.AuditEvent{}
	if err := s.r.SelectContext(ctx, &out, q, args...); err != nil {
		return nil, mapErr(fmt.Errorf("list audit events: %w", err))
	}
	for i := range out {
		utc(&out[i].CreatedAt)
	}
	return out, nil
}

// AuditHead returns the id and MAC the chain head records.
func (s *DB) AuditHead(ctx context.Context) (int64, string, error) {
	var head struct {
		LastID  int64  `db:"last_id"`
		LastMAC string `db:"last_mac"`
	}
	err := s.r.GetContext(ctx, &head, `SELECT last_id, last_mac FROM vma_audit_head WHERE id = 1`)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", mapErr(fmt.Errorf("audit head: %w", err))
	}
	return head.LastID, head.LastMAC, nil
}

// ExpirableEnrollments lists the ids of unfinished enrollments due to
// expire at now, the longest overdue first.
func (s *DB) ExpirableEnrollments(ctx context.Context, now time.Time, limit int) ([]string, error) {
	// The statuses that can expire, from the state machine's table.
	in, args := statusIn(enroll.VerbExpire.Transition().From)
	q := `SELECT id FROM vma_enrollments
		WHERE status IN (` + in + `) AND expires_at IS NOT NULL AND expires_at <= ?
		ORDER BY expires_at, id`
	args = append(args, ts(now))
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	ids := []string{}
	if err := s.r.SelectContext(ctx, &ids, q, args...); err != nil {
		return nil, mapErr(fmt.Errorf("expirable enrollments: %w", err))
	}
	return ids, nil
}

// AdminTokenByHash returns the admin token (live or revoked) with this hash.
func (s *DB) AdminTokenByHash(ctx context.Context, hash string) (*enroll.AdminToken, error) {
	var t enroll.AdminToken
	err := s.r.GetContext(ctx, &t, `SELECT `+adminTokenCols+` FROM admin_tokens WHERE token_hash = ?`, hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("no admin token with that hash")
	}
	if err != nil {
		return nil, mapErr(fmt.Errorf("get admin token: %w", err))
	}
	fixAdminToken(&t)
	return &t, nil
}

// ListAdminTokens returns every admin token, live and revoked, by name.
func (s *DB) ListAdminTokens(ctx context.Context) ([]enroll.AdminToken, error) {
	out := []enroll.AdminToken{}
	if err := s.r.SelectContext(ctx, &out, `SELECT `+adminTokenCols+` FROM admin_tokens ORDER BY name`); err != nil {
		return nil, mapErr(fmt.Errorf("list admin tokens: %w", err))
	}
	for i := range out {
		fixAdminToken(&out[i])
	}
	return out, nil
}

// CountAdminTokens counts every admin token ever created, revoked ones
// included: zero means a fresh installation that needs its first token.
func (s *DB) CountAdminTokens(ctx context.Context) (int, error) {
	var n int
	if err := s.r.GetContext(ctx, &n, `SELECT COUNT(*) FROM admin_tokens`); err != nil {
		return 0, mapErr(fmt.Errorf("count admin tokens: %w", err))
	}
	return n, nil
}

// TouchAdminToken records that the token called name was used at now.
func (s *DB) TouchAdminToken(ctx context.Context, name string, now time.Time) error {
	return s.retry(ctx, func() error {
		_, err := s.w.ExecContext(ctx, `UPDATE admin_tokens SET last_used_at = ? WHERE name = ?`, ts(now), name)
		if err != nil {
			return fmt.Errorf("touch admin token: %w", err)
		}
		return nil
	})
}

// statusIn is the placeholders ("?, ?") and arguments of an SQL
// "status IN (…)" over statuses (never empty: the state machine's verbs
// all start somewhere).
func statusIn(statuses []enroll.Status) (string, []any) {
	args := make([]any, len(statuses))
	for i, st := range statuses {
		args[i] = string(st)
	}
	return strings.TrimSuffix(strings.Repeat("?, ", len(statuses)), ", "), args
}

// ListPairingCodes lists pairing codes, newest first: every code, or only
// the usable ones at now (uses left, unexpired, unrevoked).
func (s *DB) ListPairingCodes(ctx context.Context, all bool, now time.Time, limit int) ([]enroll.PairingCode, error) {
	q := `SELECT ` + pairingCodeCols + ` FROM vma_pairing_codes`
	var args []any
	if !all {
		q += ` WHERE used_at IS NULL AND revoked_at IS NULL AND use_count < max_uses AND expires_at > ?`
		args = append(args, ts(now))
	}
	q += ` ORDER BY created_at DESC, id`
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	out := []enroll.PairingCode{}
	if err := s.r.SelectContext(ctx, &out, q, args...); err != nil {
		return nil, mapErr(fmt.Errorf("list pairing codes: %w", err))
	}
	for i := range out {
		fixPairingCode(&out[i])
	}
	return out, nil
}
