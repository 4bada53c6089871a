package tunnel

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
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
		push(b, c, c.(interface{ CloseWrite() error }).CloseWrite)
	})
}

// BenchmarkRoundTrip is one small HTTP request and answer, through the
// tunnel and over plain TLS: what the tunnel adds to every proxied call.
func BenchmarkRoundTrip(b *testing.B) {
	get := func(b *testing.B, c *http.Client, url string) {
		b.Helper()
		for range b.N {
			resp, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"ok":true}`) })
	b.Run("raw-tls", func(b *testing.B) {
		srvCfg, cliCfg := tlsPair(b)
		srvCfg.NextProtos, cliCfg.NextProtos = nil, nil
		l, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		go http.Serve(l, handler)
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cliCfg}}
		get(b, c, "https://localhost:"+strconv.Itoa(l.Addr().(*net.TCPAddr).Port)+"/")
	})
	b.Run("tunnel", func(b *testing.B) {
		srv, cli := pair(b)
		hs := &http.Server{Handler: handler}
		go hs.Serve(cli.Listener())
		defer hs.Close()
		get(b, httpClient(srv), "http://runner/")
	})
	// What the control plane uses: Transport, no read and write loops.
	b.Run("tunnel-transport", func(b *testing.B) {
		srv, cli := pair(b)
		hs := &http.Server{Handler: handler}
		go hs.Serve(cli.Listener())
		defer hs.Close()
		tr := &Transport{Open: func(ctx context.Context) (net.Conn, error) { return srv.Open(ctx, KindHTTP) }}
		get(b, &http.Client{Transport: tr}, "http://runner/")
	})
}
