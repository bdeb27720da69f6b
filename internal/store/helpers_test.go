package store

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/testdb"
)

var drivers = []string{DriverSQLite, DriverMySQL}

// forEachStore runs fn as a subtest on a fresh, migrated store of each
// dialect.
func forEachStore(t *testing.T, fn func(t *testing.T, s *DB)) {
	t.Helper()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			fn(t, mustOpen(t, driver))
		})
	}
}

// forEachDriver is forEachStore for tests that open stores themselves: fn
// gets the driver and the DSN of a fresh database (migrated when migrated is
// true).
func forEachDriver(t *testing.T, migrated bool, fn func(t *testing.T, driver, dsn string)) {
	t.Helper()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			fn(t, driver, newDatabase(t, driver, migrated))
		})
	}
}

// mustOpen opens a store on a fresh, migrated database: a temporary SQLite
// file, or a uniquely named database on the server of OMA_TEST_MYSQL_DSN
// (dropped when the test ends). Without OMA_TEST_MYSQL_DSN MySQL tests skip.
func mustOpen(t testing.TB, driver string) *DB {
	t.Helper()
	return mustOpenDSN(t, driver, newDatabase(t, driver, true))
}

// mustOpenDSN opens one more store on an existing database.
func mustOpenDSN(t testing.TB, driver, dsn string) *DB {
	t.Helper()
	opts := Options{}
	if driver == DriverMySQL {
		opts.MaxOpenConns = 16 // stay well below max_connections with parallel tests
	}
	s, err := Open(context.Background(), driver, dsn, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", driver, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// newDatabase creates an empty database and returns its DSN.
func newDatabase(t testing.TB, driver string, migrated bool) string {
	t.Helper()
	var dsn string
	switch driver {
	case DriverSQLite:
		dsn = filepath.Join(t.TempDir(), "oma.db")
	case DriverMySQL:
		dsn = testdb.MySQL(t)
	default:
		t.Fatalf("unknown driver %q", driver)
	}
	if migrated {
		if err := MigrateUp(context.Background(), driver, dsn); err != nil {
			t.Fatalf("MigrateUp(%s): %v", driver, err)
		}
	}
	return dsn
}

// clock is the fake clock tests inject as Service.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var testAuditKey = []byte("0123456789abcdef0123456789abcdef")

// newService returns the real domain service over s, with a fake clock
// starting at a fixed time with a non-zero microsecond part.
func newService(t testing.TB, s enroll.Store) (*enroll.Service, *clock) {
	t.Helper()
	clk := &clock{now: time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)}
	svc := enroll.New(s, enroll.Config{}, testAuditKey, nil)
	svc.Now = clk.Now
	return svc, clk
}

var (
	admin = enroll.Meta{SourceIP: "127.0.0.1", UserAgent: "omactl/test", Actor: "alice"}
	vmaIP = enroll.Meta{SourceIP: "198.51.100.7", UserAgent: "vma-enroll/test"}
)

// vma is one test appliance: its key and, once enrolled, its enrollment.
type vma struct {
	name      string
	pub       ed25519.PublicKey
	priv      ed25519.PrivateKey
	id        string
	challenge []byte
	token     string
}

func newVMA(t testing.TB, name string) *vma {
	t.Helper()
	pub, priv, err := sshkey.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &vma{name: name, pub: pub, priv: priv}
}

func (v *vma) request(code string) enroll.EnrollRequest {
	return enroll.EnrollRequest{PairingCode: code, PublicKey: sshkey.AuthorizedKey(v.pub, "root@"+v.name), Name: v.name, Version: "1.2.3"}
}

func (v *vma) sign() []byte { return enroll.SignChallenge(v.priv, v.id, v.challenge) }

// newCode issues a pairing code with the default lifetime.
func newCode(t testing.TB, svc *enroll.Service) string {
	t.Helper()
	code, err := svc.CreatePairingCode(context.Background(), 0, "test", admin)
	if err != nil {
		t.Fatalf("CreatePairingCode: %v", err)
	}
	return code.Code.Reveal()
}

// enrolled returns a VMA called name whose enrollment is pending verification.
func enrolled(t testing.TB, svc *enroll.Service, name string) *vma {
	t.Helper()
	v := newVMA(t, name)
	res, err := svc.Enroll(context.Background(), v.request(newCode(t, svc)), vmaIP)
	if err != nil {
		t.Fatalf("Enroll(%s): %v", name, err)
	}
	v.id, v.challenge = res.EnrollmentID, res.Challenge
	return v
}

// verified returns a VMA whose enrollment awaits approval.
func verified(t testing.TB, svc *enroll.Service, name string) *vma {
	t.Helper()
	v := enrolled(t, svc, name)
	out, err := svc.Verify(context.Background(), v.id, v.sign(), vmaIP)
	if err != nil {
		t.Fatalf("Verify(%s): %v", name, err)
	}
	v.token = out.PollToken.Reveal()
	return v
}

// approved returns a VMA whose enrollment is approved.
func approved(t testing.TB, svc *enroll.Service, name string) *vma {
	t.Helper()
	v := verified(t, svc, name)
	if _, err := svc.Approve(context.Background(), v.id, "ok", admin); err != nil {
		t.Fatalf("Approve(%s): %v", name, err)
	}
	return v
}

func mustGet(t testing.TB, s enroll.Store, id string) *enroll.Enrollment {
	t.Helper()
	e, err := s.GetEnrollment(context.Background(), id)
	if err != nil {
		t.Fatalf("GetEnrollment(%s): %v", id, err)
	}
	return e
}

func wantStatus(t testing.TB, s enroll.Store, id string, want enroll.Status) {
	t.Helper()
	if got := mustGet(t, s, id).Status; got != want {
		t.Fatalf("status of %s = %q, want %q", id, got, want)
	}
}

func wantCode(t testing.TB, what string, err error, want enroll.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: err = nil, want code %q", what, want)
	}
	if got := enroll.ErrorCode(err); got != want {
		t.Fatalf("%s: error code = %q (%v), want %q", what, got, err, want)
	}
}

// exec runs raw SQL against the store's database, as an attacker or an
// operator with database access would.
func exec(t testing.TB, s *DB, query string, args ...any) int64 {
	t.Helper()
	res, err := s.w.ExecContext(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("exec %q: %v", query, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func count(t testing.TB, s *DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.r.GetContext(context.Background(), &n, query, args...); err != nil {
		t.Fatalf("query %q: %v", query, err)
	}
	return n
}

func auditEvents(t testing.TB, s enroll.Store, f enroll.AuditFilter) []enroll.AuditEvent {
	t.Helper()
	evs, err := s.ListAudit(context.Background(), f)
	if err != nil {
		t.Fatalf("ListAudit(%+v): %v", f, err)
	}
	return evs
}

func wantChainOK(t testing.TB, svc *enroll.Service) *enroll.ChainReport {
	t.Helper()
	rep, err := svc.VerifyAudit(context.Background())
	if err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	if !rep.OK {
		t.Fatalf("VerifyAudit: chain broken at %d: %s", rep.Break.ID, rep.Break.Reason)
	}
	return rep
}

func ptr[T any](v T) *T { return &v }

func fmtPort(p *int) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}
