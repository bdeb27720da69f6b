package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/labels"
)

// raceMultiUse has n goroutines enroll with one code of uses uses, spread
// over the services, and checks that exactly uses of them win.
func raceMultiUse(t *testing.T, uses, n int, services ...*enroll.Service) {
	t.Helper()
	ctx := context.Background()
	ic, err := services[0].CreatePairingCodeWith(ctx, enroll.CodeOptions{Uses: uses, Labels: labels.Set{"site": "fra"}}, admin)
	if err != nil {
		t.Fatal(err)
	}
	code := ic.Code.Reveal()
	start := make(chan struct{})
	errs := make([]error, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		v := newVMA(t, "fleet-"+string(rune('a'+i%26))+time.Duration(i).String())
		go func() {
			defer wg.Done()
			<-start
			req := v.request(code)
			req.Labels = labels.Set{"rack": "r1"}
			res, err := services[i%len(services)].Enroll(ctx, req, vmaIP)
			errs[i] = err
			if err == nil {
				ids[i] = res.EnrollmentID
			}
		}()
	}
	close(start)
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
			e := mustGet(t, services[0].Store, ids[i])
			if e.PairingCodeID != ic.ID || e.Labels != `{"site":"fra"}` || e.VMALabels != `{"rack":"r1"}` {
				t.Errorf("enrollment %s: code %q labels %q vma labels %q", e.ID, e.PairingCodeID, e.Labels, e.VMALabels)
			}
		case enroll.ErrorCode(err) != enroll.CodePairingCodeRejected:
			t.Errorf("goroutine %d: %v, want success or pairing_code_rejected", i, err)
		}
	}
	if wins != uses {
		t.Fatalf("%d goroutines, code of %d uses: %d succeeded, want exactly %d", n, uses, wins, uses)
	}
	list, err := services[0].PairingCodes(ctx, true)
	if err != nil || len(list) != 1 || list[0].UseCount != uses || list[0].UsesLeft() != 0 || list[0].UsedAt == nil {
		t.Fatalf("code after the race: %+v, %v", list, err)
	}
	for _, ev := range auditEvents(t, services[0].Store, enroll.AuditFilter{EventType: enroll.EventEnrollment}) {
		if ev.Details()["pairing_code_id"] != ic.ID {
			t.Errorf("audit %d: pairing_code_id %v, want %s", ev.ID, ev.Details()["pairing_code_id"], ic.ID)
		}
	}
	wantChainOK(t, services[0])
}

// TestMultiUseCodeUses: N+1 concurrent uses of an N-use code, N succeed.
func TestMultiUseCodeUses(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, _ := newService(t, s)
		raceMultiUse(t, 5, 6, svc)
	})
}

// TestMultiUseCodeTwoInstances: the same with two connection pools (two
// oma-server instances) on one MariaDB database.
func TestMultiUseCodeTwoInstances(t *testing.T) {
	dsn := newDatabase(t, DriverMySQL, true)
	s1, s2 := mustOpenDSN(t, DriverMySQL, dsn), mustOpenDSN(t, DriverMySQL, dsn)
	svc1, _ := newService(t, s1)
	svc2, _ := newService(t, s2)
	raceMultiUse(t, 10, 11, svc1, svc2)
}

// TestRevokedCodeRefused: a revoked multi-use code allows no further use;
// the refusal is audited as pairing_code_revoked.
func TestRevokedCodeRefused(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		svc, _ := newService(t, s)
		ic, err := svc.CreatePairingCodeWith(ctx, enroll.CodeOptions{Uses: 3}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Enroll(ctx, newVMA(t, "one").request(ic.Code.Reveal()), vmaIP); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.RevokePairingCode(ctx, ic.ID, admin); err != nil {
			t.Fatal(err)
		}
		_, err = svc.Enroll(ctx, newVMA(t, "two").request(ic.Code.Reveal()), vmaIP)
		wantCode(t, "enroll with a revoked code", err, enroll.CodePairingCodeRejected)
		failed := auditEvents(t, s, enroll.AuditFilter{EventType: enroll.EventEnrollmentFailed})
		if len(failed) != 1 || failed[0].Details()["reason"] != "pairing_code_revoked" {
			t.Errorf("failed audit: %+v", failed)
		}
		if _, err := svc.RevokePairingCode(ctx, ic.ID, admin); enroll.ErrorCode(err) != enroll.CodeWrongState {
			t.Errorf("second revoke: %v, want wrong_state", err)
		}
		live, _ := svc.PairingCodes(ctx, false)
		if len(live) != 0 {
			t.Errorf("revoked code still listed as usable")
		}
	})
}

// TestPreApproval: a pre-approved code approves at verify inside its CIDR
// (actor code:<id>), leaves the enrollment pending outside it, and never
// supersedes an approved VMA.
func TestPreApproval(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		svc, _ := newService(t, s)
		ic, err := svc.CreatePairingCodeWith(ctx, enroll.CodeOptions{Uses: 3, AutoApprove: true, From: "198.51.100.0/24"}, admin)
		if err != nil {
			t.Fatal(err)
		}
		run := func(name string, m enroll.Meta) *enroll.Verified {
			v := newVMA(t, name)
			res, err := svc.Enroll(ctx, v.request(ic.Code.Reveal()), m)
			if err != nil {
				t.Fatal(err)
			}
			v.id, v.challenge = res.EnrollmentID, res.Challenge
			out, err := svc.Verify(ctx, v.id, v.sign(), m)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		in := run("inside", vmaIP)
		if in.Status != enroll.StatusApproved {
			t.Fatalf("inside the CIDR: %s, want approved", in.Status)
		}
		if e := mustGet(t, s, in.EnrollmentID); e.ApprovedBy != enroll.CodeActor(ic.ID) || e.TunnelPort == nil {
			t.Errorf("approved by %q port %v", e.ApprovedBy, e.TunnelPort)
		}
		out := run("outside", enroll.Meta{SourceIP: "203.0.113.9", UserAgent: "x"})
		if out.Status != enroll.StatusAwaitingApproval {
			t.Errorf("outside the CIDR: %s, want awaiting_approval", out.Status)
		}
		same := run("inside", vmaIP) // the same name as an approved VMA
		if same.Status != enroll.StatusAwaitingApproval {
			t.Errorf("re-enrollment of an approved name: %s, want awaiting_approval (no takeover)", same.Status)
		}
		evs := auditEvents(t, s, enroll.AuditFilter{EventType: enroll.EventApproval})
		if len(evs) != 1 || evs[0].ApprovedBy != enroll.CodeActor(ic.ID) || evs[0].Details()["code_created_by"] != "alice" {
			t.Errorf("approval audit: %+v", evs)
		}
		if _, err := svc.CreatePairingCodeWith(ctx, enroll.CodeOptions{From: "10.0.0.0/8"}, admin); enroll.ErrorCode(err) != enroll.CodeInvalidRequest {
			t.Errorf("from without auto-approve: %v", err)
		}
		if _, err := svc.CreatePairingCodeWith(ctx, enroll.CodeOptions{Uses: 1001}, admin); enroll.ErrorCode(err) != enroll.CodeInvalidRequest {
			t.Errorf("1001 uses: %v", err)
		}
		wantChainOK(t, svc)
	})
}
