package store

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// TestTimesRoundTrip checks that every time column comes back as the same
// instant, in UTC, with its microseconds, and that NULL times stay nil.
func TestTimesRoundTrip(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC) // 6µs
		later := at.Add(90*time.Minute + 123456*time.Microsecond)
		port := 9123
		e := &enroll.Enrollment{
			ID: "0b9d3c4e-0000-4000-8000-000000000001", PairingCodeHash: strings.Repeat("a", 64),
			VMAPublicKey: "ssh-ed25519 AAAA", VMAName: "vma-1", VMAVersion: "1.0", VMAFingerprint: "SHA256:x",
			VMAIPAddress: "203.0.113.9", Status: enroll.StatusApproved, ApprovedBy: "alice",
			ApprovedAt: &later, TunnelPort: &port, ExpiresAt: nil, CreatedAt: at, UpdatedAt: later,
		}
		// A time in another zone must be stored as the same instant.
		verifiedAt := later.In(time.FixedZone("X", 5*3600+1800))
		e.VerifiedAt = &verifiedAt
		if err := s.InTx(ctx, func(tx enroll.Tx) error { return tx.CreateEnrollment(ctx, e) }); err != nil {
			t.Fatalf("CreateEnrollment: %v", err)
		}
		got := mustGet(t, s, e.ID)
		if !got.CreatedAt.Equal(at) || got.CreatedAt.Location() != time.UTC {
			t.Errorf("created_at = %v (%v), want %v in UTC", got.CreatedAt, got.CreatedAt.Location(), at)
		}
		if got.UpdatedAt != later {
			t.Errorf("updated_at = %v, want %v", got.UpdatedAt, later)
		}
		if got.ApprovedAt == nil || *got.ApprovedAt != later {
			t.Errorf("approved_at = %v, want %v", got.ApprovedAt, later)
		}
		if got.VerifiedAt == nil || *got.VerifiedAt != later {
			t.Errorf("verified_at = %v, want %v (UTC)", got.VerifiedAt, later)
		}
		if got.ExpiresAt != nil || got.RejectedAt != nil || got.RevokedAt != nil {
			t.Errorf("expires_at, rejected_at, revoked_at = %v, %v, %v; want nil", got.ExpiresAt, got.RejectedAt, got.RevokedAt)
		}
		if got.TunnelPort == nil || *got.TunnelPort != port {
			t.Errorf("tunnel_port = %s, want %d", fmtPort(got.TunnelPort), port)
		}
		if s.dialect == dialectSQLite {
			// Stored as fixed-width UTC text, so that SQL compares it right.
			var raw string
			if err := s.r.GetContext(ctx, &raw, "SELECT CAST(verified_at AS TEXT) FROM vma_enrollments WHERE id = ?", e.ID); err != nil {
				t.Fatal(err)
			}
			if want := "2026-01-02 04:34:05.123462"; raw != want {
				t.Errorf("stored verified_at = %q, want %q", raw, want)
			}
		}
		// The whole struct survives the round trip.
		want := *e
		want.VerifiedAt = &later
		if g, w := *got, want; !equalEnrollments(g, w) {
			t.Errorf("round trip:\n got %+v\nwant %+v", g, w)
		}
	})
}

func equalEnrollments(a, b enroll.Enrollment) bool {
	eqT := func(x, y *time.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(*y)) }
	eqI := func(x, y *int) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	if !eqT(a.ApprovedAt, b.ApprovedAt) || !eqT(a.RejectedAt, b.RejectedAt) || !eqT(a.RevokedAt, b.RevokedAt) ||
		!eqT(a.VerifiedAt, b.VerifiedAt) || !eqT(a.ExpiresAt, b.ExpiresAt) || !eqI(a.TunnelPort, b.TunnelPort) ||
		!a.CreatedAt.Equal(b.CreatedAt) || !a.UpdatedAt.Equal(b.UpdatedAt) {
		return false
	}
	a.ApprovedAt, a.RejectedAt, a.RevokedAt, a.VerifiedAt, a.ExpiresAt, a.TunnelPort = nil, nil, nil, nil, nil, nil
	b.ApprovedAt, b.RejectedAt, b.RevokedAt, b.VerifiedAt, b.ExpiresAt, b.TunnelPort = nil, nil, nil, nil, nil, nil
	a.CreatedAt, a.UpdatedAt, b.CreatedAt, b.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b
}

