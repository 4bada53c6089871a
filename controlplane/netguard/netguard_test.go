package netguard

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

var quiet = slog.New(slog.DiscardHandler)

func TestCapHoldsAcceptUntilAClose(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(raw, 2, quiet)
	defer l.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, second := <-accepted, <-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted past the cap of 2")
	case <-time.After(200 * time.Millisecond):
	}
	if l.Open() != 2 {
		t.Errorf("open = %d, want 2", l.Open())
	}
	first.Close()
	first.Close() // a second close frees nothing more
	third := <-accepted
	defer third.Close()
	second.Close()
	if l.Open() != 1 {
		t.Errorf("open = %d after two closes of three, want 1", l.Open())
	}
}

// flaky fails its first accepts with errs, then accepts from l.
type flaky struct {
	net.Listener
	errs []error
}

func (f *flaky) Accept() (net.Conn, error) {
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return f.Listener.Accept()
}

func TestAcceptRetriesOutOfFiles(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A real listener whose first accepts fail as a process out of files
	// sees them: the errors are made here, the connection is real.
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	l := Listen(&flaky{Listener: raw, errs: []error{emfile, emfile, emfile}}, 4, quiet)
	defer l.Close()
	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := l.Accept()
	if err != nil {
		t.Fatalf("accept after EMFILE: %v", err)
	}
	got.Close()

	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("accept on a closed listener: %v", err)
	}
	if l.Open() != 0 {
		t.Errorf("a failed accept kept its slot: open = %d", l.Open())
	}
}

func TestWriteDeadlineCutsAPeerThatStopsReading(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	w := NewWriteDeadline(a, 50*time.Millisecond)
	defer w.Close()
	go io.CopyN(io.Discard, b, 3) // reads a little, then stops
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatalf("a write the peer reads: %v", err)
	}
	_, err := w.Write([]byte("never read"))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a write nobody reads: %v, want a deadline error", err)
	}
}

func TestWriteDeadlineCloseWrite(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	w := NewWriteDeadline(c, time.Second)
	defer w.Close()
	w.Write([]byte("bye"))
	if err := w.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(peer); err != nil || string(b) != "bye" {
		t.Errorf("the peer read %q, %v; want what was written, then EOF", b, err)
	}
	a, b := net.Pipe()
	defer b.Close()
	if err := NewWriteDeadline(a, time.Second).CloseWrite(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("CloseWrite on a pipe: %v", err)
	}
}

func TestWriteDeadlineOff(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	w := NewWriteDeadline(a, time.Millisecond)
	defer w.Close()
	w.Off()
	done := make(chan error, 1)
	go func() { _, err := w.Write([]byte("slow")); done <- err }()
	time.Sleep(50 * time.Millisecond) // well past the deadline it would have had
	io.ReadFull(b, make([]byte, 4))
	if err := <-done; err != nil {
		t.Fatalf("a write with deadlines off: %v", err)
	}
}

// trickle gives one byte a read.
type trickle struct{ left int }

func (t *trickle) Read(p []byte) (int, error) {
	if t.left == 0 {
		return 0, io.EOF
	}
	t.left--
	p[0] = 'x'
	return 1, nil
}

func TestProgressMovesTheDeadlineOnlyWithProgress(t *testing.T) {
	var deadlines []time.Time
	p := &Progress{R: &trickle{left: 10}, Window: time.Minute, Step: 4,
		Extend: func(d time.Time) error { deadlines = append(deadlines, d); return nil }}
	p.Start()
	b, err := io.ReadAll(p)
	if err != nil || len(b) != 10 {
		t.Fatalf("read %d bytes: %v", len(b), err)
	}
	// The start, then after bytes 4 and 8: 10 bytes are two steps.
	if len(deadlines) != 3 {
		t.Errorf("deadline moved %d times, want 3", len(deadlines))
	}
	refused := errors.New("connection gone")
	p = &Progress{R: strings.NewReader("abcdef"), Window: time.Minute, Step: 2, Extend: func(time.Time) error { return refused }}
	if _, err := io.ReadAll(p); !errors.Is(err, refused) {
		t.Errorf("a deadline that cannot be set: %v", err)
	}
}
