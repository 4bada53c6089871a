// Package netguard keeps the control plane's port serving under abuse: a
// listener that retries accept errors (a full file table among them)
// instead of ending, caps how many connections are open at once, and gives
// every write a deadline, so a peer that stops reading is cut off instead
// of holding a goroutine and a file for ever.
package netguard

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cameleer/cameleer/internal/backoff"
)

// Listener wraps a net.Listener with a connection cap and accept retries.
// Accept blocks while its cap of connections is open: the kernel's backlog then
// holds the next ones, and a connection closed frees a slot.
type Listener struct {
	net.Listener
	slot chan struct{}
	open atomic.Int64
	log  *slog.Logger

	mu       sync.Mutex
	lastWarn time.Time
}

// Listen caps l at max connections open at once (max > 0).
func Listen(l net.Listener, max int, log *slog.Logger) *Listener {
	return &Listener{Listener: l, slot: make(chan struct{}, max), log: log}
}

// Open is how many connections Accept handed out that are not closed yet.
func (l *Listener) Open() int { return int(l.open.Load()) }

// Accept waits for a free slot, then for a connection. An error that a
// wait can cure (out of files, a connection aborted before it was taken,
// out of memory for buffers) is retried with a backoff of up to a second,
// as net/http does for temporary errors, with one warning per minute; any
// other error, a closed listener among them, is returned.
func (l *Listener) Accept() (net.Conn, error) {
	l.slot <- struct{}{}
	wait := backoff.New(5*time.Millisecond, time.Second)
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			l.open.Add(1)
			return &conn{Conn: c, release: l.release}, nil
		}
		if !retryable(err) {
			<-l.slot
			return nil, err
		}
		delay := wait.Next()
		l.warn(err, delay)
		time.Sleep(delay)
	}
}

func (l *Listener) release() {
	l.open.Add(-1)
	<-l.slot
}

func (l *Listener) warn(err error, delay time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.lastWarn) < time.Minute {
		return
	}
	l.lastWarn = time.Now()
	l.log.Warn("accept failed; retrying", "err", err, "retryIn", delay, "open", l.Open(), "max", cap(l.slot))
}

// retryable says whether an accept error passes with time: the process or
// host is out of files or buffers, or one connection went wrong before it
// was accepted. The listener itself is fine.
func retryable(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EPROTO, syscall.EPERM, syscall.ETIMEDOUT} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// conn gives its slot back once, when first closed.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// WriteDeadline gives each Write on c its own deadline, d from its start:
// a peer may read slowly, but not stop. A long answer (a followed log, a
// large download) lives as long as its peer keeps reading. Off stops it,
// for a connection whose owner sets its own deadlines.
type WriteDeadline struct {
	net.Conn
	d   time.Duration
	off atomic.Bool
}

// NewWriteDeadline wraps c.
func NewWriteDeadline(c net.Conn, d time.Duration) *WriteDeadline {
	return &WriteDeadline{Conn: c, d: d}
}

func (w *WriteDeadline) Write(p []byte) (int, error) {
	if !w.off.Load() {
		w.Conn.SetWriteDeadline(time.Now().Add(w.d))
	}
	return w.Conn.Write(p)
}

// CloseWrite ends the writing side, where c has one apart from Close (a
// TCP connection, a tunnel stream): net/http uses it to end an answer
// cleanly.
func (w *WriteDeadline) CloseWrite() error {
	if cw, ok := w.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// Off hands write deadlines back to the connection's user.
func (w *WriteDeadline) Off() {
	w.off.Store(true)
	w.Conn.SetWriteDeadline(time.Time{})
}

// Progress reads R and moves a read deadline on by Window each time Step
// more bytes came: a body may take as long as it needs while it keeps
// coming at Step per Window, and a trickle is cut off. Extend is usually
// an http.ResponseController's SetReadDeadline.
type Progress struct {
	R      io.Reader
	Extend func(time.Time) error
	Window time.Duration
	Step   int64
	since  int64
}

// Start sets the first deadline.
func (p *Progress) Start() error { return p.Extend(time.Now().Add(p.Window)) }

func (p *Progress) Read(b []byte) (int, error) {
	n, err := p.R.Read(b)
	p.since += int64(n)
	if p.since >= p.Step {
		p.since = 0
		if xerr := p.Extend(time.Now().Add(p.Window)); xerr != nil && err == nil {
			err = xerr
		}
	}
	return n, err
}
