package mux

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// conns connects two ends over TCP on loopback.
func conns(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

func testConfig() Config { return Config{Window: 1 << 20, WriteTimeout: 5 * time.Second} }

func pair(t testing.TB, cfg Config) (*Session, *Session) {
	c, s := conns(t)
	cli, srv := Client(c, cfg), Server(s, cfg)
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return cli, srv
}

// peer is what the tests need of either implementation.
type peer interface {
	open() (net.Conn, error)
	accept() (net.Conn, error)
	halfClose(net.Conn) error
}

type ours struct{ *Session }

func (o ours) open() (net.Conn, error)   { return o.Open() }
func (o ours) accept() (net.Conn, error) { return o.Accept() }
func (ours) halfClose(c net.Conn) error  { return c.(*Stream).CloseWrite() }

type theirs struct{ *yamux.Session }

func (y theirs) open() (net.Conn, error)   { return y.Open() }
func (y theirs) accept() (net.Conn, error) { return y.Accept() }

// yamux's Close is a half-close.
func (theirs) halfClose(c net.Conn) error { return c.Close() }

func yamuxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.LogOutput = io.Discard
	return c
}

// echo serves every stream p accepts by sending back what it reads.
func echo(p peer) {
	for {
		c, err := p.accept()
		if err != nil {
			return
		}
		go func() {
			io.Copy(c, c)
			p.halfClose(c)
		}()
	}
}

// TestInterop sends data through concurrent streams and checks that it
// comes back whole, between two mux sessions and between mux and
// hashicorp/yamux either way round.
func TestInterop(t *testing.T) {
	cases := []struct {
		name string
		mk   func(t *testing.T) (client, server peer)
	}{
		{"mux-mux", func(t *testing.T) (peer, peer) {
			c, s := pair(t, testConfig())
			return ours{c}, ours{s}
		}},
		{"mux-client-yamux-server", func(t *testing.T) (peer, peer) {
			c, s := conns(t)
			ys, err := yamux.Server(s, yamuxConfig())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ys.Close() })
			return ours{Client(c, testConfig())}, theirs{ys}
		}},
		{"yamux-client-mux-server", func(t *testing.T) (peer, peer) {
			c, s := conns(t)
			yc, err := yamux.Client(c, yamuxConfig())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { yc.Close() })
			return theirs{yc}, ours{Server(s, testConfig())}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, server := tc.mk(t)
			go echo(server)
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for i := range 8 {
				wg.Go(func() {
					if err := roundTrip(client, 1<<20+i*7919); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// roundTrip sends size random bytes in odd-sized writes on a new stream
// and reads them back.
func roundTrip(p peer, size int) error {
	c, err := p.open()
	if err != nil {
		return err
	}
	defer c.Close()
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(rand.N(256))
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c)
		got <- b
	}()
	for rest := want; len(rest) > 0; {
		n := min(len(rest), 1+rand.N(70000))
		if _, err := c.Write(rest[:n]); err != nil {
			return err
		}
		rest = rest[n:]
	}
	if err := p.halfClose(c); err != nil {
		return err
	}
	if b := <-got; !bytes.Equal(b, want) {
		return errors.New("echo differs from what was sent")
	}
	return nil
}

func TestPing(t *testing.T) {
	c, s := conns(t)
	ys, err := yamux.Server(s, yamuxConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ys.Close()
	m := Client(c, testConfig())
	defer m.Close()
	if _, err := m.Ping(); err != nil {
		t.Fatalf("mux pings yamux: %v", err)
	}
	if _, err := ys.Ping(); err != nil {
		t.Fatalf("yamux pings mux: %v", err)
	}
}

func TestCloseEndsBothWays(t *testing.T) {
	cli, srv := pair(t, testConfig())
	a, err := cli.Open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	b, err := srv.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(io.LimitReader(b, 2)); err != nil || string(got) != "hi" {
		t.Fatalf("read %q, %v", got, err)
	}
	// b's side closes: a reads EOF, and a's writes are refused with a
	// reset once b sees them.
	b.Close()
	if n, err := a.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer's Close: %d, %v; want EOF", n, err)
	}
	var werr error
	for range 1000 {
		if _, werr = a.Write([]byte("more")); werr != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.Is(werr, ErrStreamReset) {
		t.Fatalf("write to a closed peer: %v, want %v", werr, ErrStreamReset)
	}
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("read after Close: %v", err)
	}
	waitStreams(t, cli, 0)
	waitStreams(t, srv, 0)
}

func waitStreams(t *testing.T, s *Session, n int) {
	t.Helper()
	for range 1000 {
		if s.NumStreams() == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d streams open, want %d", s.NumStreams(), n)
}

func TestDeadlines(t *testing.T) {
	cli, srv := pair(t, Config{WriteTimeout: 5 * time.Second})
	a, _ := cli.Open()
	a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := a.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}
	// A deadline set from elsewhere ends a waiting Read.
	a.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	a.SetReadDeadline(time.Unix(1, 0))
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read ended by a past deadline: %v", err)
	}
	// A write waits for the window until its deadline: the peer reads
	// nothing, so the initial window is all it gets.
	if _, err := srv.Accept(); err != nil {
		t.Fatal(err)
	}
	a.SetWriteDeadline(time.Now().Add(time.Second))
	n, err := a.Write(make([]byte, initialWindow+1))
	if n != initialWindow || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write beyond the window: %d, %v", n, err)
	}
}

