package hardening_test

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

// TestSQLiteUnderLoad: 64 enrollments at once (code, enroll, verify,
// approve, result), with readers listing alongside, on oma-server's SQLite
// store: every request succeeds, none is answered 500 or 503, and "database
// is locked" never appears in the server log.
func TestSQLiteUnderLoad(t *testing.T) {
	t.Parallel()
	const n = 64
	p := startOMA(t, procOpts{name: "oma-server (sqlite)", extra: openLimits})
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		mu    sync.Mutex
		fails []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		fails = append(fails, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			v := newVMAKey(t, fmt.Sprintf("load-%02d", i))
			code, err := p.pairingCode()
			if err != nil {
				fail("vma %d: %v", i, err)
				return
			}
			r, en := p.enroll(v, code, map[string]string{"X-Forwarded-For": fmt.Sprintf("198.18.1.%d", i+1)})
			if en == nil {
				fail("vma %d enroll: %s", i, r)
				return
			}
			if r := p.verify(v, en); r.status != 200 {
				fail("vma %d verify: %s", i, r)
				return
			}
			if r := p.adminDo("POST", api.PathApprove+en.id, nil); r.status != 200 {
				fail("vma %d approve: %s", i, r)
				return
			}
			r = p.publicDo("GET", api.PathResult+"?enrollment_id="+en.id, nil, en.pollToken)
			if r.status != 200 || decodeAs[api.ResultResponse](t, r).Status != "approved" {
				fail("vma %d result: %s", i, r)
			}
		}()
	}
	// Readers on the read pool while the writer is busy.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for _, path := range []string{api.PathPending, api.PathActive, api.PathAudit + "?limit=50&order=desc", api.PathEnrollments} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if r := p.adminDo("GET", path, nil); r.status != 200 {
					fail("GET %s: %s", path, r)
					return
				}
			}
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	close(stop)
	readers.Wait()
	t.Logf("%d enrollments (code, enroll, verify, approve, result) in %s", n, time.Since(began).Round(time.Millisecond))
	for _, f := range fails {
		t.Error(f)
	}
	log := p.log.String()
	for _, bad := range []string{"database is locked", "SQLITE_BUSY", "SQLITE_LOCKED", "level=ERROR"} {
		if strings.Contains(log, bad) {
			t.Errorf("the server log mentions %q", bad)
		}
	}
	if m := regexp.MustCompile(`status=5\d\d`).FindString(log); m != "" {
		t.Errorf("the server answered %s", m)
	}
	if got := len(decodeAs[api.ConnectionList](t, p.adminDo("GET", api.PathActive, nil)).Connections); got != n {
		t.Errorf("%d active VMAs, want %d", got, n)
	}
	p.chainOK(t)
}
