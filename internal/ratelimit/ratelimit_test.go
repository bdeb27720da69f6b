package ratelimit

import "testing"

func TestKeyGroupsIPv6By64(t *testing.T) {
	for _, c := range []struct{ ip, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"not an ip", "not an ip"},
	} {
		if got := Key(c.ip); got != c.want {
			t.Errorf("Key(%q) = %q, want %q", c.ip, got, c.want)
		}
	}
}

func TestConcurrentCapsPerKey(t *testing.T) {
	c := NewConcurrent(2)
	first, second, third := c.Acquire("a"), c.Acquire("a"), c.Acquire("a")
	if !first || !second || third {
		t.Fatalf("acquires of a = %v, %v, %v; want two slots, not three", first, second, third)
	}
	if !c.Acquire("b") {
		t.Fatal("b is limited by a's slots")
	}
	c.Release("a")
	if !c.Acquire("a") || c.Total() != 3 {
		t.Fatalf("after a release: total %d, want 3", c.Total())
	}
}

func TestFailureBudget(t *testing.T) {
	l := New(0.001, 3)
	for i := 0; i < 3; i++ {
		if !l.Has("x") {
			t.Fatalf("budget empty after %d failures, want 3", i)
		}
		l.Charge("x")
	}
	if l.Has("x") {
		t.Fatal("budget left after 3 failures with a burst of 3")
	}
	if !l.Has("y") {
		t.Fatal("another key shares x's budget")
	}
}
