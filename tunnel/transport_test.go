package tunnel

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTransport runs requests through a real tunnel with Transport: plain,
// with a body, streamed, reused streams, a canceled request.
func TestTransport(t *testing.T) {
	srv, cli := pair(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			fmt.Fprintf(w, "line %d\n", i)
			http.NewResponseController(w).Flush()
		}
	})
	mux.HandleFunc("GET /hang", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	mux.HandleFunc("HEAD /hello", func(w http.ResponseWriter, r *http.Request) {})
	hs := &http.Server{Handler: mux}
	go hs.Serve(cli.Listener())
	defer hs.Close()
	opened := 0
	tr := &Transport{Open: func(ctx context.Context) (net.Conn, error) { opened++; return srv.Open(ctx, KindHTTP) }}
	c := &http.Client{Transport: tr}
	get := func(method, path, body string) string {
		t.Helper()
		req, _ := http.NewRequest(method, "http://runner"+path, strings.NewReader(body))
		if body == "" {
			req.Body = http.NoBody
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for range 5 {
		if got := get("GET", "/hello", ""); got != "hello" {
			t.Errorf("GET /hello = %q", got)
		}
	}
	if got := get("POST", "/echo", strings.Repeat("x", 100<<10)); len(got) != 100<<10 {
		t.Errorf("echo of 100 KiB gave %d bytes", len(got))
	}
	if got := get("GET", "/stream", ""); got != "line 0\nline 1\nline 2\n" {
		t.Errorf("stream = %q", got)
	}
	get("HEAD", "/hello", "")
	if opened != 1 {
		t.Errorf("%d streams opened for requests one after the other, want 1", opened)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://runner/hang", nil)
	if resp, err := c.Do(req); err == nil {
		b, rerr := io.ReadAll(resp.Body)
		t.Errorf("a request whose context ended did not fail: %s %q %v", resp.Status, b, rerr)
	}
	if got := get("GET", "/hello", ""); got != "hello" {
		t.Errorf("after a canceled request: %q", got)
	}
}

// TestTransportEdges: a 100 Continue before the answer, a POST that is not
// sent twice, a followed answer closed half read.
func TestTransportEdges(t *testing.T) {
	srv, cli := pair(t)
	posts := 0
	mux := http.NewServeMux()
	mux.HandleFunc("POST /continue", func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // the server sends 100 Continue as it reads
		io.WriteString(w, "after continue")
	})
	mux.HandleFunc("GET /b", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") })
	mux.HandleFunc("POST /once", func(w http.ResponseWriter, r *http.Request) {
		posts++
		panic(http.ErrAbortHandler) // the stream closes with no answer
	})
	mux.HandleFunc("GET /follow", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first line\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
	hs := &http.Server{Handler: mux}
	go hs.Serve(cli.Listener())
	defer hs.Close()
	c := &http.Client{Transport: &Transport{Open: func(ctx context.Context) (net.Conn, error) { return srv.Open(ctx, KindHTTP) }}}
	read := func(resp *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Status + " " + string(b)
	}

	req, _ := http.NewRequest("POST", "http://runner/continue", strings.NewReader(strings.Repeat("x", 1000)))
	req.Header.Set("Expect", "100-continue")
	if got := read(c.Do(req)); got != "200 OK after continue" {
		t.Errorf("with Expect: 100-continue: %q", got)
	}
	if got := read(c.Get("http://runner/b")); got != "200 OK b" {
		t.Errorf("the request after: %q, want its own answer", got)
	}

	read(c.Get("http://runner/b")) // a kept stream for the POST
	if _, err := c.Post("http://runner/once", "text/plain", strings.NewReader("x")); err == nil {
		t.Error("a POST whose stream closed without an answer did not fail")
	}
	if posts != 1 {
		t.Errorf("the POST reached the handler %d times, want once", posts)
	}

	resp, err := c.Get("http://runner/follow")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 64))
	returns(t, "closing a followed answer half read", func() { resp.Body.Close() })
}

// returns fails t unless f returns within 10 seconds.
func returns(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s does not return", what)
	}
}

// runner answers each request on a stream Transport opens with answer,
// whatever was asked, over a pipe: what the Transport took is counted
// exactly.
type runner struct {
	answer string
	read   atomic.Int64 // bytes the Transport read from the runner
	wg     sync.WaitGroup
}

func (r *runner) open(context.Context) (net.Conn, error) {
	c, p := net.Pipe()
	r.wg.Go(func() {
		defer p.Close()
		if _, err := http.ReadRequest(bufio.NewReader(p)); err != nil {
			return
		}
		io.WriteString(p, r.answer) // until the Transport closes the stream
	})
	return countingConn{c, &r.read}, nil
}

// closed waits for every stream the runner served to be closed.
func (r *runner) closed(t testing.TB) {
	t.Helper()
	returns(t, "waiting for the runner's streams to close", r.wg.Wait)
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestTransportHeadBounds: a runner answering with one endless header
// line, or with 100 Continue over and over, fails the request at the
// bound, having had no more than that read, and loses its stream. Without
// the bounds the control plane read the answer for as long as it came,
// the header line growing in its memory.
func TestTransportHeadBounds(t *testing.T) {
	for _, tc := range []struct {
		name, answer, err string
		most              int64 // bytes that may be read
	}{
		{"endless-line", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 16<<20), "the runner's answer header is over 1 MiB", 1 << 20},
		// All six answers are in bufio's first fill.
		{"endless-1xx", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 100_000), "too many 1xx answers", 4 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &runner{answer: tc.answer}
			tr := &Transport{Open: r.open}
			req, _ := http.NewRequest("GET", "http://runner/", nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("answer accepted: %s", resp.Status)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q, want %q", err, tc.err)
			}
			if n := r.read.Load(); n > tc.most {
				t.Errorf("read %d bytes of the answer, want at most %d", n, tc.most)
			}
			r.closed(t)
		})
	}
}

// FuzzTransportResponse: whatever the runner answers, RoundTrip gives an
// error or an answer whose body reads to its end and closes, and reads
// no more than MaxResponseHeaderBytes for the head.
func FuzzTransportResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	f.Add([]byte("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\nto the end"))
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 200)))
	f.Fuzz(func(t *testing.T, answer []byte) {
		const limit = 128
		r := &runner{answer: string(answer)}
		tr := &Transport{Open: r.open, MaxResponseHeaderBytes: limit}
		req, _ := http.NewRequest("GET", "http://runner/", nil)
		resp, err := tr.RoundTrip(req)
		if n := r.read.Load(); n > limit {
			t.Fatalf("read %d bytes for the head, over the %d-byte limit", n, limit)
		}
		if err == nil {
			io.Copy(io.Discard, resp.Body) // a bad body may end in an error, but it ends
			if err := resp.Body.Close(); err != nil {
				t.Fatalf("closing the body: %v", err)
			}
		}
		tr.CloseIdleConnections()
		r.closed(t)
	})
}
