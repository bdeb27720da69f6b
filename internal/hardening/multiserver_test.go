package hardening_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/store"
)

// generous limits for tests that drive many requests from loopback.
// Loopback is a trusted proxy so that tests can pose as many clients.
var openLimits = []string{"--rate-limit", "10000", "--rate-burst", "10000", "--code-failures-per-minute", "100000",
	"--trusted-proxy", "127.0.0.0/8"}

// twoServers starts two oma-server processes on one fresh MariaDB database
// with one audit key; B uses A's admin token (tokens live in the database).
func twoServers(t *testing.T, extra ...string) (a, b *omaProc) {
	t.Helper()
	dsn := storeDSN(t, store.DriverMySQL)
	key := sharedAuditKey(t)
	flags := append(append([]string{}, openLimits...), extra...)
	a = startOMA(t, procOpts{name: "oma-server A", driver: "mysql", dsn: dsn, auditKeyFile: key, extra: flags})
	b = startOMA(t, procOpts{name: "oma-server B", driver: "mysql", dsn: dsn, auditKeyFile: key, tokenFile: a.tokenFile, extra: flags})
	return a, b
}

// TestRacesAcrossProcesses races every contended transition with the
// racers spread over two oma-server processes sharing one MariaDB.
func TestRacesAcrossProcesses(t *testing.T) {
	t.Parallel()
	a, b := twoServers(t)
	runRaces(t, []*apiClient{a.apiClient, b.apiClient})
}

// TestSeveralServers: two instances on one MariaDB behave as one server:
// a code made on B enrolls through A, B approves, the VMA polling A sees
// it at once; the expirers of both never expire one enrollment twice; an
// approval racing the expiry across the instances has one winner.
func TestSeveralServers(t *testing.T) {
	t.Parallel()
	const verifyWindow, approvalWindow = 2 * time.Second, 6 * time.Second
	a, b := twoServers(t, "--verify-window", verifyWindow.String(), "--approval-window", approvalWindow.String())

	// 1. A code from B, enrollment through A with the real vma-enroll,
	// approval on B with the real omactl.
	code := b.mustCode(t)
	v := startVMA(t, a.publicAddr(), a.fp, code, "vma-multi", "--timeout", "60s", "--poll-interval", "1s")
	var pending api.Enrollment
	eventually(t, 20*time.Second, "vma-multi pending on B", func() bool {
		for _, e := range decodeAs[api.EnrollmentList](t, b.adminDo("GET", api.PathPending, nil)).Enrollments {
			if e.VMAName == "vma-multi" {
				pending = e
				return true
			}
		}
		return false
	})
	approvedAt := time.Now()
	if r := omactl(t, b.admin, b.token, "approve", pending.ID); r.code != 0 {
		t.Fatalf("omactl approve on B: %s", r)
	}
	res := v.wait(30 * time.Second)
	lag := time.Since(approvedAt)
	if o, err := res.outcome(); res.code != 0 || err != nil || o.Status != "approved" || o.EnrollmentID != pending.ID {
		t.Fatalf("vma-enroll polling A after the approval on B: %s", res)
	}
	t.Logf("the VMA polling A finished %s after the approval on B", lag.Round(time.Millisecond))
	if lag > 10*time.Second {
		t.Errorf("the VMA polling A took %s to see the approval made on B", lag)
	}

	// 2. Enrollments left to expire, some unverified, some unapproved,
	// made through both; the expiry runs on both instances at once.
	var ids []string
	for i := 0; i < 12; i++ {
		c := []*apiClient{a.apiClient, b.apiClient}[i%2]
		v := newVMAKey(t, fmt.Sprintf("vma-expiring-%02d", i))
		_, en := c.enroll(v, c.mustCode(t), nil)
		if en == nil {
			t.Fatalf("enroll %d failed", i)
		}
		if i%3 != 0 {
			if r := c.verify(v, en); r.status != 200 {
				t.Fatalf("verify %d: %s", i, r)
			}
		}
		ids = append(ids, en.id)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range []*apiClient{a.apiClient, b.apiClient, a.apiClient, b.apiClient} {
		wg.Add(1)
		go func() { // every pending list runs the expiry first
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if r := c.adminDo("GET", api.PathPending, nil); r.status != 200 {
					t.Errorf("pending during the expiry: %s", r)
					return
				}
			}
		}()
	}

	// 3. Meanwhile: approvals racing the expiry at the deadline, spread over
	// both instances.
	var races sync.WaitGroup
	for round := 0; round < 3; round++ {
		en := a.enrollVerified(t, newVMAKey(t, fmt.Sprintf("vma-deadline-%d", round)))
		deadline := a.enrollment(t, en.id).VerifiedAt.Add(approvalWindow)
		races.Add(1)
		go func() {
			defer races.Done()
			time.Sleep(time.Until(deadline.Add(-time.Duration(round*15) * time.Millisecond)))
			out := make(chan resp, 8)
			for i := 0; i < 8; i++ {
				c := []*apiClient{a.apiClient, b.apiClient}[i%2]
				go func() { out <- c.adminDo("POST", api.PathApprove+en.id, nil) }()
			}
			wins := 0
			for i := 0; i < 8; i++ {
				r := <-out
				switch {
				case r.status == 200:
					wins++
				case r.status == 409 && r.code() == "wrong_state":
				default:
					t.Errorf("approval at the deadline: %s", r)
				}
			}
			if wins > 1 {
				t.Errorf("%d approvals of one enrollment succeeded", wins)
			}
		}()
		ids = append(ids, en.id)
	}
	races.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids[:12] {
		for a.enrollment(t, id).Status != "expired" {
			if time.Now().After(deadline) {
				t.Fatalf("enrollment %s is %s, want expired", id, a.enrollment(t, id).Status)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(time.Second) // let the expirers of both run over them again
	close(stop)
	wg.Wait()

	for i, id := range ids {
		ev := eventTypes(t, a.apiClient, id)
		e := a.enrollment(t, id)
		if i < 12 {
			if n := count(ev, "expiry"); n != 1 {
				t.Errorf("enrollment %s: %d expiry events (%v), want exactly 1", id, n, ev)
			}
			continue
		}
		switch e.Status {
		case "approved":
			if count(ev, "approval") != 1 || count(ev, "expiry") != 0 || e.VerifiedAt == nil || !e.ApprovedAt.Before(e.VerifiedAt.Add(approvalWindow)) {
				t.Errorf("deadline race %s: approved at %v (verified %v) with audit %v", id, e.ApprovedAt, e.VerifiedAt, ev)
			}
		case "expired":
			if count(ev, "expiry") != 1 || count(ev, "approval") != 0 {
				t.Errorf("deadline race %s: expired with audit %v", id, ev)
			}
		default:
			t.Errorf("deadline race %s: status %s", id, e.Status)
		}
		t.Logf("deadline race %d: %s", i-12, e.Status)
	}
	a.chainOK(t)
	b.chainOK(t)
}
