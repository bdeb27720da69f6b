// Package omatest starts a real oma-server in-process for the tests of the
// command-line programs: the same internal/app App that `oma-server serve`
// runs (real handlers, the real enrollment service, a real SQLite store),
// listening on 127.0.0.1 (docs/design.md §9); and it opens migrated stores
// for the tests that build their own server. Only tests import it; no
// binary links it.
package omatest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/app"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/store"
	"github.com/oma-enroll/oma-enroll/internal/testdb"
)

// Options tune the server of one test. Zero values take the defaults.
type Options struct {
	// ApprovalWindow is how long a verified enrollment may wait for
	// approval before it expires (30m).
	ApprovalWindow time.Duration
	// Now is the service's clock (time.Now when nil). With a clock the
	// test sets (see Clock), every time the server stores is known in
	// advance.
	Now func() time.Time
	// Rand is the service's randomness (crypto/rand when nil). With a
	// seeded source (see SeededRand) the enrollment ids, pairing codes
	// and tokens are the same on every run. Start serialises its reads.
	Rand io.Reader
	// TunnelMode is the App's tunnel driver: "embedded" runs the
	// embedded SSH endpoint on the public port (the admin health reports
	// it, and the test may drive the tunnel state through Svc too:
	// TunnelConnected and so on); "" or "none" runs none, and approved
	// VMAs are told to pin HostKey, a key of the test's own.
	TunnelMode string
	// KeyPolicy is the service's key expiry policy (off when zero).
	KeyPolicy enroll.KeyPolicy
}

// Clock is a clock a test sets and a server reads, for Options.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the time the clock was last set to.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// SeededRand returns a deterministic randomness source for Options.Rand:
// the ChaCha8 stream keyed by seed (its first 32 bytes).
func SeededRand(seed string) io.Reader {
	var s [32]byte
	copy(s[:], seed)
	return rand.NewChaCha8(s)
}

// lockedReader serialises the reads of a source that is not safe for
// concurrent use.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// OMA is a running oma-server over its own SQLite store. DB and Svc are
// the running App's; a Restart replaces them.
type OMA struct {
	t       testing.TB
	DB      *store.DB
	Svc     *enroll.Service
	DataDir string
	// HostKey is the SSH host key (authorized_keys line) approved VMAs are
	// told to pin.
	HostKey string
	// Token is an admin token named "admin".
	Token string

	opts Options

	mu     sync.Mutex
	raw    *sql.DB
	app    *app.App
	admin  string
	public string
	fp     string
}

var auditKey = bytes.Repeat([]byte{5}, 32)

// Start starts an App on a fresh SQLite database (migrated by the App);
// it stops when the test ends.
func Start(t testing.TB, opts Options) *OMA {
	t.Helper()
	o := &OMA{t: t, DataDir: t.TempDir(), opts: opts}
	if opts.Rand != nil {
		o.opts.Rand = &lockedReader{r: opts.Rand}
	}
	if opts.TunnelMode != "embedded" {
		pub, _, err := sshkey.Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		o.HostKey = sshkey.AuthorizedKey(pub, "oma-test")
	}
	t.Cleanup(o.Stop)
	a := o.newApp("127.0.0.1:0", "127.0.0.1:0")
	o.Token = FixtureAdminToken(t, a.Service(), "admin")
	o.run(a)
	return o
}

