package mux

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// TestAcceptACKsAtOnce: hashicorp/yamux (v0.1.2) closes the whole session
// when a stream it opened is not ACKed within StreamOpenTimeout, and caps
// un-ACKed streams at AcceptBacklog; a handler that takes a while to answer
// must not bring either about.
func TestAcceptACKsAtOnce(t *testing.T) {
	// A yamux client opens a stream and writes a request; a mux server
	// accepts it and reads the request, and its handler takes its time.
	request := func(t *testing.T, cfg *yamux.Config, n int) *yamux.Session {
		c, s := conns(t)
		yc, err := yamux.Client(c, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { yc.Close() })
		srv := Server(s, testConfig())
		t.Cleanup(func() { srv.Close() })
		for range n {
			ys, err := yc.Open()
			if err != nil {
				t.Fatal(err)
			}
			ys.Write([]byte("req"))
			st, err := srv.Accept()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(st, make([]byte, 3)); err != nil {
				t.Fatal(err)
			}
		}
		return yc
	}
	t.Run("open-timeout", func(t *testing.T) {
		cfg := yamuxConfig()
		// Generous: the ACK must beat it even on a loaded machine.
		cfg.StreamOpenTimeout = time.Second
		yc := request(t, cfg, 1)
		time.Sleep(2 * time.Second) // the handler is still working
		if yc.IsClosed() {
			t.Fatal("the yamux peer closed its session: mux never ACKed the stream it accepted and read from")
		}
	})
	t.Run("syn-backlog", func(t *testing.T) {
		cfg := yamuxConfig()
		cfg.AcceptBacklog = 2
		cfg.StreamOpenTimeout = 0
		yc := request(t, cfg, 2)
		opened := make(chan error, 1)
		go func() { _, err := yc.Open(); opened <- err }()
		select {
		case <-opened:
		case <-time.After(10 * time.Second):
			t.Fatal("yamux Open blocks: streams mux accepted and read from are still un-ACKed")
		}
	})
}

// TestCloseRacingFirstWrite: a Close racing a stream's first Write (the
// transport closes from context.AfterFunc while a request is written)
// either keeps the stream from the peer altogether or ends it there: the
// peer never keeps a stream nobody will end.
func TestCloseRacingFirstWrite(t *testing.T) {
	cli, srv := pair(t, testConfig())
	go func() {
		for {
			b, err := srv.Accept()
			if err != nil {
				return
			}
			go func() {
				b.SetReadDeadline(time.Now().Add(30 * time.Second))
				if _, err := io.ReadAll(b); err != nil && !errors.Is(err, ErrStreamReset) {
					t.Errorf("the peer's stream %d: %v, want its end", b.ID(), err)
				}
				b.Close()
			}()
		}
	}()
	for range 200 {
		a, err := cli.Open()
		if err != nil {
			t.Fatal(err)
		}
		go a.Write([]byte("x"))
		a.Close()
	}
	waitStreams(t, srv, 0)
}

// TestFloodEndsSession: a peer that sends frames needing an answer (pings,
// SYNs over the accept backlog) and does not read the answers ends its
// session; it cannot make goroutines or queues pile up.
func TestFloodEndsSession(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame func(i uint32) []byte
	}{
		{"ping", func(i uint32) []byte { return frame(typePing, flagSYN, 0, i) }},
		{"syn-over-backlog", func(i uint32) []byte { return frame(typeWindowUpdate, flagSYN, 2*i+1, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := net.Pipe()
			defer c.Close()
			srv := Server(s, Config{WriteTimeout: 5 * time.Second, AcceptBacklog: 1})
			defer srv.Close()
			base := settledGoroutines()
			var flood []byte
			for i := range uint32(3000) {
				flood = append(flood, tc.frame(i+1)...)
			}
			c.SetWriteDeadline(time.Now().Add(3 * time.Second))
			c.Write(flood) // never reads what srv writes; srv hangs up
			if n := runtime.NumGoroutine() - base; n > 100 {
				t.Fatalf("%d goroutines from 3000 frames of a peer that does not read", n)
			}
			<-srv.Done()
			if !errors.Is(srv.Err(), ErrProtocol) {
				t.Fatalf("session ended with %v, want a protocol error", srv.Err())
			}
		})
	}
}

