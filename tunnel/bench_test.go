package tunnel

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
)

const benchChunk = 1 << 20

// sink reads and discards everything from each connection l accepts.
func sink(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			io.Copy(io.Discard, c)
			c.Write([]byte{1})
			c.Close()
		}()
	}
}

// push writes b.N chunks to c, half-closes, and waits for the reader's ack,
// so the time covers delivery, not buffering.
func push(b *testing.B, c net.Conn, closeWrite func() error) {
	buf := make([]byte, benchChunk)
	b.SetBytes(benchChunk)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := closeWrite(); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	c.Close()
}

// BenchmarkThroughput compares one stream through the tunnel with a plain
// TLS 1.3 connection on loopback. Run both in one go and compare:
//
//	go test -run XXX -bench Throughput -count 5 ./tunnel | benchstat -
func BenchmarkThroughput(b *testing.B) {
	b.Run("raw-tls", func(b *testing.B) {
		srvCfg, cliCfg := tlsPair(b)
		l, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		go sink(l)
		c, err := tls.Dial("tcp", l.Addr().String(), cliCfg)
		if err != nil {
			b.Fatal(err)
		}
		push(b, c, c.CloseWrite)
	})
	b.Run("tunnel", func(b *testing.B) {
		srv, cli := pair(b)
		go sink(srv.Listener())
		c, err := cli.Open(context.Background(), KindHTTP)
		if err != nil {
			b.Fatal(err)
		}
		// A yamux stream's Close is a half-close: it still reads.
		push(b, c, c.Close)
	})
}
