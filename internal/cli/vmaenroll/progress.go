package vmaenroll

import (
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// plainEvery is how often a progress line is printed without a live line.
const plainEvery = time.Minute

// progress shows the wait on stderr. On a terminal of known width: one
// status line, rewritten every second and never wider than the terminal
// (the key fingerprint only when it fits, a long state cut with "...").
// Otherwise (no terminal, or its width unknown): a plain line on every
// change of state and once a minute, like 'kubectl rollout status'.
type progress struct {
	ios      *cmdutil.IOStreams
	now      func() time.Time
	start    time.Time
	deadline time.Time
	keyFP    string

	mu        sync.Mutex
	state     string    // on the live line
	long      string    // on the plain lines
	window    time.Time // end of the server's approval window, by our clock; zero: unknown
	lastLen   int
	lastPlain time.Time
	stop      chan struct{}
	done      chan struct{}
}

func newProgress(ios *cmdutil.IOStreams, now func() time.Time, start, deadline time.Time, keyFP string) *progress {
	return &progress{ios: ios, now: now, start: start, deadline: deadline, keyFP: keyFP, state: "waiting for approval", long: "waiting for approval"}
}

// SetWindow sets the end of the server's approval window: "left" counts
// down to it when it comes before --timeout.
func (p *progress) SetWindow(end time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.window = end
}

// Start begins rendering.
func (p *progress) Start() {
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	p.mu.Lock()
	p.render(true)
	p.mu.Unlock()
	go func() {
		defer close(p.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.render(false)
				p.mu.Unlock()
			}
		}
	}()
}

// Set changes the state shown ("waiting for approval").
func (p *progress) Set(state string) { p.SetBoth(state, state) }

// SetBoth changes the state shown: short on the live line, long on the
// plain lines ("OMA unreachable: connection refused; retry in 4s" and
// "OMA unreachable (dial tcp …: connect: connection refused), retrying in 4s").
func (p *progress) SetBoth(short, long string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if short == p.state && long == p.long {
		return
	}
	p.state, p.long = short, long
	p.render(true)
}

// Stop ends rendering and clears the status line.
func (p *progress) Stop() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	<-p.done
	p.stop = nil
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lastLen > 0 {
		fmt.Fprintf(p.ios.ErrOut, "\r%s\r", strings.Repeat(" ", p.lastLen))
		p.lastLen = 0
	}
}

// left is the time left: to --timeout, or to the end of the approval
// window when that comes first.
func (p *progress) left(now time.Time) time.Duration {
	end := p.deadline
	if !p.window.IsZero() && p.window.Before(end) {
		end = p.window
	}
	return max(end.Sub(now), 0)
}

func (p *progress) render(changed bool) {
	now := p.now()
	elapsed, left := now.Sub(p.start), p.left(now)
	if width := p.ios.ErrColumns(); width > 0 {
		// The last column stays empty: writing it makes some terminals
		// wrap at once.
		line := statusLine(p.state, clock(elapsed), clock(left), p.keyFP, width-1)
		n := utf8.RuneCountInString(line)
		pad := ""
		if d := min(p.lastLen, width-1) - n; d > 0 {
			pad = strings.Repeat(" ", d)
		}
		fmt.Fprintf(p.ios.ErrOut, "\r%s%s", line, pad)
		p.lastLen = n
		return
	}
	if changed || now.Sub(p.lastPlain) >= plainEvery {
		fmt.Fprintf(p.ios.ErrOut, "%s: %s elapsed, %s left (key %s)\n", p.long, clock(elapsed), clock(left), p.keyFP)
		p.lastPlain = now
	}
}

// statusLine builds the live line in at most width columns: the state and
// the times always (the state cut short with "..." when needed), the key
// fingerprint only when it fits whole.
func statusLine(state, elapsed, left, keyFP string, width int) string {
	times := fmt.Sprintf(" - %s elapsed, %s left", elapsed, left)
	line := state + times
	if keyFP != "" {
		if full := line + " - key " + keyFP; utf8.RuneCountInString(full) <= width {
			return full
		}
	}
	if utf8.RuneCountInString(line) <= width {
		return line
	}
	room := width - utf8.RuneCountInString(times)
	if room < 8 {
		// Too narrow for both: the times alone, cut to fit.
		return truncate(strings.TrimPrefix(times, " - "), width)
	}
	return truncate(state, room) + times
}

// truncate cuts s to n columns, ending in "..." when it was cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 3 {
		return string(r[:max(n, 0)])
	}
	return string(r[:n-3]) + "..."
}

// clock shows a duration as 1h02m03s / 02m03s.
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d/time.Hour), int(d/time.Minute)%60, int(d/time.Second)%60
	if h > 0 {
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s)
	}
	return fmt.Sprintf("%02dm%02ds", m, s)
}