// TestCloseWakesAllReaders: net.Conn's "any blocked Read or Write
// operations will be unblocked", for Close and for a deadline set from
// elsewhere, however many are blocked.
func TestCloseWakesAllReaders(t *testing.T) {
	for _, how := range []string{"close", "deadline"} {
		t.Run(how, func(t *testing.T) {
			cli, srv := pair(t, testConfig())
			a, _ := cli.Open()
			a.Write([]byte("x"))
			b, _ := srv.Accept()
			io.ReadFull(b, make([]byte, 1))
			errs := make(chan error, 2)
			for range 2 {
				go func() { _, err := b.Read(make([]byte, 1)); errs <- err }()
			}
			time.Sleep(50 * time.Millisecond)
			if how == "close" {
				b.Close()
			} else {
				b.SetReadDeadline(time.Unix(1, 0))
			}
			for i := range 2 {
				select {
				case <-errs:
				case <-time.After(10 * time.Second):
					t.Fatalf("read %d of 2 still blocked after %s", i+1, how)
				}
			}
		})
	}
}

// TestOwnParitySYNEndsSession: a SYN with an ID of this side's parity
// would share an ID with a stream Open hands out later: a protocol error.
func TestOwnParitySYNEndsSession(t *testing.T) {
	c, s := conns(t)
	cli := Client(s, testConfig()) // odd IDs are the client's
	defer cli.Close()
	c.Write(frame(typeWindowUpdate, flagSYN, 1, 0))
	<-cli.Done()
	if !errors.Is(cli.Err(), ErrProtocol) {
		t.Fatalf("session ended with %v, want a protocol error", cli.Err())
	}
}

// TestShutdownStopsCloseTimers: a closed stream's timer (waiting for the
// peer's FIN) would keep it and its session alive for minutes after the
// session ended.
func TestShutdownStopsCloseTimers(t *testing.T) {
	cli, srv := pair(t, testConfig())
	a, _ := cli.Open()
	a.Write([]byte("x"))
	srv.Accept() // never closed: no FIN comes back
	a.Close()
	cli.Close()
	<-cli.Done()
	a.mu.Lock()
	running := a.closeTimer != nil
	a.mu.Unlock()
	if running {
		t.Fatal("the session ended but the stream's close timer still runs (2 min)")
	}
}

// TestSessionWriteTimeoutIsNotStreamTimeout: a session ended by a stuck
// connection is not a timeout of a stream that has no deadline (callers
// that retry on timeouts would spin on a dead session).
func TestSessionWriteTimeoutIsNotStreamTimeout(t *testing.T) {
	c, s := net.Pipe()
	defer c.Close()
	cli := Client(s, Config{WriteTimeout: 50 * time.Millisecond})
	defer cli.Close()
	a, _ := cli.Open()
	a.Write([]byte("x")) // nobody reads c: the write times out
	<-cli.Done()
	_, err := a.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("Read on a stream without deadline: %v (Timeout() = true)", err)
	}
}

// settledGoroutines waits for goroutines an earlier test left to end.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 100 {
		time.Sleep(10 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return m
		}
		n = m
	}
	return n
}

// TestWindowLeavesOutBytesInFlight: a Read in the middle of a frame grants
// window only for bytes that are in; what the peer may have unread here
// stays within the window.
func TestWindowLeavesOutBytesInFlight(t *testing.T) {
	c, s := conns(t)
	cfg := testConfig()
	cfg.Window = initialWindow
	srv := Server(s, cfg)
	defer srv.Close()
	const frameLen, sent = initialWindow, 3 * chunkSize
	c.Write(append(frame(typeData, flagSYN, 1, frameLen), make([]byte, sent)...))
	st, err := srv.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(st, make([]byte, sent)); err != nil {
		t.Fatal(err)
	}
	// The window updates that came back (the ACK has none).
	granted := uint32(0)
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for h := make([]byte, headerSize); ; {
		if _, err := io.ReadFull(c, h); err != nil {
			break
		}
		granted += binary.BigEndian.Uint32(h[8:12])
	}
	if unread := frameLen - sent + granted; unread > cfg.Window {
		t.Fatalf("after reading %d of a %d-byte frame the window updates grant %d: %d bytes may sit unread, over the %d window",
			sent, frameLen, granted, unread, cfg.Window)
	}
}

// TestPartialFrameReadable: the part of a large frame that has arrived
// can be read before the rest comes.
func TestPartialFrameReadable(t *testing.T) {
	c, s := conns(t)
	srv := Server(s, testConfig())
	defer srv.Close()
	c.Write(append(frame(typeData, flagSYN, 1, 100<<10), make([]byte, 10<<10)...))
	st, err := srv.Accept()
	if err != nil {
		t.Fatal(err)
	}
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := st.Read(make([]byte, 10<<10)); err != nil {
		t.Fatalf("10 KiB of a 100 KiB frame arrived, Read got %d, %v", n, err)
	}
}

