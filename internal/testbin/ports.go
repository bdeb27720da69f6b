package testbin

import (
	"fmt"
	"net"
	"testing"
)

// FreePorts finds n consecutive free loopback ports (for a tunnel port
// pool, so tests never depend on the default 9081-9999 being free) and
// returns the first and the last.
func FreePorts(t testing.TB, n int) [2]int {
	t.Helper()
	for try := 0; try < 100; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if base+n > 65535 {
			continue
		}
		ok := true
		for p := base; p < base+n && ok; p++ {
			c, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				continue
			}
			c.Close()
		}
		if ok {
			return [2]int{base, base + n - 1}
		}
	}
	t.Fatal("no free port range")
	return [2]int{}
}
