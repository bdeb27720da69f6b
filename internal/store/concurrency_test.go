package store

import (
	"context"
	"sort"
	"sync"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// raceEnroll has n goroutines enroll with one code, spread over the given
// services, and checks that exactly one wins and every other one gets
// pairing_code_rejected (reason "used" in the audit).
func raceEnroll(t *testing.T, n int, services ...*enroll.Service) {
	t.Helper()
	ctx := context.Background()
	code := newCode(t, services[0])
	vmas := make([]*vma, n)
	for i := range vmas {
		vmas[i] = newVMA(t, "racer")
	}
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = services[i%len(services)].Enroll(ctx, vmas[i].request(code), vmaIP)
		}()
	}
	close(start)
	wg.Wait()
	wins, rejected := 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case enroll.ErrorCode(err) == enroll.CodePairingCodeRejected:
			rejected++
		default:
			t.Errorf("goroutine %d: %v (code %s), want success or pairing_code_rejected", i, err, enroll.ErrorCode(err))
		}
	}
	if wins != 1 || rejected != n-1 {
		t.Fatalf("%d goroutines with one code: %d succeeded, %d rejected; want 1 and %d", n, wins, rejected, n-1)
	}
	st := services[0].Store
	if got := len(auditEvents(t, st, enroll.AuditFilter{EventType: enroll.EventEnrollment})); got != 1 {
		t.Errorf("enrollment audit events = %d, want 1", got)
	}
	failed := auditEvents(t, st, enroll.AuditFilter{EventType: enroll.EventEnrollmentFailed})
	if len(failed) != n-1 {
		t.Errorf("enrollment_failed audit events = %d, want %d", len(failed), n-1)
	}
	for _, ev := range failed {
		if r := ev.Details()["reason"]; r != "pairing_code_used" {
			t.Errorf("audit %d: reason = %v, want pairing_code_used", ev.ID, r)
		}
	}
	wantChainOK(t, services[0])
}

// TestConcurrentEnrollOneCode: 50 goroutines, one code, one winner.
func TestConcurrentEnrollOneCode(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, _ := newService(t, s)
		raceEnroll(t, 50, svc)
	})
}

// TestConcurrentEnrollTwoInstances: the same race with two store instances
// (two connection pools, as two oma-server processes would have) on one
// MariaDB database.
func TestConcurrentEnrollTwoInstances(t *testing.T) {
	dsn := newDatabase(t, DriverMySQL, true)
	s1, s2 := mustOpenDSN(t, DriverMySQL, dsn), mustOpenDSN(t, DriverMySQL, dsn)
	svc1, _ := newService(t, s1)
	svc2, _ := newService(t, s2)
	raceEnroll(t, 50, svc1, svc2)
}

// TestConcurrentApprovals: approvals racing on two instances allocate
// distinct tunnel ports (a unique-key race is retried) and keep the audit
// chain intact.
func TestConcurrentApprovals(t *testing.T) {
	forEachDriver(t, true, func(t *testing.T, driver, dsn string) {
		s1, s2 := mustOpenDSN(t, driver, dsn), mustOpenDSN(t, driver, dsn)
		svc1, _ := newService(t, s1)
		svc2, _ := newService(t, s2)
		const n = 12
		vmas := make([]*vma, n)
		for i := range vmas {
			vmas[i] = verified(t, svc1, "vma-"+string(rune('a'+i)))
		}
		var wg sync.WaitGroup
		ports := make([]int, n)
		for i, v := range vmas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				svc := svc1
				if i%2 == 1 {
					svc = svc2
				}
				e, err := svc.Approve(context.Background(), v.id, "", admin)
				if err != nil {
					t.Errorf("Approve(%s): %v", v.name, err)
					return
				}
				ports[i] = *e.TunnelPort
			}()
		}
		wg.Wait()
		sort.Ints(ports)
		for i, p := range ports {
			if want := 9081 + i; p != want {
				t.Fatalf("ports = %v, want 9081…%d once each", ports, 9081+n-1)
			}
		}
		conns, err := s2.ListConnections(context.Background())
		if err != nil || len(conns) != n {
			t.Fatalf("ListConnections = %d, %v; want %d", len(conns), err, n)
		}
		wantChainOK(t, svc2)
	})
}