// TestKeepAliveShortWriteTimeout: with a write timeout under half the
// interval, an idle but healthy session still pings before it would call
// its peer dead.
func TestKeepAliveShortWriteTimeout(t *testing.T) {
	cli, srv := pair(t, Config{KeepAliveInterval: 400 * time.Millisecond, WriteTimeout: 100 * time.Millisecond})
	time.Sleep(2 * time.Second) // idle for five intervals
	if cli.Err() != nil || srv.Err() != nil {
		t.Fatalf("an idle healthy session ended: client %v, server %v", cli.Err(), srv.Err())
	}
}

// TestSlowDiscardIsNotSilence: data for a stream closed here, arriving
// slowly, is thrown away, but it is still the peer speaking.
func TestSlowDiscardIsNotSilence(t *testing.T) {
	c, s := conns(t)
	go io.Copy(io.Discard, c) // the peer reads what it is sent
	srv := Server(s, Config{KeepAliveInterval: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, Window: initialWindow})
	defer srv.Close()
	c.Write(append(frame(typeData, flagSYN, 1, 1), 'x'))
	st, err := srv.Accept()
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	const n = 200 // one byte every 10 ms: two seconds for the frame
	c.Write(frame(typeData, 0, 1, n))
	for range n {
		if _, err := c.Write([]byte{0}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := srv.Err(); err != nil {
		t.Fatalf("the session ended while the peer was sending: %v", err)
	}
}

// warnings counts the lines logged at Warn and above.
type warnings struct{ n atomic.Int64 }

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(context.Context, slog.Record) error    { w.n.Add(1); return nil }
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler           { return w }
func (w *warnings) WithGroup(string) slog.Handler                { return w }

// TestMaxStreams: streams the peer opens past MaxStreams are reset, with
// one warning, and the session goes on; closing streams frees their
// slots. Without the bound a peer's idle streams took the control plane
// to 1.94 GiB.
func TestMaxStreams(t *testing.T) {
	const allowed, over = 4, 3
	cfg := testConfig()
	cfg.MaxStreams = allowed
	var warned warnings
	c, s := conns(t)
	cli := Client(c, cfg)
	cfg.Log = slog.New(&warned)
	srv := Server(s, cfg)
	t.Cleanup(func() { cli.Close(); srv.Close() })

	// open opens a stream and sends a byte: n of them are accepted, the
	// rest reset.
	open := func(n, reset int) (as, bs []*Stream) {
		t.Helper()
		for range n + reset {
			a, err := cli.Open()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			as = append(as, a)
		}
		for range n {
			b, err := srv.Accept()
			if err != nil {
				t.Fatal(err)
			}
			bs = append(bs, b)
		}
		for i, a := range as[n:] {
			a.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := a.Read(make([]byte, 1)); !errors.Is(err, ErrStreamReset) {
				t.Fatalf("stream %d of %d past the %d allowed: read %v, want %v", i+1, reset, allowed, err, ErrStreamReset)
			}
			if _, err := a.Write([]byte("x")); !errors.Is(err, ErrStreamReset) {
				t.Fatalf("stream %d of %d past the %d allowed: write %v, want %v", i+1, reset, allowed, err, ErrStreamReset)
			}
		}
		return as[:n], bs
	}
	// echo checks that stream a still carries data both ways.
	echo := func(a, b *Stream) {
		t.Helper()
		if _, err := io.ReadFull(b, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		b.Write([]byte("y"))
		a.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(a, make([]byte, 1)); err != nil {
			t.Fatalf("an accepted stream after others were reset: %v", err)
		}
	}

	as, bs := open(allowed, over)
	for i := range as {
		echo(as[i], bs[i])
	}
	if n := warned.n.Load(); n != 1 {
		t.Errorf("%d warnings for %d streams reset at once, want 1", n, over)
	}
	// Two closed on both sides make room for two more, and no more.
	for i := range 2 {
		as[i].Close()
		bs[i].Close()
	}
	waitStreams(t, srv, allowed-2)
	as, bs = open(2, 1)
	for i := range as {
		echo(as[i], bs[i])
	}
	if err := srv.Err(); err != nil {
		t.Fatalf("the session ended: %v", err)
	}
}

// TestMaxRefused: a peer that keeps opening streams past its limit is cut
// off once it was refused MaxRefused of them.
func TestMaxRefused(t *testing.T) {
	cfg := testConfig()
	cfg.MaxStreams, cfg.MaxRefused = 2, 5
	c, s := conns(t)
	cli := Client(c, testConfig())
	srv := Server(s, cfg)
	t.Cleanup(func() { cli.Close(); srv.Close() })
	for i := range 2 + 5 {
		a, err := cli.Open()
		if err != nil {
			t.Fatal(err)
		}
		a.Write([]byte("x"))
		if i < 2 {
			srv.Accept()
		}
	}
	// Five refused: still served.
	time.Sleep(100 * time.Millisecond)
	if err := srv.Err(); err != nil {
		t.Fatalf("the session ended after %d refusals: %v", cfg.MaxRefused, err)
	}
	a, _ := cli.Open()
	a.Write([]byte("x"))
	select {
	case <-srv.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a peer refused its sixth stream of five allowed refusals still has its session")
	}
	if err := srv.Err(); !errors.Is(err, errRefused) {
		t.Errorf("the session ended with %v, want %v", err, errRefused)
	}
}

// TestUnreadDataBounded: what a peer sends on streams that are not read
// stays within 256 KiB a stream, and what reading grows the windows by
// within SessionWindow for all of them. Without that, streams read a
// little and then left each took Window (16 MiB in the tunnel).
func TestUnreadDataBounded(t *testing.T) {
	const streams = 100
	for _, tc := range []struct {
		name string
		read int // what is read of each stream before it is left
	}{
		{"never-read", 0},
		{"read-then-left", 200 << 10}, // past half the initial window: grows
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.SessionWindow = 2 << 20
			cli, srv := pair(t, cfg)
			buf := make([]byte, 2*cfg.Window)
			for range streams {
				a, err := cli.Open()
				if err != nil {
					t.Fatal(err)
				}
				go a.Write(buf) // until the session ends
				b, err := srv.Accept()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(b, make([]byte, tc.read)); err != nil {
					t.Fatal(err)
				}
			}
			most := streams*initialWindow + int(cfg.SessionWindow)
			var n int
			for filled, start := false, time.Now(); !filled; time.Sleep(20 * time.Millisecond) {
				if n, filled = unread(srv); n > most {
					t.Fatalf("%d bytes unread on %d streams, over %d (256 KiB a stream and SessionWindow)", n, streams, most)
				}
				if time.Since(start) > 20*time.Second {
					t.Fatalf("the writers did not fill the windows (%d bytes unread)", n)
				}
			}
			if tc.read == 0 && n != streams*initialWindow {
				t.Errorf("%d bytes unread on %d streams never read, want %d: all the initial windows", n, streams, streams*initialWindow)
			}
			if err := srv.Err(); err != nil {
				t.Fatalf("the session ended: %v", err)
			}
		})
	}
}

// unread is what s holds received and not read, all streams together, and
// whether every window the peer was given is used up: no more will come.
func unread(s *Session) (n int, filled bool) {
	s.mu.Lock()
	streams := make([]*Stream, 0, len(s.streams))
	for _, st := range s.streams {
		streams = append(streams, st)
	}
	s.mu.Unlock()
	filled = true
	for _, st := range streams {
		st.mu.Lock()
		n += st.buffered
		filled = filled && st.recvWindow == 0 && st.inflight == 0
		st.mu.Unlock()
	}
	return n, filled
}

// TestEndedStreamFreesAll: a stream the peer resets, or that both sides
// close, gives back its slot, its unread data and its window growth.
func TestEndedStreamFreesAll(t *testing.T) {
	for _, how := range []string{"reset", "close"} {
		t.Run(how, func(t *testing.T) {
			c, s := conns(t)
			go io.Copy(io.Discard, c)
			srv := Server(s, testConfig())
			defer srv.Close()
			const streams = 10
			var bs []*Stream
			for i := range uint32(streams) {
				id := 2*i + 1
				c.Write(append(frame(typeData, flagSYN, id, initialWindow), make([]byte, initialWindow)...))
				b, err := srv.Accept()
				if err != nil {
					t.Fatal(err)
				}
				// Read past half the window: it grows.
				if _, err := io.ReadFull(b, make([]byte, 200<<10)); err != nil {
					t.Fatal(err)
				}
				bs = append(bs, b)
			}
			if srv.grown.Load() == 0 {
				t.Fatal("no window grew: the test tests nothing")
			}
			for i, b := range bs {
				if how == "close" {
					b.Close()
					c.Write(frame(typeWindowUpdate, flagFIN, uint32(2*i+1), 0))
				} else {
					c.Write(frame(typeWindowUpdate, flagRST, uint32(2*i+1), 0))
				}
			}
			waitStreams(t, srv, 0)
			for _, b := range bs {
				b.mu.Lock()
				left := len(b.queue) + b.buffered
				b.mu.Unlock()
				if left != 0 {
					t.Fatalf("stream %d keeps %d chunks and %d bytes", b.ID(), len(b.queue), b.buffered)
				}
			}
			srv.mu.Lock()
			theirs := srv.theirs
			srv.mu.Unlock()
			if theirs != 0 || srv.grown.Load() != 0 {
				t.Fatalf("after all streams ended: %d counted open, windows grown by %d", theirs, srv.grown.Load())
			}
		})
	}
}
