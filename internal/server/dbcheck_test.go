package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDBCheck(t *testing.T) {
	var c dbCheck
	var pings atomic.Int32
	var down atomic.Bool
	ping := func(context.Context) error {
		pings.Add(1)
		if down.Load() {
			return errors.New("down")
		}
		return nil
	}
	if !c.ok(context.Background(), ping) || pings.Load() != 1 {
		t.Fatalf("first check: pings %d", pings.Load())
	}
	// Within the max age: the cached answer, no ping.
	down.Store(true)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if !c.ok(context.Background(), ping) {
				t.Error("a cached up answered down")
			}
		})
	}
	wg.Wait()
	if pings.Load() != 1 {
		t.Fatalf("%d pings for 51 checks within a second, want 1", pings.Load())
	}
	// Older than the max age: one ping, and the database is down now.
	c.mu.Lock()
	c.at = time.Now().Add(-2 * dbCheckMaxAge)
	c.mu.Unlock()
	if c.ok(context.Background(), ping) || pings.Load() != 2 {
		t.Fatalf("after max age: pings %d", pings.Load())
	}
	// A canceled request still completes the check it started.
	c.mu.Lock()
	c.at = time.Now().Add(-2 * dbCheckMaxAge)
	c.mu.Unlock()
	down.Store(false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if !c.ok(ctx, func(ctx context.Context) error { return ctx.Err() }) {
		t.Fatal("the check took the canceled request's context")
	}
}

// TestDBCheckFirstBurst: before any answer, concurrent callers wait for
// the one ping under way instead of each pinging.
func TestDBCheckFirstBurst(t *testing.T) {
	var c dbCheck
	var pings atomic.Int32
	release := make(chan struct{})
	ping := func(context.Context) error {
		pings.Add(1)
		<-release
		return nil
	}
	var wg sync.WaitGroup
	var ups atomic.Int32
	for range 20 {
		wg.Go(func() {
			if c.ok(context.Background(), ping) {
				ups.Add(1)
			}
		})
	}
	// Every caller is in: one pings, the others wait on it.
	for pings.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if pings.Load() != 1 || ups.Load() != 20 {
		t.Fatalf("%d pings, %d up answers for 20 first callers; want 1 and 20", pings.Load(), ups.Load())
	}
}