func TestSessionCloseUnblocks(t *testing.T) {
	cli, srv := pair(t, testConfig())
	a, _ := cli.Open()
	a.Write([]byte("x"))
	if _, err := srv.Accept(); err != nil {
		t.Fatal(err)
	}
	reads, writes := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 1))
		reads <- err
	}()
	go func() {
		_, err := a.Write(make([]byte, 4<<20))
		writes <- err
	}()
	time.Sleep(20 * time.Millisecond)
	srv.Close()
	if err := <-reads; !errors.Is(err, net.ErrClosed) {
		t.Errorf("read when the session ended: %v", err)
	}
	if err := <-writes; err == nil {
		t.Error("write when the session ended: no error")
	}
	<-cli.Done()
	if _, err := cli.Open(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("open on an ended session: %v", err)
	}
}

// raw is a peer that speaks frames by hand.
func frame(typ uint8, flags uint16, id, length uint32) []byte {
	h := make([]byte, headerSize)
	h[1] = typ
	binary.BigEndian.PutUint16(h[2:4], flags)
	binary.BigEndian.PutUint32(h[4:8], id)
	binary.BigEndian.PutUint32(h[8:12], length)
	return h
}

func TestWindowExceededEndsSession(t *testing.T) {
	c, s := conns(t)
	srv := Server(s, testConfig())
	defer srv.Close()
	over := initialWindow + 1
	c.Write(append(frame(typeData, flagSYN, 1, uint32(over)), make([]byte, over)...))
	<-srv.Done()
	if err := srv.Err(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("session ended with %v, want a protocol error", err)
	}
	// The peer is told why.
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	h := make([]byte, headerSize)
	if _, err := io.ReadFull(c, h); err != nil || h[1] != typeGoAway || binary.BigEndian.Uint32(h[8:]) != goAwayProtoErr {
		t.Fatalf("go away frame: % x, %v", h, err)
	}
}

func TestBacklogResets(t *testing.T) {
	c, s := conns(t)
	cfg := testConfig()
	cfg.AcceptBacklog = 1
	srv := Server(s, cfg)
	defer srv.Close()
	c.Write(frame(typeWindowUpdate, flagSYN, 1, 0))
	c.Write(frame(typeWindowUpdate, flagSYN, 3, 0))
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	h := make([]byte, headerSize)
	if _, err := io.ReadFull(c, h); err != nil {
		t.Fatal(err)
	}
	if binary.BigEndian.Uint32(h[4:8]) != 3 || binary.BigEndian.Uint16(h[2:4])&flagRST == 0 {
		t.Fatalf("want stream 3 reset, got % x", h)
	}
	if st, err := srv.Accept(); err != nil || st.ID() != 1 {
		t.Fatalf("accept: %v %v", st, err)
	}
}

func TestKeepAliveEndsSilentPeer(t *testing.T) {
	c, _ := conns(t) // the other end never answers
	cli := Client(c, Config{KeepAliveInterval: 20 * time.Millisecond, WriteTimeout: 50 * time.Millisecond})
	<-cli.Done()
	if !errors.Is(cli.Err(), ErrKeepAlive) {
		t.Fatalf("session ended with %v, want %v", cli.Err(), ErrKeepAlive)
	}
}

// TestIdleStreamHoldsNoChunk: memory per idle connected runner must not
// grow with the streams it keeps open.
func TestIdleStreamHoldsNoChunk(t *testing.T) {
	cli, srv := pair(t, testConfig())
	a, _ := cli.Open()
	a.Write([]byte("ping"))
	b, _ := srv.Accept()
	io.ReadFull(b, make([]byte, 4))
	st := b
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.queue) != 0 || st.buffered != 0 {
		t.Fatalf("a drained stream keeps %d chunks", len(st.queue))
	}
}

// FuzzSession feeds arbitrary bytes to a session: it must end cleanly,
// never panic or hang.
func FuzzSession(f *testing.F) {
	f.Add(frame(typeData, flagSYN, 1, 3))
	f.Add(append(frame(typeData, flagSYN, 1, 3), 'a', 'b', 'c'))
	f.Add(append(frame(typeWindowUpdate, flagSYN, 2, 100), frame(typeData, flagFIN|flagRST, 2, 0)...))
	f.Add(frame(typePing, flagSYN, 0, 7))
	f.Add(frame(typeGoAway, 0, 0, 1))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, in []byte) {
		c, s := net.Pipe()
		srv := Server(s, Config{WriteTimeout: 100 * time.Millisecond})
		go io.Copy(io.Discard, c)
		go func() {
			for {
				st, err := srv.Accept()
				if err != nil {
					return
				}
				go io.Copy(io.Discard, st)
			}
		}()
		c.Write(in)
		c.Close()
		<-srv.Done()
	})
}

// TestSmallReadsBigWindow reads a bulk transfer in 8 KiB pieces, as
// io.Copy does, while frames are still arriving: window updates computed
// mid-frame must never grant more than the receiver accounts for.
func TestSmallReadsBigWindow(t *testing.T) {
	cfg := testConfig()
	cfg.Window = 16 << 20
	for range 5 {
		// A pipe hands frames over in the pieces the reader asks for,
		// as TLS hands them over a record at a time.
		c, s := net.Pipe()
		cli, srv := Client(c, cfg), Server(s, cfg)
		defer cli.Close()
		defer srv.Close()
		got := make(chan int64, 1)
		go func() {
			st, err := srv.Accept()
			if err != nil {
				got <- -1
				return
			}
			n, _ := io.CopyBuffer(io.Discard, struct{ io.Reader }{st}, make([]byte, 8<<10))
			got <- n
		}()
		a, _ := cli.Open()
		buf := make([]byte, 1<<20)
		for range 64 {
			if _, err := a.Write(buf); err != nil {
				t.Fatalf("write: %v (server: %v)", err, srv.Err())
			}
		}
		a.CloseWrite()
		if n := <-got; n != 64<<20 {
			t.Fatalf("received %d bytes, want %d (server: %v)", n, 64<<20, srv.Err())
		}
	}
}
