package tunnel_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
	"github.com/cameleer/cameleer/tunnel"
)

// refused is how many streams a tunnel's side that logs to logs refused
// for a bad header.
func refused(logs *testutil.Logs) int { return logs.Count(slog.LevelDebug, "refused") }

// TestHeaderGoesFirstUnderHTTPTransport: net/http's Transport (the
// runner's calls to the control plane) reads a new stream from one
// goroutine while another writes the request; the stream's header must
// still be its first bytes. (The race this guards was narrow: about 1
// request in 3000.)
func TestHeaderGoesFirstUnderHTTPTransport(t *testing.T) {
	var logs testutil.Logs
	cli, srv := testutil.Tunnel(t, logs.Logger())
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
	if failed > 0 || refused(&logs) > 0 {
		t.Fatalf("%d of %d requests failed, %d streams refused for a bad header", failed, n, refused(&logs))
	}
}

// TestConcurrentFirstWrites: two goroutines write a new stream at once
// (net.Conn allows it); neither may go out before the stream's header.
func TestConcurrentFirstWrites(t *testing.T) {
	var logs testutil.Logs
	cli, srv := testutil.Tunnel(t, logs.Logger())
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
		// Fewer open at once than a runner may have (tunnel.MaxRunnerStreams):
		// past them, streams are refused, and a runner that keeps at it is
		// cut off. A stream of the runner's is forgotten once the control
		// plane has closed its side too: the runner's count bounds both.
		for cli.NumStreams() >= tunnel.MaxRunnerStreams/2 {
			time.Sleep(time.Millisecond)
		}
	}
	// The server reads each stream's header in its own goroutine.
	time.Sleep(500 * time.Millisecond)
	if r := refused(&logs); r > 0 {
		t.Fatalf("%d of %d streams refused for a bad header: a write overtook the header", r, n)
	}
}
