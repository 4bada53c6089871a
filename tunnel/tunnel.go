// Package tunnel is the wire protocol runners and the control plane share:
// one TLS 1.3 connection, chosen on the control plane's port by ALPN,
// multiplexed with the yamux protocol (package mux). Every stream starts
// with a 4-byte header naming its kind; HTTP/1.1 runs over the streams in
// both directions (the control plane calls the runner's local API, the
// runner posts heartbeats).
package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cameleer/cameleer/tunnel/mux"
)

// ALPN selects the tunnel on the control plane's TLS port.
const ALPN = "cameleer-tunnel/1"

// Keepalive timing: a side that heard nothing for KeepAliveInterval pings;
// one that heard nothing for KeepAliveInterval + KeepAliveTimeout (12 s)
// ends the tunnel. Checked twice an interval: a dead peer is noticed
// within 14.5 s.
const (
	KeepAliveInterval = 5 * time.Second
	KeepAliveTimeout  = 7 * time.Second
	// StreamWindow is each stream's receive window. yamux's default
	// (256 KiB) caps one stream at window/RTT; 16 MiB lets one stream fill
	// the link on any sensible RTT.
	StreamWindow = 16 << 20
	// MaxStreams is how many streams the control plane may have open to a
	// runner at once (one for each request in flight to it: deployments,
	// what operators proxy); more are reset.
	MaxStreams = 256
	// MaxRunnerStreams is how many a runner may have open to the control
	// plane: it keeps a few (heartbeats, reports, renewals, an artifact
	// download). It bounds what a hostile runner can make the control
	// plane hold: a stream nobody reads holds at most 256 KiB unread, 16
	// MiB for all, and reading grows the streams' windows past that by
	// RunnerSessionWindow at most, all together: 48 MiB a runner. A runner
	// refused more than MaxRunnerStreams streams within 10 s is cut off.
	MaxRunnerStreams    = 64
	RunnerSessionWindow = 2 * StreamWindow
)

// muxConfig is the multiplexer configuration both sides use.
func muxConfig(log *slog.Logger) mux.Config {
	return mux.Config{KeepAliveInterval: KeepAliveInterval, WriteTimeout: KeepAliveTimeout, Window: StreamWindow, MaxStreams: MaxStreams, Log: log}
}

// serverConfig is the control plane's: what its runner may open is held
// tighter than what it may open to its runner.
func serverConfig(log *slog.Logger) mux.Config {
	cfg := muxConfig(log)
	cfg.MaxStreams, cfg.SessionWindow, cfg.MaxRefused = MaxRunnerStreams, RunnerSessionWindow, MaxRunnerStreams
	return cfg
}

// Kind is what a stream carries.
type Kind byte

// Stream kinds.
const (
	// KindHTTP carries HTTP/1.1: the opener is the client.
	KindHTTP Kind = 1
)

// Version of the stream header.
const Version = 1

var magic = [2]byte{'C', 'T'}

// HeaderSize is the length of a stream header.
const HeaderSize = 4

// ErrBadHeader is a stream that does not start with a valid header.
var ErrBadHeader = errors.New("tunnel: bad stream header")

// AppendHeader appends the header of a stream of kind k.
func AppendHeader(b []byte, k Kind) []byte {
	return append(b, magic[0], magic[1], Version, byte(k))
}

// ParseHeader reads a stream header.
func ParseHeader(b []byte) (Kind, error) {
	if len(b) != HeaderSize || b[0] != magic[0] || b[1] != magic[1] {
		return 0, ErrBadHeader
	}
	if b[2] != Version {
		return 0, fmt.Errorf("%w: version %d, want %d", ErrBadHeader, b[2], Version)
	}
	k := Kind(b[3])
	if k != KindHTTP {
		return 0, fmt.Errorf("%w: unknown kind %d", ErrBadHeader, b[3])
	}
	return k, nil
}

// Session is one side of a tunnel.
type Session struct {
	mux  *mux.Session
	http chan net.Conn
	done chan struct{}
	once sync.Once
}