// TestTimeComparisons checks the SQL comparisons of times across a second
// and a day boundary, where variable-width text would sort wrongly.
func TestTimeComparisons(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		base := time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)
		// Expiry at .000000 exactly and at 1µs after it; now at .5 and +1s.
		for i, exp := range []time.Time{base, base.Add(time.Microsecond), base.Add(time.Second)} {
			pc := &enroll.PairingCode{ID: "id" + string(rune('a'+i)), CodeHash: strings.Repeat(string(rune('a'+i)), 64),
				ExpiresAt: exp, CreatedAt: base.Add(-time.Hour)}
			if err := s.InTx(ctx, func(tx enroll.Tx) error { return tx.CreatePairingCode(ctx, pc) }); err != nil {
				t.Fatal(err)
			}
		}
		consume := func(i int, now time.Time) bool {
			var ok bool
			err := s.InTx(ctx, func(tx enroll.Tx) (err error) {
				ok, err = tx.ConsumePairingCode(ctx, strings.Repeat(string(rune('a'+i)), 64), now)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		// expires_at > now: equal means expired.
		if consume(0, base) {
			t.Errorf("code expiring at now was consumed, want expired")
		}
		if !consume(1, base) {
			t.Errorf("code expiring 1µs after now was not consumed")
		}
		if consume(2, base.Add(time.Second)) {
			t.Errorf("code expiring at now (next day) was consumed")
		}
		pc := func(i int) *enroll.PairingCode {
			var out *enroll.PairingCode
			if err := s.InTx(ctx, func(tx enroll.Tx) (err error) {
				out, err = tx.PairingCodeByHash(ctx, strings.Repeat(string(rune('a'+i)), 64))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return out
		}
		if got := pc(1); got.UsedAt == nil || !got.UsedAt.Equal(base) {
			t.Errorf("used_at = %v, want %v", got.UsedAt, base)
		}
		if got := pc(0); got.UsedAt != nil {
			t.Errorf("used_at of the expired code = %v, want nil", got.UsedAt)
		}
	})
}

func TestNotFound(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		_, err := s.GetEnrollment(ctx, "0b9d3c4e-0000-4000-8000-00000000dead")
		if !errors.Is(err, enroll.ErrNotFound) {
			t.Errorf("GetEnrollment(missing) = %v, want ErrNotFound", err)
		}
		wantCode(t, "GetEnrollment(missing)", err, enroll.CodeNotFound)
		err = s.InTx(ctx, func(tx enroll.Tx) error {
			if _, err := tx.GetEnrollment(ctx, "nope"); !errors.Is(err, enroll.ErrNotFound) {
				t.Errorf("tx.GetEnrollment(missing) = %v, want ErrNotFound", err)
			}
			if _, err := tx.GetConnection(ctx, "nope"); !errors.Is(err, enroll.ErrNotFound) {
				t.Errorf("tx.GetConnection(missing) = %v, want ErrNotFound", err)
			}
			if _, err := tx.PairingCodeByHash(ctx, "nope"); !errors.Is(err, enroll.ErrNotFound) {
				t.Errorf("tx.PairingCodeByHash(missing) = %v, want ErrNotFound", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AdminTokenByHash(ctx, "nope"); !errors.Is(err, enroll.ErrNotFound) {
			t.Errorf("AdminTokenByHash(missing) = %v, want ErrNotFound", err)
		}
	})
}

// TestInTxRollsBack checks that an error from fn leaves nothing behind.
func TestInTxRollsBack(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		boom := errors.New("boom")
		err := s.InTx(ctx, func(tx enroll.Tx) error {
			if err := tx.CreatePairingCode(ctx, &enroll.PairingCode{ID: "x", CodeHash: strings.Repeat("b", 64),
				ExpiresAt: time.Now(), CreatedAt: time.Now()}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v, want %v", err, boom)
		}
		if n := count(t, s, "SELECT COUNT(*) FROM vma_pairing_codes"); n != 0 {
			t.Errorf("pairing codes after rollback = %d, want 0", n)
		}
	})
}

// TestInTxRetriesConflicts checks that InTx runs fn again on a transient
// conflict and gives up with a domain error after MaxAttempts.
func TestInTxRetriesConflicts(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		insert := func(tx enroll.Tx, id string) error {
			return tx.CreateAdminToken(ctx, &enroll.AdminToken{Name: id, TokenHash: strings.Repeat("c", 64), CreatedAt: time.Now()})
		}
		if err := s.InTx(ctx, func(tx enroll.Tx) error { return insert(tx, "first") }); err != nil {
			t.Fatal(err)
		}
		// A duplicate token hash violates a unique key on every attempt.
		attempts := 0
		err := s.InTx(ctx, func(tx enroll.Tx) error {
			attempts++
			return insert(tx, "second")
		})
		wantCode(t, "duplicate token hash", err, enroll.CodeConflict)
		want := 1 // SQLite: one writer, so a unique violation is no race
		if s.dialect == dialectMySQL {
			want = s.opts.MaxAttempts
		}
		if attempts != want {
			t.Errorf("attempts = %d, want %d", attempts, want)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, "postgres", "x", Options{}); err == nil || !strings.Contains(err.Error(), "unknown database driver") {
		t.Errorf("Open(postgres) = %v, want unknown driver", err)
	}
	// Nothing listens on port 1: the database is unavailable (503), not an
	// internal error.
	_, err := Open(ctx, DriverMySQL, "root@tcp(127.0.0.1:1)/oma?timeout=2s", Options{})
	wantCode(t, "Open(mysql, closed port)", err, enroll.CodeUnavailable)
	_, _, err = MigrateStatus(ctx, DriverMySQL, "root@tcp(127.0.0.1:1)/oma?timeout=2s")
	wantCode(t, "MigrateStatus(mysql, closed port)", err, enroll.CodeUnavailable)
	if _, err := Open(ctx, DriverMySQL, "root@tcp(127.0.0.1:1)/", Options{}); err == nil || !strings.Contains(err.Error(), "no database name") {
		t.Errorf("Open(mysql without database) = %v, want 'no database name'", err)
	}
	if _, err := Open(ctx, DriverSQLite, filepath.Join(t.TempDir(), "missing", "dir", "oma.db"), Options{}); err == nil {
		t.Errorf("Open(sqlite in a missing directory) = nil, want an error")
	}
}

// TestUnavailableWhenServerGone checks that every kind of call reports
// "unavailable" (503) when the MariaDB server cannot be reached any more:
// the store talks to it through a TCP proxy that the test shuts down.
func TestUnavailableWhenServerGone(t *testing.T) {
	dsn := newDatabase(t, DriverMySQL, true)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, cfg.Addr)
	cfg.Addr = p.addr()
	cfg.Timeout = 2 * time.Second
	s := mustOpenDSN(t, DriverMySQL, cfg.FormatDSN())
	svc, _ := newService(t, s)
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping through the proxy: %v", err)
	}
	p.close()
	checks := []struct {
		name string
		call func() error
	}{
		{"Ping", func() error { return s.Ping(ctx) }},
		{"GetEnrollment", func() error {
			_, err := s.GetEnrollment(ctx, "0b9d3c4e-0000-4000-8000-000000000001")
			return err
		}},
		{"ListAudit", func() error { _, err := s.ListAudit(ctx, enroll.AuditFilter{}); return err }},
		{"CreatePairingCode", func() error { _, err := svc.CreatePairingCode(ctx, 0, "", admin); return err }},
		{"TouchAdminToken", func() error { return s.TouchAdminToken(ctx, "x", time.Now()) }},
		{"MigrateUp", func() error { return MigrateUp(ctx, DriverMySQL, cfg.FormatDSN()) }},
	}
	for _, c := range checks {
		wantCode(t, c.name+" with the server gone", c.call(), enroll.CodeUnavailable)
	}
}

// proxy forwards TCP connections to a target until closed.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	t.Cleanup(p.close)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func TestSQLiteDSN(t *testing.T) {
	for _, tc := range []struct {
		in          string
		writer      bool
		wantPrefix  string
		wantContain []string
		wantLacks   []string
	}{
		{in: "/var/lib/oma/oma.db", writer: true, wantPrefix: "file:/var/lib/oma/oma.db?",
			wantContain: []string{"_txlock=immediate", "journal_mode%28WAL%29", "busy_timeout%2810000%29", "foreign_keys%281%29", "synchronous%28NORMAL%29"}},
		{in: "rel/oma.db", writer: false, wantPrefix: "file:rel/oma.db?",
			wantContain: []string{"query_only%281%29", "busy_timeout%2810000%29"}, wantLacks: []string{"_txlock", "journal_mode"}},
		{in: "/tmp/a?b#c%d.db", writer: true, wantPrefix: "file:/tmp/a%3fb%23c%25d.db?"},
		{in: "file:/x/oma.db?_pragma=busy_timeout(50)&mode=rwc", writer: true, wantPrefix: "file:/x/oma.db?",
			wantContain: []string{"busy_timeout%2850%29", "mode=rwc", "_txlock=immediate"}, wantLacks: []string{"busy_timeout%2810000%29"}},
		{in: "file:/x/oma.db?_txlock=deferred", writer: true, wantContain: []string{"_txlock=immediate"}, wantLacks: []string{"deferred"}},
	} {
		got, err := sqliteDSN(tc.in, 10*time.Second, tc.writer)
		if err != nil {
			t.Errorf("sqliteDSN(%q): %v", tc.in, err)
			continue
		}
		if !strings.HasPrefix(got, tc.wantPrefix) {
			t.Errorf("sqliteDSN(%q) = %q, want prefix %q", tc.in, got, tc.wantPrefix)
		}
		for _, w := range tc.wantContain {
			if !strings.Contains(got, w) {
				t.Errorf("sqliteDSN(%q) = %q, want it to contain %q", tc.in, got, w)
			}
		}
		for _, w := range tc.wantLacks {
			if strings.Contains(got, w) {
				t.Errorf("sqliteDSN(%q) = %q, want it without %q", tc.in, got, w)
			}
		}
	}
	if _, err := sqliteDSN("", time.Second, true); err == nil {
		t.Errorf("sqliteDSN(\"\") = nil error, want one")
	}
}

// TestSQLitePragmas checks the pragmas on real connections, and that a
// path with URI syntax characters names that file.
func TestSQLitePragmas(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "odd ?#% name.db")
	if err := MigrateUp(context.Background(), DriverSQLite, path); err != nil {
		t.Fatal(err)
	}
	s := mustOpenDSN(t, DriverSQLite, path)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		db     string
		pragma string
		want   string
	}{
		{"writer", "journal_mode", "wal"},
		{"writer", "foreign_keys", "1"},
		{"writer", "synchronous", "1"},
		{"writer", "busy_timeout", "10000"},
		{"reader", "query_only", "1"},
		{"reader", "foreign_keys", "1"},
		{"reader", "busy_timeout", "10000"},
	} {
		db := s.w
		if tc.db == "reader" {
			db = s.r
		}
		var got string
		if err := db.GetContext(ctx, &got, "PRAGMA "+tc.pragma); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s: PRAGMA %s = %q, want %q", tc.db, tc.pragma, got, tc.want)
		}
	}
	if s.w.Stats().MaxOpenConnections != 1 {
		t.Errorf("writer MaxOpenConnections = %d, want 1", s.w.Stats().MaxOpenConnections)
	}
	// The read pool cannot write.
	if _, err := s.r.ExecContext(ctx, "DELETE FROM admin_tokens"); err == nil {
		t.Errorf("write through the read pool succeeded, want query_only to refuse it")
	}
}
