package vmaenroll

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// plainEvery is how often a progress line is printed without a terminal.
const plainEvery = time.Minute

// progress shows the wait on stderr: on a terminal one status line
// rewritten every second; otherwise a plain line now and then and on every
// change of state.
type progress struct {
	ios      *cmdutil.IOStreams
	now      func() time.Time
	start    time.Time
	deadline time.Time
	keyFP    string

	mu        sync.Mutex
	state     string
	lastLen   int
	lastPlain time.Time
	stop      chan struct{}
	done      chan struct{}
}

func newProgress(ios *cmdutil.IOStreams, now func() time.Time, start, deadline time.Time, keyFP string) *progress {
	return &progress{ios: ios, now: now, start: start, deadline: deadline, keyFP: keyFP, state: "waiting for approval"}
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

// Set changes the state shown ("waiting for approval", "OMA unreachable, retrying in 4s").
func (p *progress) Set(state string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if state == p.state {
		return
	}
	p.state = state
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
	if p.ios.ErrTTY && p.lastLen > 0 {
		fmt.Fprintf(p.ios.ErrOut, "\r%s\r", strings.Repeat(" ", p.lastLen))
		p.lastLen = 0
	}
}

func (p *progress) render(changed bool) {
	now := p.now()
	elapsed := now.Sub(p.start)
	left := max(p.deadline.Sub(now), 0)
	if p.ios.ErrTTY {
		line := fmt.Sprintf("%s - %s elapsed, %s left - key %s", p.state, clock(elapsed), clock(left), p.keyFP)
		pad := ""
		if n := p.lastLen - len(line); n > 0 {
			pad = strings.Repeat(" ", n)
		}
		fmt.Fprintf(p.ios.ErrOut, "\r%s%s", line, pad)
		p.lastLen = len(line)
		return
	}
	if changed || now.Sub(p.lastPlain) >= plainEvery {
		fmt.Fprintf(p.ios.ErrOut, "%s: %s elapsed, %s left (key %s)\n", p.state, clock(elapsed), clock(left), p.keyFP)
		p.lastPlain = now
	}
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
