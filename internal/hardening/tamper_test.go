package hardening_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

const auditColumns = `id, enrollment_id, event_type, vma_name, vma_fingerprint, source_ip, user_agent,
	approved_by, event_details, created_at, prev_mac, mac`

// auditRow is one stored audit row, column for column.
type auditRow struct {
	id   int64
	cols [11]sql.NullString // enrollment_id … mac
}

func snapshotAudit(t *testing.T, db *sql.DB) ([]auditRow, int64, string) {
	t.Helper()
	rows, err := db.Query("SELECT " + auditColumns + " FROM vma_connection_audit ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var r auditRow
		ptrs := []any{&r.id}
		for i := range r.cols {
			ptrs = append(ptrs, &r.cols[i])
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	var lastID int64
	var lastMAC string
	if err := db.QueryRow("SELECT last_id, last_mac FROM vma_audit_head WHERE id = 1").Scan(&lastID, &lastMAC); err != nil {
		t.Fatal(err)
	}
	return out, lastID, lastMAC
}

// restoreAudit puts the snapshot back: the untouched chain.
func restoreAudit(t *testing.T, db *sql.DB, rows []auditRow, lastID int64, lastMAC string) {
	t.Helper()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	mustExec(t, tx, "DELETE FROM vma_connection_audit")
	for _, r := range rows {
		args := []any{r.id}
		for _, c := range r.cols {
			if c.Valid {
				args = append(args, c.String)
			} else {
				args = append(args, nil)
			}
		}
		mustExec(t, tx, "INSERT INTO vma_connection_audit ("+auditColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", args...)
	}
	mustExec(t, tx, "UPDATE vma_audit_head SET last_id = ?, last_mac = ? WHERE id = 1", lastID, lastMAC)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

type execer interface {
	Exec(query string, args ...any) (sql.Result, error)
}

func mustExec(t *testing.T, db execer, q string, args ...any) int64 {
	t.Helper()
	res, err := db.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	n, _ := res.RowsAffected()
	return n
}

// TestAuditTamperingIsReported edits, deletes and reorders every row of a
// real audit trail (and forges rows at its end) directly in the database,
// and runs the real `omactl audit verify` after each change: it must exit
// non-zero and name the row.
func TestAuditTamperingIsReported(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		e := startEnv(t, envOpts{driver: driver})
		// A history with every kind of event the API can cause.
		a := e.enrollVerified(t, newVMAKey(t, "vma-audit-a"))
		e.adminDo("POST", api.PathApprove+a.id, api.ApproveRequest{Notes: "ok"})
		b := e.enrollVerified(t, newVMAKey(t, "vma-audit-b"))
		e.enroll(newVMAKey(t, "vma-audit-x"), "AAAA-BBBB-CCCC", nil) // enrollment_failed
		e.adminDo("POST", api.PathReject+b.id, api.ReasonRequest{Reason: "unknown"})
		e.adminDo("DELETE", api.PathRevoke+a.id, api.ReasonRequest{Reason: "retired"})
		rows, lastID, lastMAC := snapshotAudit(t, e.raw)
		n := int64(len(rows))
		if n < 10 || lastID != n {
			t.Fatalf("history: %d rows, head %d", n, lastID)
		}
		verify := func() result { return omactl(t, e.admin, e.token, "audit", "verify") }
		if r := verify(); r.code != 0 || !strings.Contains(r.stdout, "OK") {
			t.Fatalf("omactl audit verify on the untouched trail: %s", r)
		}

		type tamper struct {
			name string
			do   func()
			want []string // each must appear in omactl's output
		}
		edits := []struct{ col, val string }{
			{"event_details", `{"reason":"forged"}`}, {"vma_name", "someone-else"}, {"source_ip", "10.6.6.6"},
			{"approved_by", "mallory"}, {"created_at", "2020-01-01 00:00:00.000000"}, {"event_type", "approval"},
			{"user_agent", "curl/8"}, {"mac", strings.Repeat("0", 64)}, {"prev_mac", strings.Repeat("f", 64)},
			{"vma_fingerprint", "SHA256:forged"},
		}
		var cases []tamper
		for i := int64(1); i <= n; i++ {
			ed := edits[(i-1)%int64(len(edits))]
			cases = append(cases, tamper{
				name: fmt.Sprintf("edit %s of row %d", ed.col, i),
				do: func() {
					if mustExec(t, e.raw, "UPDATE vma_connection_audit SET "+ed.col+" = ? WHERE id = ?", ed.val, i) != 1 {
						t.Fatalf("edit of row %d changed nothing", i)
					}
				},
				want: []string{fmt.Sprintf("#%d:", i)},
			})
			del := tamper{
				name: fmt.Sprintf("delete row %d", i),
				do:   func() { mustExec(t, e.raw, "DELETE FROM vma_connection_audit WHERE id = ?", i) },
				// A gap is reported at the row after it, naming the missing one.
				want: []string{fmt.Sprintf("#%d:", i+1), fmt.Sprintf("rows %d to %d are missing", i, i)},
			}
			if i == n {
				del.want = []string{fmt.Sprintf("#%d:", i), "removed"}
			}
			cases = append(cases, del)
			if i < n {
				cases = append(cases, tamper{
					name: fmt.Sprintf("swap rows %d and %d", i, i+1),
					do: func() {
						// Exchange the ids: row i+1's content now comes first.
						mustExec(t, e.raw, "UPDATE vma_connection_audit SET id = ? WHERE id = ?", -1, i)
						mustExec(t, e.raw, "UPDATE vma_connection_audit SET id = ? WHERE id = ?", i, i+1)
						mustExec(t, e.raw, "UPDATE vma_connection_audit SET id = ? WHERE id = ?", i+1, -1)
					},
					want: []string{fmt.Sprintf("#%d:", i)},
				})
			}
		}
		last := rows[n-1]
		cases = append(cases,
			tamper{
				name: "append a forged row",
				do: func() {
					mustExec(t, e.raw, "INSERT INTO vma_connection_audit ("+auditColumns+") VALUES (?, NULL, 'approval', 'forged', '', '', '', 'mallory', '{}', ?, ?, ?)",
						n+1, last.cols[8].String, last.cols[10].String, strings.Repeat("a", 64))
					mustExec(t, e.raw, "UPDATE vma_audit_head SET last_id = ? WHERE id = 1", n+1)
				},
				want: []string{fmt.Sprintf("#%d:", n+1)},
			},
			tamper{
				name: "head claims more rows",
				do:   func() { mustExec(t, e.raw, "UPDATE vma_audit_head SET last_id = ? WHERE id = 1", n+3) },
				want: []string{fmt.Sprintf("#%d:", n+1), "removed"},
			},
		)
		for _, c := range cases {
			c.do()
			r := verify()
			if r.code == 0 || !strings.Contains(r.stdout, "BROKEN") {
				t.Errorf("%s: omactl audit verify did not report it: %s", c.name, r)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stdout+r.stderr, w) {
					t.Errorf("%s: output does not name %q:\n%s", c.name, w, r)
				}
			}
			restoreAudit(t, e.raw, rows, lastID, lastMAC)
			e.chainOK(t)
		}
		t.Logf("%d tamperings of a %d-row trail, each reported by omactl audit verify", len(cases), n)
	})
}
