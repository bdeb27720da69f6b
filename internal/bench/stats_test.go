package bench

import (
	"strings"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	var d durations
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{0: time.Millisecond, 50: 51 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond} {
		if got := d.pct(p); got != want {
			t.Errorf("p%v = %s, want %s", p, got, want)
		}
	}
	if d[0] != 100*time.Millisecond {
		t.Error("pct sorted its input in place")
	}
}

func TestMarkdown(t *testing.T) {
	r := &Report{}
	r.add(Row{"m", "s", "r", "ref", ratio(1, 2), "t"})
	r.note("n %d", 1)
	got := r.Markdown()
	if !strings.Contains(got, "| m | s | r | ref | 0.50 | t |\n") || !strings.HasSuffix(got, "\n- n 1\n") {
		t.Fatalf("markdown:\n%s", got)
	}
}
