package tunnel_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cameleer/cameleer/tunnel"
)

type countRefused struct{ n *atomic.Int64 }

func (h countRefused) Enabled(context.Context, slog.Level) bool { return true }
func (h countRefused) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "refused") {
		h.n.Add(1)
	}
	return nil
}
func (h countRefused) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countRefused) WithGroup(string) slog.Handler      { return h }

// tunnels connects a tunnel client to a tunnel server over loopback TCP
// and counts the streams the server refuses for a bad header.
func tunnels(t *testing.T) (cli, srv *tunnel.Session, refused *atomic.Int64) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() { c, _ := l.Accept(); acc <- c }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	refused = new(atomic.Int64)
	srv = tunnel.Server(s, slog.New(countRefused{refused}))
	cli = tunnel.Client(c, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return cli, srv, refused
}

// TestHeaderGoesFirstUnderHTTPTransport: net/http's Transport (the
// runner's calls to the control plane) reads a new stream from one
// goroutine while another writes the request; the stream's header must
// still be its first bytes. (The race this guards was narrow: about 1
// request in 3000.)
func TestHeaderGoesFirstUnderHTTPTransport(t *testing.T) {
	cli, srv, refused := tunnels(t)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go hs.Serve(srv.Listener())
	defer hs.Close()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return cli.Open(ctx, tunnel.KindHTTP) },
	}}
	const n = 3000
	failed := 0
	for range n {
		resp, err := hc.Get("http://runner/")
		if err != nil {
			failed++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if failed > 0 || refused.Load() > 0 {
		t.Fatalf("%d of %d requests failed, %d streams refused for a bad header", failed, n, refused.Load())
	}
}

// TestConcurrentFirstWrites: two goroutines write a new stream at once
// (net.Conn allows it); neither may go out before the stream's header.
func TestConcurrentFirstWrites(t *testing.T) {
	cli, srv, refused := tunnels(t)
	l := srv.Listener()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	const n = 2000
	payload := make([]byte, 16<<10)
	for i := range n {
		c, err := cli.Open(context.Background(), tunnel.KindHTTP)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := range 2 {
			wg.Go(func() {
				<-start
				for j := 0; j < w*(i%200); j++ {
					_ = j * j // stagger the two writers
				}
				c.Write(payload)
			})
		}
		close(start)
		wg.Wait()
		c.Close()
	}
	// The server reads each stream's header in its own goroutine.
	time.Sleep(500 * time.Millisecond)
	if r := refused.Load(); r > 0 {
		t.Fatalf("%d of %d streams refused for a bad header: a write overtook the header", r, n)
	}
}
