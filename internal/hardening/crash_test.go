package hardening_test

import (
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

// crashVMAs is how many vma-enroll processes are mid-enrollment when
// oma-server is killed. 100 real processes fit this 2-core machine (they
// are idle but for their start and a long poll every 25s).
const crashVMAs = 100

// documented exit codes of vma-enroll (docs/design.md §7).
var vmaExitCodes = map[int]string{0: "approved", 1: "error", 2: "usage", 3: "rejected", 4: "timed out", 5: "pairing code rejected", 6: "identity mismatch"}

// TestCrashMidEnrollment: kill -9 of oma-server while 100 real vma-enroll
// processes are enrolling, restart on the same ports and data: every
// process completes after approval or fails with a documented exit code,
// no enrollment is half-written, the audit chain verifies.
func TestCrashMidEnrollment(t *testing.T) {
	t.Parallel()
	p := startOMA(t, procOpts{name: "oma-server (crash)", extra: openLimits})
	codes := make([]string, crashVMAs)
	for i := range codes {
		codes[i] = p.mustCode(t)
	}
	pendingCount := func() int {
		r := p.adminDo("GET", api.PathPending, nil)
		if r.status != 200 {
			return -1
		}
		return len(decodeAs[api.EnrollmentList](t, r).Enrollments)
	}

	// Start the VMAs at a steady pace; kill the server once a quarter of
	// them wait for approval, so the rest are mid-request or not yet there.
	vmas := make([]*vmaProc, crashVMAs)
	killed := make(chan time.Time, 1)
	started := crashVMAs
	var once sync.Once
	for i := range vmas {
		vmas[i] = startVMA(t, p.publicAddr(), p.fp, codes[i], fmt.Sprintf("vma-crash-%03d", i),
			"--timeout", "120s", "--poll-interval", "1s")
		time.Sleep(15 * time.Millisecond)
		if i >= crashVMAs/3 && i%5 == 0 {
			if n := pendingCount(); n >= crashVMAs/4 {
				once.Do(func() { p.kill(); killed <- time.Now(); started = i + 1 })
			}
		}
	}
	once.Do(func() { p.kill(); killed <- time.Now() })
	at := <-killed
	t.Logf("killed oma-server (kill -9) after %d of %d VMAs were started", started, crashVMAs)
	time.Sleep(time.Second)
	p.restart()
	t.Logf("restarted on the same ports %s after %s", p.publicAddr(), time.Since(at).Round(time.Millisecond))

	// The admin approves whatever is pending until every process ended.
	results := make([]result, crashVMAs)
	var wg sync.WaitGroup
	for i, v := range vmas {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = v.wait(150 * time.Second) }()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
approving:
	for {
		for _, e := range decodeAs[api.EnrollmentList](t, p.adminDo("GET", api.PathPending, nil)).Enrollments {
			if r := p.adminDo("POST", api.PathApprove+e.ID, nil); r.status != 200 && r.status != 409 {
				t.Errorf("approve %s: %s", e.VMAName, r)
			}
		}
		select {
		case <-allDone:
			break approving
		case <-time.After(200 * time.Millisecond):
		}
	}

	// Every process completed or failed with a documented exit code.
	byCode := map[int]int{}
	approvedByVMA := map[string]string{} // enrollment id -> name, from vma-enroll
	exitByName := map[string]int{}
	for i, r := range results {
		byCode[r.code]++
		exitByName[fmt.Sprintf("vma-crash-%03d", i)] = r.code
		if _, ok := vmaExitCodes[r.code]; !ok {
			t.Errorf("vma-crash-%03d ended with exit %d, not a documented exit code:\n%s", i, r.code, r)
			continue
		}
		o, err := r.outcome()
		if err != nil {
			t.Errorf("vma-crash-%03d: stdout is not its JSON result: %v\n%s", i, err, r)
			continue
		}
		if r.code == 0 {
			if o.Status != "approved" {
				t.Errorf("vma-crash-%03d: exit 0 with status %q", i, o.Status)
			}
			approvedByVMA[o.EnrollmentID] = fmt.Sprintf("vma-crash-%03d", i)
		} else {
			t.Logf("vma-crash-%03d: exit %d (%s): %s", i, r.code, vmaExitCodes[r.code], lastLine(r.stderr))
		}
	}
	t.Logf("exit codes of the %d vma-enroll processes: %v", crashVMAs, byCode)
	if byCode[0] < crashVMAs/2 {
		t.Errorf("only %d of %d VMAs completed", byCode[0], crashVMAs)
	}

	// No enrollment is half-written.
	enrollments := p.enrollments(t)
	events := p.auditEvents(t, "")
	kinds := map[string]map[string]int{}
	for _, ev := range events {
		if ev.EnrollmentID == nil {
			continue
		}
		if kinds[*ev.EnrollmentID] == nil {
			kinds[*ev.EnrollmentID] = map[string]int{}
		}
		kinds[*ev.EnrollmentID][ev.EventType]++
	}
	approved := 0
	for _, e := range enrollments {
		k := kinds[e.ID]
		if k["enrollment"] != 1 {
			t.Errorf("enrollment %s (%s, %s) has %d enrollment events", e.ID, e.VMAName, e.Status, k["enrollment"])
		}
		if e.VerifiedAt != nil && k["verification"] != 1 {
			t.Errorf("enrollment %s is verified but has %d verification events", e.ID, k["verification"])
		}
		if e.Status == "approved" {
			approved++
			if k["approval"] != 1 || e.TunnelPort == nil {
				t.Errorf("enrollment %s is approved with %d approval events, port %v", e.ID, k["approval"], e.TunnelPort)
			}
			// Approved but not reported: only a VMA whose verify answer was
			// lost in the crash (it exits 1: the poll token is given once).
			if approvedByVMA[e.ID] == "" && exitByName[e.VMAName] != 1 {
				t.Errorf("enrollment %s (%s) is approved but its vma-enroll exited %d without reporting it", e.ID, e.VMAName, exitByName[e.VMAName])
			}
		}
	}
	if approved < byCode[0] || approved > byCode[0]+byCode[1] {
		t.Errorf("%d approved enrollments, %d vma-enroll processes succeeded and %d failed", approved, byCode[0], byCode[1])
	}
	for id, name := range approvedByVMA {
		found := false
		for _, e := range enrollments {
			found = found || (e.ID == id && e.VMAName == name && e.Status == "approved")
		}
		if !found {
			t.Errorf("%s reported enrollment %s approved; the server does not have it so", name, id)
		}
	}
	// Every used pairing code points at an enrollment that exists.
	db := openRaw(t, "sqlite", p.dsn)
	var dangling int
	if err := db.QueryRow(`SELECT COUNT(*) FROM vma_pairing_codes c WHERE c.used_at IS NOT NULL AND
		(c.used_by_enrollment_id IS NULL OR NOT EXISTS (SELECT 1 FROM vma_enrollments e WHERE e.id = c.used_by_enrollment_id))`).Scan(&dangling); err != nil && err != sql.ErrNoRows {
		t.Fatal(err)
	}
	if dangling != 0 {
		t.Errorf("%d pairing codes are used without an enrollment", dangling)
	}
	p.chainOK(t)
	t.Logf("%d enrollments, %d approved, %d audit events; chain intact", len(enrollments), approved, len(events))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
