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
