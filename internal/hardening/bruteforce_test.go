package hardening_test

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/app"
)

// The limits oma-server serve starts with (its flag defaults; the failure
// burst is server.Config's default).
const (
	defRatePerSecond   = 5
	defRateBurst       = 20
	defFailuresPerMin  = 5
	defFailureBurst    = 5
	pairingCodeBits    = 60
	attemptsMarginDiv  = 1e9 // a day's attempts must stay below 2^60 / 1e9
	bruteForceIPPrefix = "203.0.113."
)

// TestBruteForceIsThrottled: wrong codes from one address are cut off after
// the failure burst (429 with Retry-After), sequentially and concurrently;
// every failure is audited with its source IP; other addresses keep
// working.
func TestBruteForceIsThrottled(t *testing.T) {
	t.Parallel()
	e := startEnv(t, envOpts{cfg: func(c *app.Config) {
		c.RatePerSecond, c.RateBurst = defRatePerSecond, defRateBurst
		c.CodeFailuresPerMinute, c.CodeFailureBurst = defFailuresPerMin, defFailureBurst
		// Everything runs on loopback: the test poses as a proxy that
		// names the client in X-Forwarded-For.
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}})

	// What the configured limits allow a single address per day.
	perDay := float64(defFailureBurst) + defFailuresPerMin*60*24
	bound := math.Exp2(pairingCodeBits) / attemptsMarginDiv
	t.Logf("limits: %d rejected codes per minute (burst %d) per client IP => at most %.0f guesses per IP per day; "+
		"2^%d/1e9 = %.3g; a day of guessing covers %.3g of the code space",
		defFailuresPerMin, defFailureBurst, perDay, pairingCodeBits, bound, perDay/math.Exp2(pairingCodeBits))
	if perDay >= bound {
		t.Fatalf("%.0f attempts per day per IP is not below 2^60/1e9 = %.3g", perDay, bound)
	}

	from := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	wrong := func(i int) string { return fmt.Sprintf("AAAA-BBBB-%04d", i%10000) }
	v := newVMAKey(t, "brute")

	// Sequential: at most the burst is tried, then 429 for good.
	attacker := bruteForceIPPrefix + "10"
	tried := 0
	var limited resp
	// A few attempts past the first 429 show it holds; many more could
	// outlast the bucket's refill (one token per 12 s) on a slow machine.
	for i, after := 0, 0; i < 60 && after < 10; i++ {
		if limited.status != 0 {
			after++
		}
		r, _ := e.enroll(v, wrong(i), from(attacker))
		switch {
		case r.status == 403 && r.code() == "pairing_code_rejected":
			if limited.status != 0 {
				t.Fatalf("attempt %d was tried again after a 429: %s", i, r)
			}
			tried++
		case r.status == 429 && r.code() == "rate_limited":
			if limited.status == 0 {
				limited = r
			}
		default:
			t.Fatalf("attempt %d: %s", i, r)
		}
	}
	if tried > defFailureBurst || limited.status != 429 {
		t.Fatalf("sequential: %d codes tried before the first 429 (want at most %d)", tried, defFailureBurst)
	}
	if ra, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("429 without a usable Retry-After: %q", limited.header.Get("Retry-After"))
	}
	// A right code from the attacker's address is refused too: no oracle.
	if r, _ := e.enroll(v, e.mustCode(t), from(attacker)); r.status != 429 {
		t.Fatalf("a valid code from a blocked address: %s, want 429", r)
	}

	// Concurrent: 40 requests at once from a fresh address must not get
	// more than the burst tried either.
	attacker2 := bruteForceIPPrefix + "11"
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		wg       sync.WaitGroup
		start    = make(chan struct{})
	)
	// Open the connections first (TLS handshakes would stagger the
	// requests), then release all requests at once.
	var warm sync.WaitGroup
	for i := 0; i < 40; i++ {
		warm.Add(1)
		go func() { defer warm.Done(); e.publicDo("GET", api.PathHealth, nil, "") }()
	}
	warm.Wait()
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, _ := e.enroll(v, wrong(1000+i), from(attacker2))
			mu.Lock()
			statuses[r.status]++
			mu.Unlock()
		}()
	}
	// A busy database (here: its write lock held for a moment) keeps the
	// requests in flight together, as a slow store under load would.
	lock, err := e.raw.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	close(start)
	time.Sleep(time.Second)
	if _, err := lock.ExecContext(context.Background(), "COMMIT"); err != nil {
		t.Fatal(err)
	}
	lock.Close()
	wg.Wait()
	t.Logf("40 concurrent wrong codes from one address: statuses %v", statuses)
	if statuses[403] > defFailureBurst || statuses[403]+statuses[429] != 40 {
		t.Fatalf("concurrent: statuses %v: want at most %d codes tried (403) and the rest 429", statuses, defFailureBurst)
	}

	// An IPv6 client picks any of the 2^64 addresses of its /64: rotating
	// through them buys no extra guesses.
	rotated := 0
	for i := 0; i < 30; i++ {
		r, _ := e.enroll(v, wrong(2000+i), from(fmt.Sprintf("2001:db8:bad:1::%x", i+1)))
		if r.status == 403 {
			rotated++
		} else if r.status != 429 {
			t.Fatalf("IPv6 rotation attempt %d: %s", i, r)
		}
	}
	if rotated > defFailureBurst {
		t.Fatalf("%d codes tried from 30 addresses of one IPv6 /64, want at most %d", rotated, defFailureBurst)
	}

	// The audit names every tried code with its source address.
	byIP := map[string]int{}
	for _, ev := range e.auditEvents(t, "&event_type=enrollment_failed") {
		if ev.EventDetails["reason"] != "pairing_code_unknown" {
			t.Errorf("enrollment_failed reason %v", ev.EventDetails["reason"])
		}
		byIP[ev.SourceIP]++
	}
	for i := 0; i < rotated; i++ { // the audit keeps each full address
		if byIP[fmt.Sprintf("2001:db8:bad:1::%x", i+1)] != 1 {
			t.Errorf("no enrollment_failed event from 2001:db8:bad:1::%x: %v", i+1, byIP)
		}
	}
	if byIP[attacker] != tried || byIP[attacker2] != statuses[403] || len(byIP) != 2+rotated {
		t.Fatalf("enrollment_failed events by source IP: %v; want %s: %d, %s: %d", byIP, attacker, tried, attacker2, statuses[403])
	}

	// Other addresses are not affected: a VMA elsewhere enrolls at once.
	for i, ip := range []string{bruteForceIPPrefix + "12", "2001:db8::7"} {
		good := newVMAKey(t, fmt.Sprintf("innocent-%d", i))
		r, en := e.enroll(good, e.mustCode(t), from(ip))
		if en == nil {
			t.Fatalf("enroll from %s while %s is blocked: %s", ip, attacker, r)
		}
		if r := e.verify(good, en); r.status != 200 {
			t.Fatalf("verify from %s: %s", ip, r)
		}
	}
	r := e.adminDo("GET", api.PathPending, nil)
	if got := len(decodeAs[api.EnrollmentList](t, r).Enrollments); got != 2 {
		t.Fatalf("%d pending, want the 2 innocent VMAs", got)
	}
	e.chainOK(t)
}
