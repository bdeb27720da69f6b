// Package omatest starts a real oma-server in-process for the tests of the
// command-line programs: the real handlers, the real enrollment service and
// a real SQLite store, listening on 127.0.0.1 (STYLE.md 24). Only tests
// import it; no binary links it.
package omatest

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/server"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/store"
)

// Options tune the server of one test. Zero values take the defaults.
type Options struct {
	// ApprovalWindow is how long a verified enrollment may wait for
	// approval before it expires (30m).
	ApprovalWindow time.Duration
}

// OMA is a running oma-server over its own SQLite store.
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

	mu      sync.Mutex
	srv     *server.Server
	cancel  context.CancelFunc
	stopped chan struct{}
	admin   string
	public  string
	fp      string
}

var auditKey = bytes.Repeat([]byte{5}, 32)

// Start migrates a fresh SQLite database and starts a server on it; the
// server stops when the test ends.
func Start(t testing.TB, opts Options) *OMA {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	dsn := filepath.Join(dir, "oma.db")
	if err := store.MigrateUp(ctx, store.DriverSQLite, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	db, err := store.Open(ctx, store.DriverSQLite, dsn, store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	pub, _, err := sshkey.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	o := &OMA{
		t:       t,
		DB:      db,
		Svc:     enroll.New(db, enroll.Config{PollInterval: 20 * time.Millisecond, ApprovalWindow: opts.ApprovalWindow}, auditKey, nil),
		DataDir: dir,
		HostKey: sshkey.AuthorizedKey(pub, "oma-test"),
	}
	tok, err := o.Svc.CreateAdminToken(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	o.Token = tok.Reveal()
	o.start("127.0.0.1:0", "127.0.0.1:0")
	t.Cleanup(o.Stop)
	return o
}

// Admin is the admin listener's address, host:port.
func (o *OMA) Admin() string { o.mu.Lock(); defer o.mu.Unlock(); return o.admin }

// AdminURL is the admin listener's base URL, for omactl --server.
func (o *OMA) AdminURL() string { return "http://" + o.Admin() }

// Public is the public (TLS) listener's address, host:port, for vma-enroll --oma.
func (o *OMA) Public() string { o.mu.Lock(); defer o.mu.Unlock(); return o.public }

// Fingerprint is the SPKI fingerprint of the public certificate.
func (o *OMA) Fingerprint() string { o.mu.Lock(); defer o.mu.Unlock(); return o.fp }

// start runs a server on the given addresses over the store; the
// certificate is made once in the data directory, so a restarted server
// keeps its fingerprint.
func (o *OMA) start(admin, public string) {
	t := o.t
	t.Helper()
	cert, err := server.LoadOrCreateCertificate("", "", o.DataDir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{
		AdminListen: admin, PublicListen: public, PublicHost: "127.0.0.1", TLS: cert,
		Tunnel:        server.TunnelConfig{HostKey: o.HostKey},
		RatePerSecond: 1000, RateBurst: 1000, CodeFailuresPerMinute: 6000, CodeFailureBurst: 1000,
		ExpireEvery: 100 * time.Millisecond,
	}, o.Svc, o.DB, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	runErr := make(chan error, 1)
	go func() {
		defer close(stopped)
		runErr <- srv.Run(ctx, nil)
	}()
	select {
	case <-srv.Ready():
	case <-stopped:
		cancel()
		t.Fatalf("oma-server did not start: %v", <-runErr)
	}
	o.mu.Lock()
	o.srv, o.cancel, o.stopped = srv, cancel, stopped
	o.admin, o.public, o.fp = srv.AdminAddr(), srv.PublicAddr(), srv.Fingerprint()
	o.mu.Unlock()
}

// Stop shuts the server down (in-flight long polls return) and waits.
func (o *OMA) Stop() {
	o.mu.Lock()
	cancel, stopped := o.cancel, o.stopped
	o.cancel = nil
	o.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-stopped
}

// Restart stops the server and, after pause, starts a new one on the same
// addresses, store and certificate.
func (o *OMA) Restart(pause time.Duration) {
	o.t.Helper()
	o.Stop()
	time.Sleep(pause)
	o.start(o.Admin(), o.Public())
}

var adminMeta = enroll.Meta{Actor: "admin", SourceIP: "127.0.0.1"}

// Code issues a pairing code.
func (o *OMA) Code() string {
	o.t.Helper()
	pc, err := o.Svc.CreatePairingCode(context.Background(), 0, "", adminMeta)
	if err != nil {
		o.t.Fatalf("pairing code: %v", err)
	}
	return pc.Code.Reveal()
}

// Enroll enrolls and verifies a VMA named name through the service, the
// way vma-enroll would, and returns the enrollment id: it then awaits
// approval.
func (o *OMA) Enroll(name string) string {
	o.t.Helper()
	ctx := context.Background()
	pub, priv, err := sshkey.Generate(nil)
	if err != nil {
		o.t.Fatal(err)
	}
	vma := enroll.Meta{SourceIP: "192.0.2.10", UserAgent: "vma-enroll/test"}
	er, err := o.Svc.Enroll(ctx, enroll.EnrollRequest{PairingCode: o.Code(), PublicKey: sshkey.AuthorizedKey(pub, ""), Name: name, Version: "2.4.1"}, vma)
	if err != nil {
		o.t.Fatalf("enroll %s: %v", name, err)
	}
	if _, err := o.Svc.Verify(ctx, er.EnrollmentID, enroll.SignChallenge(priv, er.EnrollmentID, er.Challenge), vma); err != nil {
		o.t.Fatalf("verify %s: %v", name, err)
	}
	return er.EnrollmentID
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
