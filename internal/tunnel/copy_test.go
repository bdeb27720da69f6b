package tunnel

import (
	"bufio"
	"io"
	"net"
	"testing"
)

// TestBulkReadConnReleasesItsBuffer: a burst is read 256 KiB at a time,
// and once it is drained the connection holds no buffer: an idle tunnel
// stays small (bench row 4 measures it: 63.5 KiB per tunnel).
func TestBulkReadConnReleasesItsBuffer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const size = 3<<20 + 100
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write(make([]byte, size))
		io.Copy(io.Discard, c) // until the test closes
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &BulkReadConn{Conn: nc}
	r := bufio.NewReader(c) // as x/crypto/ssh reads
	buf := make([]byte, 32<<10)
	bigReads := 0
	for got := 0; got < size; {
		n, err := io.ReadFull(r, buf[:min(len(buf), size-got)])
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		got += n
		if c.buf != nil {
			bigReads++
		}
	}
	if bigReads == 0 {
		t.Errorf("a %d-byte burst was never read ahead", size)
	}
	if c.buf != nil {
		t.Fatalf("the drained connection still holds a %d-byte buffer", len(*c.buf))
	}
}
