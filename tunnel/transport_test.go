package tunnel

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
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
	closed := make(chan struct{})
	go func() { resp.Body.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("closing a followed answer half read does not return")
	}
}