// Server starts the control plane's side of a tunnel over conn.
func Server(conn net.Conn, log *slog.Logger) *Session {
	return start(mux.Server(conn, serverConfig(log)), log)
}

// Client starts the runner's side of a tunnel over conn.
func Client(conn net.Conn, log *slog.Logger) *Session {
	return start(mux.Client(conn, muxConfig(log)), log)
}

func start(m *mux.Session, log *slog.Logger) *Session {
	s := &Session{mux: m, http: make(chan net.Conn), done: make(chan struct{})}
	go s.accept(log)
	return s
}

// accept reads each new stream's header and hands it to the listener of its
// kind. Headers are read in their own goroutine, so a peer that opens a
// stream and says nothing holds up nothing.
func (s *Session) accept(log *slog.Logger) {
	defer s.Close()
	for {
		c, err := s.mux.Accept()
		if err != nil {
			return
		}
		go func() {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			var h [HeaderSize]byte
			if _, err := io.ReadFull(c, h[:]); err != nil {
				c.Close()
				return
			}
			if _, err := ParseHeader(h[:]); err != nil {
				log.Warn("tunnel stream refused", "err", err)
				c.Close()
				return
			}
			c.SetReadDeadline(time.Time{})
			select {
			case s.http <- c:
			case <-s.done:
				c.Close()
			}
		}()
	}
}

// Open opens a stream of kind k to the peer. The stream's header goes out
// with its first write, in the same frame.
func (s *Session) Open(ctx context.Context, k Kind) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := s.mux.Open()
	if err != nil {
		return nil, fmt.Errorf("tunnel: open stream: %w", err)
	}
	return &opened{Stream: st, hdr: AppendHeader(make([]byte, 0, HeaderSize), k)}, nil
}

// opened is a stream this side opened. Its header goes out with its
// first write; a read does not send it (the opener of an HTTP stream
// writes the request before any answer can come).
type opened struct {
	*mux.Stream
	sent atomic.Bool
	mu   sync.Mutex // held while the header goes out, so no write overtakes it
	hdr  []byte
}

func (o *opened) Write(p []byte) (int, error) {
	if !o.sent.Load() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if !o.sent.Load() {
			// Set once the header is out: a write that sees it set
			// comes after.
			defer o.sent.Store(true)
			if len(p) <= 16<<10 {
				n, err := o.Stream.Write(append(o.hdr, p...))
				return max(0, n-len(o.hdr)), err
			}
			if _, err := o.Stream.Write(o.hdr); err != nil {
				return 0, err
			}
		}
	}
	return o.Stream.Write(p)
}

// CloseWrite ends this side's writing, the header first if nothing was
// written: the peer then sees an empty stream of its kind.
func (o *opened) CloseWrite() error {
	if _, err := o.Write(nil); err != nil {
		return err
	}
	return o.Stream.CloseWrite()
}

// Listener is the HTTP streams the peer opens, for an http.Server. Closing
// it stops its Accept, not the session.
func (s *Session) Listener() net.Listener { return &listener{s: s, closed: make(chan struct{})} }

// Ping measures the round trip to the peer.
func (s *Session) Ping() (time.Duration, error) { return s.mux.Ping() }

// NumStreams is how many streams are open.
func (s *Session) NumStreams() int { return s.mux.NumStreams() }

// Done is closed when the session ends.
func (s *Session) Done() <-chan struct{} { return s.done }

// Close ends the session and its connection.
func (s *Session) Close() error {
	s.once.Do(func() { close(s.done) })
	return s.mux.Close()
}

// RemoteAddr is the peer's address.
func (s *Session) RemoteAddr() net.Addr { return s.mux.RemoteAddr() }

type listener struct {
	s      *Session
	once   sync.Once
	closed chan struct{}
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.s.http:
		return c, nil
	case <-l.s.done:
		return nil, net.ErrClosed
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *listener) Addr() net.Addr { return l.s.mux.LocalAddr() }
