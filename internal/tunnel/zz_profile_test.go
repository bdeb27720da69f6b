package tunnel_test

import (
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/omatest"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
)

func TestZZProfile(t *testing.T) {
	if os.Getenv("ZZ") == "" {
		t.Skip()
	}
	db, _ := omatest.OpenStore(t, "sqlite")
	sink := testbin.Serve(t, "127.0.0.1:0", func(c net.Conn) { io.Copy(io.Discard, c); c.Close() })
	o := runOMA(t, db, newSetup(t, sink, streamEcho(t)))
	v := o.enrollVMA("vma-p", nil)
	var ch func(*tunnel.ClientConfig)
	if os.Getenv("ZZ") == "tls" {
		ch = withDataPath(t, o.oma, v, 4)
	}
	rc := startClient(t, o.oma, v, ch)
	rc.waitUp(t, 1)
	c, err := net.Dial("tcp", o.nbdLocal)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	start := time.Now()
	for i := 0; i < 4*1024; i++ {
		c.Write(buf)
	}
	c.(*net.TCPConn).CloseWrite()
	var b [1]byte
	c.Read(b[:])
	t.Logf("%.0f MB/s", 1<<30/time.Since(start).Seconds()/1e6)
}