// FixtureAdminToken stores an admin token called name straight into the
// service's store (drawing on its randomness) and returns it. It is a test
// fixture: unlike Service.CreateAdminToken it writes no audit event, so tests
// see the audit trail their own steps make.
func FixtureAdminToken(t testing.TB, svc *enroll.Service, name string) string {
	t.Helper()
	var rnd io.Reader = crand.Reader
	if svc.Rand != nil {
		rnd = svc.Rand
	}
	tok, err := enroll.NewToken(rnd, "oma_")
	if err != nil {
		t.Fatal(err)
	}
	err = svc.Store.InTx(context.Background(), func(tx enroll.Tx) error {
		return tx.CreateAdminToken(context.Background(), &enroll.AdminToken{Name: name, TokenHash: enroll.HashSecret(tok), CreatedAt: time.Now().UTC()})
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// OpenStore opens a migrated store on a fresh database of driver (see
// testdb.DSN), closed when the test ends, and returns it with its DSN.
func OpenStore(t testing.TB, driver string) (*store.DB, string) {
	t.Helper()
	dsn := testdb.DSN(t, driver)
	return Store(t, driver, dsn), dsn
}

// Store migrates the database of driver at dsn and opens a store on it,
// closed when the test ends.
func Store(t testing.TB, driver, dsn string) *store.DB {
	t.Helper()
	ctx := context.Background()
	if err := store.MigrateUp(ctx, driver, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	db, err := store.Open(ctx, driver, dsn, store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Admin is the admin listener's address, host:port.
func (o *OMA) Admin() string { o.mu.Lock(); defer o.mu.Unlock(); return o.admin }

// AdminURL is the admin listener's base URL, for omactl --server.
func (o *OMA) AdminURL() string { return "http://" + o.Admin() }

// Public is the public (TLS) listener's address, host:port, for vma-enroll --oma.
func (o *OMA) Public() string { o.mu.Lock(); defer o.mu.Unlock(); return o.public }

// Fingerprint is the SPKI fingerprint of the public certificate.
func (o *OMA) Fingerprint() string { o.mu.Lock(); defer o.mu.Unlock(); return o.fp }

// newApp builds the App on the given addresses over the data directory:
// the database, certificate and host key are made there once, so a
// restarted App keeps them (and its fingerprint). DB and Svc become the
// new App's.
func (o *OMA) newApp(admin, public string) *app.App {
	t := o.t
	t.Helper()
	a, err := app.New(context.Background(), app.Config{
		DataDir: o.DataDir, Driver: store.DriverSQLite, DSN: filepath.Join(o.DataDir, "oma.db"),
		AuditKey: auditKey, SkipFirstAdminToken: true,
		Service: enroll.Config{PollInterval: 20 * time.Millisecond, ApprovalWindow: o.opts.ApprovalWindow, KeyPolicy: o.opts.KeyPolicy},
		Now:     o.opts.Now, Rand: o.opts.Rand,
		AdminListen: admin, PublicListen: public, PublicHost: "127.0.0.1",
		RatePerSecond: 1000, RateBurst: 1000, CodeFailuresPerMinute: 6000, CodeFailureBurst: 1000,
		ExpireEvery: 100 * time.Millisecond,
		Tunnel:      app.TunnelConfig{Mode: o.opts.TunnelMode, HostKey: o.HostKey},
	})
	if err != nil {
		t.Fatalf("oma-server: %v", err)
	}
	o.mu.Lock()
	o.app, o.DB, o.Svc = a, a.Store(), a.Service()
	o.mu.Unlock()
	if o.opts.TunnelMode == "embedded" {
		o.HostKey = a.HostKey()
	}
	return a
}

// run runs a until Stop and waits until it listens.
func (o *OMA) run(a *app.App) {
	t := o.t
	t.Helper()
	stopped := make(chan struct{})
	runErr := make(chan error, 1)
	go func() {
		defer close(stopped)
		runErr <- a.Run(context.Background())
	}()
	select {
	case <-a.Ready():
	case <-stopped:
		a.Close()
		t.Fatalf("oma-server did not start: %v", <-runErr)
	}
	o.mu.Lock()
	o.admin, o.public, o.fp = a.AdminAddr(), a.PublicAddr(), a.Fingerprint()
	o.mu.Unlock()
}

// Stop shuts the server down (in-flight long polls return), waits, and
// closes its store.
func (o *OMA) Stop() {
	o.mu.Lock()
	a := o.app
	o.app = nil
	o.mu.Unlock()
	if a == nil {
		return
	}
	if err := a.Close(); err != nil {
		o.t.Errorf("oma-server close: %v", err)
	}
}

// Restart stops the server and, after pause, starts a new App on the same
// addresses, data directory and store.
func (o *OMA) Restart(pause time.Duration) {
	o.t.Helper()
	o.Stop()
	time.Sleep(pause)
	o.run(o.newApp(o.Admin(), o.Public()))
}

var adminMeta = enroll.Meta{Actor: "admin", SourceIP: "127.0.0.1"}

// Code issues a pairing code.
func (o *OMA) Code() string {
	o.t.Helper()
	return code(o.t, o.Svc)
}

// code issues a pairing code on svc as the admin.
func code(t testing.TB, svc *enroll.Service) string {
	t.Helper()
	pc, err := svc.CreatePairingCode(context.Background(), 0, "", adminMeta)
	if err != nil {
		t.Fatalf("pairing code: %v", err)
	}
	return pc.Code.Reveal()
}

// VMA is an enrolling VMA, for StartEnroll. Zero fields take defaults.
type VMA struct {
	Name      string
	Version   string             // 2.4.1
	SourceIP  string             // 192.0.2.10
	UserAgent string             // vma-enroll/test
	Key       ed25519.PrivateKey // a new key
}

// Enrolling is a VMA that enrolled with a pairing code and has yet to
// prove that it holds its key.
type Enrolling struct {
	t         testing.TB
	svc       *enroll.Service
	ID        string
	meta      enroll.Meta
	key       ed25519.PrivateKey
	challenge []byte
}

// StartEnroll enrolls v with a new pairing code through the service, the
// way vma-enroll would; Verify then answers the challenge.
func (o *OMA) StartEnroll(v VMA) *Enrolling {
	o.t.Helper()
	return StartEnroll(o.t, o.Svc, v)
}

// StartEnroll enrolls v with a new pairing code through svc (a service
// the test built itself), the way vma-enroll would; Verify then answers
// the challenge.
func StartEnroll(t testing.TB, svc *enroll.Service, v VMA) *Enrolling {
	t.Helper()
	if v.Version == "" {
		v.Version = "2.4.1"
	}
	if v.SourceIP == "" {
		v.SourceIP = "192.0.2.10"
	}
	if v.UserAgent == "" {
		v.UserAgent = "vma-enroll/test"
	}
	if v.Key == nil {
		_, priv, err := sshkey.Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		v.Key = priv
	}
	pub := v.Key.Public().(ed25519.PublicKey)
	meta := enroll.Meta{SourceIP: v.SourceIP, UserAgent: v.UserAgent}
	er, err := svc.Enroll(context.Background(), enroll.EnrollRequest{PairingCode: code(t, svc), PublicKey: sshkey.AuthorizedKey(pub, ""), Name: v.Name, Version: v.Version}, meta)
	if err != nil {
		t.Fatalf("enroll %s: %v", v.Name, err)
	}
	return &Enrolling{t: t, svc: svc, ID: er.EnrollmentID, meta: meta, key: v.Key, challenge: er.Challenge}
}

// Verify signs the challenge: the enrollment then awaits approval. It
// returns the enrollment id.
func (e *Enrolling) Verify() string {
	e.t.Helper()
	if _, err := e.svc.Verify(context.Background(), e.ID, enroll.SignChallenge(e.key, e.ID, e.challenge), e.meta); err != nil {
		e.t.Fatalf("verify %s: %v", e.ID, err)
	}
	return e.ID
}

// EnrollApproved runs v through enroll and verify on svc and approves it
// as the admin, as vma-enroll and omactl approve would, and returns the
// approved enrollment.
func EnrollApproved(t testing.TB, svc *enroll.Service, v VMA) *enroll.Enrollment {
	t.Helper()
	id := StartEnroll(t, svc, v).Verify()
	e, err := svc.Approve(context.Background(), id, "", adminMeta)
	if err != nil {
		t.Fatalf("approve %s: %v", id, err)
	}
	return e
}

// Enroll enrolls and verifies a VMA named name through the service, the
// way vma-enroll would, and returns the enrollment id: it then awaits
// approval.
func (o *OMA) Enroll(name string) string {
	o.t.Helper()
	return o.StartEnroll(VMA{Name: name}).Verify()
}

// Exec runs a statement on the server's database behind its back, as
// someone with write access to the file could (to tamper with the audit
// trail, or to store what the server would refuse), and returns the
// number of rows it changed.
func (o *OMA) Exec(query string, args ...any) int64 {
	o.t.Helper()
	o.mu.Lock()
	if o.raw == nil {
		raw, err := sql.Open("sqlite", "file:"+filepath.Join(o.DataDir, "oma.db")+"?_pragma=busy_timeout(10000)")
		if err != nil {
			o.mu.Unlock()
			o.t.Fatal(err)
		}
		o.raw = raw
		o.t.Cleanup(func() { raw.Close() })
	}
	raw := o.raw
	o.mu.Unlock()
	res, err := raw.Exec(query, args...)
	if err != nil {
		o.t.Fatalf("exec %q: %v", query, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		o.t.Fatal(err)
	}
	return n
}

// Approve approves an enrollment as the admin.
func (o *OMA) Approve(id string) {
	o.t.Helper()
	if _, err := o.Svc.Approve(context.Background(), id, "", adminMeta); err != nil {
		o.t.Fatalf("approve %s: %v", id, err)
	}
}

// Enrollments lists every enrollment the server knows.
func (o *OMA) Enrollments() []enroll.Enrollment {
	o.t.Helper()
	list, err := o.Svc.Enrollments(context.Background(), enroll.EnrollmentFilter{})
	if err != nil {
		o.t.Fatal(err)
	}
	return list
}

// Events lists the audit events of type typ (all types when empty).
func (o *OMA) Events(typ enroll.EventType) []enroll.AuditEvent {
	o.t.Helper()
	evs, err := o.Svc.Audit(context.Background(), enroll.AuditFilter{EventType: typ, Limit: enroll.MaxAuditLimit})
	if err != nil {
		o.t.Fatal(err)
	}
	return evs
}

// DecideWhenWaiting approves ("approve") or rejects ("reject", with
// reason) the first enrollment that awaits approval, as soon as there is
// one, the way an admin would with omactl. A failure fails the test when
// it ends.
func (o *OMA) DecideWhenWaiting(decision, reason string) {
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(done)
		ctx := context.Background()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			pending, err := o.Svc.Pending(ctx)
			if err != nil {
				errc <- err
				return
			}
			if len(pending) > 0 {
				id := pending[0].ID
				switch decision {
				case "approve":
					_, err = o.Svc.Approve(ctx, id, "", adminMeta)
				case "reject":
					_, err = o.Svc.Reject(ctx, id, reason, adminMeta)
				default:
					err = fmt.Errorf("unknown decision %q", decision)
				}
				errc <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		errc <- fmt.Errorf("no enrollment awaited approval within 20s")
	}()
	o.t.Cleanup(func() {
		<-done
		if err := <-errc; err != nil {
			o.t.Errorf("%s: %v", decision, err)
		}
	})
}
