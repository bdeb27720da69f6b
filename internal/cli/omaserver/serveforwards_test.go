package omaserver

import (
	"strings"
	"testing"
)

// TestServeRefusesOffLoopbackVMAForwards: serve will not hand VMAs a forward
// end on their side that vma-enroll refuses (issue 13, finding 6).
func TestServeRefusesOffLoopbackVMAForwards(t *testing.T) {
	t.Setenv("OMA_CONFIG", "")
	for _, args := range [][]string{{"--vma-nbd-listen", "0.0.0.0:10808"}, {"--vma-api-target", "10.20.30.40:445"}} {
		_, stderr, code := runServerCmd(t, append([]string{"serve", "--data-dir", t.TempDir()}, args...)...)
		if code != 2 || !strings.Contains(stderr, "must be a loopback address") {
			t.Errorf("serve %v: exit %d, want 2 with the reason\n%s", args, code, stderr)
		}
	}
}
