package tunnel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// Transport is an http.RoundTripper for HTTP/1.1 over tunnel streams. It
// writes the request and reads the answer in the caller's goroutine, where
// http.Transport hands each request to a write loop and each answer back
// from a read loop: those hand-offs are a good part of what a small
// request through the tunnel costs. Streams are kept for the next request
// once an answer was read to its end.
type Transport struct {
	// Open opens a new HTTP stream to the peer.
	Open func(context.Context) (net.Conn, error)
	// MaxIdle is how many streams are kept for reuse; 0 means 16.
	MaxIdle int
	// MaxResponseHeaderBytes bounds what is read for an answer's head, its
	// informational answers included; 0 means 1 MiB, net/http's default.
	// The runner is not trusted: without a bound, one endless header line
	// grows in the control plane's memory until it runs out.
	MaxResponseHeaderBytes int64

	mu     sync.Mutex
	idle   []*stream
	closed bool
}

// max1xx is how many informational answers may come before the answer
// (net/http's bound until it counted them in its header limit). They
// count against MaxResponseHeaderBytes too, but at 25 bytes each that
// alone would let tens of thousands through.
const max1xx = 5

var errTooMany1xx = fmt.Errorf("tunnel: too many 1xx answers (more than %d)", max1xx)

type stream struct {
	net.Conn
	head headLimit // under br: counts what is read for an answer's head
	br   *bufio.Reader
	bw   *bufio.Writer
}

// headLimit counts the bytes read from the stream against what is left
// for the answer's head, as net/http's persistConn does with its
// readLimit; a body is read with no limit.
type headLimit struct {
	r    io.Reader
	left int64
}

var errHeadLimit = errors.New("tunnel: read limit for the answer's head exhausted")

func (l *headLimit) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errHeadLimit
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// RoundTrip sends req and reads the answer's head; the body streams as the
// caller reads it.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	for {
		s, reused, err := t.get(req.Context())
		if err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
		resp, err := t.roundTrip(req, s)
		// A kept stream the peer closed meanwhile fails before any answer:
		// try again, on a new one, if the request can be sent again.
		if err != nil && reused && resendable(req) && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)) {
			if req.Body != nil && req.Body != http.NoBody {
				b, gerr := req.GetBody()
				if gerr != nil {
					return nil, err
				}
				again := *req
				again.Body = b
				req = &again
			}
			continue
		}
		return resp, err
	}
}

// resendable says whether a request may go out again: only an idempotent
// one (the peer may have acted on it before its stream broke) whose body
// can be had again.
func resendable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	default:
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func (t *Transport) roundTrip(req *http.Request, s *stream) (*http.Response, error) {
	ctx := req.Context()
	// A canceled request closes its stream, which ends any read or write
	// on it at once.
	stop := context.AfterFunc(ctx, func() { s.Close() })
	fail := func(err error) (*http.Response, error) {
		stop()
		s.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if err := req.Write(s.bw); err != nil {
		return fail(err)
	}
	if err := s.bw.Flush(); err != nil {
		return fail(err)
	}
	resp, err := t.readHead(s, req)
	if err == nil && ctx.Err() != nil {
		// An answer that came after the cancel, to the stream's close,
		// is not this request's.
		resp.Body.Close()
		err = ctx.Err()
	}
	if err != nil {
		return fail(err)
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody || resp.Body == nil {
		if stop() && keep {
			t.put(s)
		} else {
			s.Close()
		}
		return resp, nil
	}
	resp.Body = &streamBody{ReadCloser: resp.Body, t: t, s: s, stop: stop, keep: keep}
	return resp, nil
}

// readHead reads the answer's head, after any informational answers
// (100 Continue, 103), within MaxResponseHeaderBytes for all of them.
func (t *Transport) readHead(s *stream, req *http.Request) (*http.Response, error) {
	limit := t.MaxResponseHeaderBytes
	if limit <= 0 {
		limit = 1 << 20
	}
	s.head.left = limit
	defer func() { s.head.left = math.MaxInt64 }()
	for n1xx := 0; ; n1xx++ {
		resp, err := http.ReadResponse(s.br, req)
		if err != nil {
			if s.head.left <= 0 {
				return nil, fmt.Errorf("tunnel: the runner's answer header is over %s", size(limit))
			}
			return nil, err
		}
		if resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if n1xx == max1xx {
			return nil, errTooMany1xx
		}
	}
}

// size says n bytes the way a person would.
func size(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// get takes a kept stream, or opens one.
func (t *Transport) get(ctx context.Context) (*stream, bool, error) {
	t.mu.Lock()
	if n := len(t.idle); n > 0 {
		s := t.idle[n-1]
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		return s, true, nil
	}
	t.mu.Unlock()
	c, err := t.Open(ctx)
	if err != nil {
		return nil, false, err
	}
	s := &stream{Conn: c, head: headLimit{r: c, left: math.MaxInt64}, bw: bufio.NewWriter(c)}
	s.br = bufio.NewReader(&s.head)
	return s, false, nil
}

func (t *Transport) put(s *stream) {
	t.mu.Lock()
	max := t.MaxIdle
	if max == 0 {
		max = 16
	}
	if !t.closed && len(t.idle) < max {
		t.idle = append(t.idle, s)
		s = nil
	}
	t.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// CloseIdleConnections closes the kept streams and keeps no more.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.closed = nil, true
	t.mu.Unlock()
	for _, s := range idle {
		s.Close()
	}
}

// streamBody gives its stream back once the answer was read to its end.
type streamBody struct {
	io.ReadCloser
	t    *Transport
	s    *stream
	stop func() bool
	keep bool
	eof  atomic.Bool
	once sync.Once
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

func (b *streamBody) Close() error {
	b.once.Do(func() {
		if !b.eof.Load() {
			// An answer left half read: end the stream first, or closing
			// the body would read it to its end (a followed log never
			// ends).
			b.stop()
			b.s.Close()
			b.ReadCloser.Close()
			return
		}
		err := b.ReadCloser.Close()
		if b.stop() && b.keep && err == nil {
			b.t.put(b.s)
			return
		}
		b.s.Close()
	})
	return nil
}
