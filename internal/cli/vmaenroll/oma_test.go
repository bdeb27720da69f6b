package vmaenroll

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/server"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/store"
)

// testOMA is a real oma-server in-process: the real handlers, the real
// enrollment service and a real SQLite store, listening on 127.0.0.1.
// vma-enroll talks to its public listener over TLS like in production.
type testOMA struct {
	t       *testing.T
	db      *store.DB
	svc     *enroll.Service
	dataDir string
	hostKey string

	mu      sync.Mutex
	srv     *server.Server
	cancel  context.CancelFunc
	stopped chan struct{}
	admin   string // host:port of the admin listener
	public  string // host:port of the public listener
	fp      string // SPKI fingerprint of the public certificate
}

// omaOptions tune the server of one test.
type omaOptions struct {
	approvalWindow time.Duration // enroll.Config.ApprovalWindow (30m)
}

var auditKey = bytes.Repeat([]byte{5}, 32)

// startOMA migrates a fresh SQLite database and starts a server on it.
func startOMA(t *testing.T, opts omaOptions) *testOMA {
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
	o := &testOMA{
		t:       t,
		db:      db,
		svc:     enroll.New(db, enroll.Config{PollInterval: 20 * time.Millisecond, ApprovalWindow: opts.approvalWindow}, auditKey, nil),
		dataDir: dir,
		hostKey: sshkey.AuthorizedKey(pub, "oma-test"),
	}
	o.start("127.0.0.1:0", "127.0.0.1:0")
	t.Cleanup(o.stop)
	return o
}

// start runs a server on the given addresses over the test's store; the
// certificate is made once in the data directory, so a restarted server
// has the same fingerprint.
func (o *testOMA) start(admin, public string) {
	t := o.t
	t.Helper()
	cert, err := server.LoadOrCreateCertificate("", "", o.dataDir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{
		AdminListen: admin, PublicListen: public, PublicHost: "127.0.0.1", TLS: cert,
		Tunnel:        server.TunnelConfig{HostKey: o.hostKey},
		RatePerSecond: 1000, RateBurst: 1000, CodeFailuresPerMinute: 6000, CodeFailureBurst: 1000,
		ExpireEvery: 100 * time.Millisecond,
	}, o.svc, o.db, nil)
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

// stop shuts the server down (in-flight long polls return) and waits.
func (o *testOMA) stop() {
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

// restart stops the server and starts a new one on the same addresses,
// store and certificate, after pause.
func (o *testOMA) restart(pause time.Duration) {
	o.t.Helper()
	o.stop()
	time.Sleep(pause)
	o.start(o.admin, o.public)
}

// code issues a pairing code.
func (o *testOMA) code() string {
	o.t.Helper()
	pc, err := o.svc.CreatePairingCode(context.Background(), 0, "", enroll.Meta{Actor: "admin"})
	if err != nil {
		o.t.Fatalf("pairing code: %v", err)
	}
	return pc.Code.Reveal()
}

// enrollments lists every enrollment the server knows.
func (o *testOMA) enrollments() []enroll.Enrollment {
	o.t.Helper()
	list, err := o.svc.Enrollments(context.Background(), enroll.EnrollmentFilter{})
	if err != nil {
		o.t.Fatal(err)
	}
	return list
}

// events lists the audit events of type typ.
func (o *testOMA) events(typ enroll.EventType) []enroll.AuditEvent {
	o.t.Helper()
	evs, err := o.svc.Audit(context.Background(), enroll.AuditFilter{EventType: typ, Limit: enroll.MaxAuditLimit})
	if err != nil {
		o.t.Fatal(err)
	}
	return evs
}

// decideWhenWaiting approves or rejects the first enrollment that awaits
// approval, as soon as there is one, the way an admin would with omactl.
func (o *testOMA) decideWhenWaiting(decision, reason string) {
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(done)
		ctx := context.Background()
		meta := enroll.Meta{Actor: "admin", SourceIP: "127.0.0.1"}
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			pending, err := o.svc.Pending(ctx)
			if err != nil {
				errc <- err
				return
			}
			if len(pending) > 0 {
				id := pending[0].ID
				switch decision {
				case "approve":
					_, err = o.svc.Approve(ctx, id, "", meta)
				case "reject":
					_, err = o.svc.Reject(ctx, id, reason, meta)
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

// hostPort splits an address into host and port strings.
func hostPort(addr string) (string, string) {
	i := strings.LastIndex(addr, ":")
	return addr[:i], addr[i+1:]
}
