// Package mux multiplexes streams over one connection with yamux's wire
// protocol (github.com/hashicorp/yamux, spec.md): a peer running
// hashicorp/yamux understands it, and the tests check that both ways.
//
// It differs from hashicorp/yamux in how bytes move, which is what one
// tunnel stream's throughput and a proxied request's latency come down to:
// a stream writes its frames itself under the session's write lock (no send
// loop to hand each frame to and wait for), a frame's header goes out in
// the same write as the start of its body, received data is read from the
// connection straight into pooled chunks the reader copies out of (no
// growing buffer per stream), and a new stream's SYN rides on its first
// data, so a request on a new stream is one frame.
package mux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Frame header: version, type, flags (2), stream (4), length (4).
const (
	headerSize    = 12
	protoVersion  = 0
	initialWindow = 256 << 10 // every stream's window before any update
)

// Frame types.
const (
	typeData         = 0
	typeWindowUpdate = 1
	typePing         = 2
	typeGoAway       = 3
)

// Flags.
const (
	flagSYN = 1 << 0
	flagACK = 1 << 1
	flagFIN = 1 << 2
	flagRST = 1 << 3
)

// Go away codes.
const (
	goAwayNormal   = 0
	goAwayProtoErr = 1
)

const (
	// maxFrame bounds one data frame, so one busy stream holds the write
	// lock for a bounded time.
	maxFrame = 128 << 10
	// maxRecord is the most plaintext one TLS record carries: a header and
	// this much of its body go in one write.
	maxRecord = 16 << 10
	// maxAnswers is how many frames the peer may be owed at once.
	maxAnswers = 256
	// warnEvery spaces the warnings about refused streams: a peer that
	// opens streams in a loop must not flood the log.
	warnEvery = 10 * time.Second
	// closeTimeout is how long a stream closed here waits for the peer's
	// FIN before it is reset and forgotten.
	closeTimeout = 2 * time.Minute
)

// Errors.
var (
	// ErrSessionClosed is an operation on a session that has ended.
	ErrSessionClosed = fmt.Errorf("mux: session closed: %w", net.ErrClosed)
	// ErrStreamClosed is a write to a stream closed here.
	ErrStreamClosed = fmt.Errorf("mux: stream closed: %w", net.ErrClosed)
	// ErrStreamReset is a stream either side reset.
	ErrStreamReset = errors.New("mux: stream reset")
	// ErrGoAway is an Open after the peer said it takes no more streams.
	ErrGoAway = errors.New("mux: the peer accepts no new streams")
	// ErrKeepAlive ends a session whose peer stopped answering pings.
	ErrKeepAlive = errors.New("mux: keepalive timeout")
	// ErrProtocol ends a session whose peer broke the protocol.
	ErrProtocol = errors.New("mux: protocol error")
)

// Config tunes a session.
type Config struct {
	// KeepAliveInterval is how often an idle peer is pinged; 0 disables.
	KeepAliveInterval time.Duration
	// WriteTimeout bounds one write to the connection and the wait for a
	// keepalive's answer; the session ends when either runs out.
	WriteTimeout time.Duration
	// Window is what a stream's receive window grows to as it is read (at
	// least 256 KiB): one stream's throughput is at most Window per round
	// trip. Every stream starts at 256 KiB, yamux's initial window, and
	// grows only as this side reads it, and only while SessionWindow has
	// room: a stream nobody reads holds at most 256 KiB unread, and a
	// session at most 256 KiB a stream (MaxStreams the peer opened, and
	// those opened here) plus SessionWindow, kept in 64 KiB chunks (under
	// two more a stream, partly used).
	Window uint32
	// SessionWindow bounds how far the receive windows of all the
	// session's streams together grow past their initial 256 KiB; 0
	// means 4 × Window. The link has one bandwidth-delay product however
	// many streams share it: a few streams' worth of window fills it.
	SessionWindow int64
	// AcceptBacklog is how many new streams may wait for Accept; more
	// are reset.
	AcceptBacklog int
	// MaxStreams is the most streams the peer may have open at once:
	// waiting for Accept, or accepted and not yet closed by both sides.
	// More are reset. 0 means 1024, far more than a peer needs at once
	// and few enough that what they may hold unread (see Window) stays
	// bounded.
	MaxStreams int
	// MaxRefused ends the session once more than that many of the peer's
	// new streams were reset (past MaxStreams or the backlog) within 10 s:
	// a peer that keeps opening what it is refused is cut off, not served
	// resets for ever. 0: never.
	MaxRefused int
	Log        *slog.Logger
}

// Session is one side of a multiplexed connection.
type Session struct {
	conn   net.Conn
	cfg    Config
	log    *slog.Logger
	accept chan *Stream
	done   chan struct{}
	// answers are frames recvLoop owes the peer (ping answers, resets),
	// written by one goroutine: recvLoop never writes, and a peer that
	// asks faster than it reads cannot make goroutines pile up.
	answers chan frameSpec

	wmu  sync.Mutex // one frame at a time on conn
	wbuf []byte

	mu      sync.Mutex
	streams map[uint32]*Stream
	theirs  int // of streams, how many the peer opened
	nextID  uint32
	err     error // why the session ended
	goAway  bool  // the peer takes no new streams
	pings   map[uint32]chan struct{}
	pingID  uint32
	refused int       // new streams of the peer's reset so far
	warned  time.Time // when that was last logged
	// recent counts the refusals since recentFrom: MaxRefused bounds them
	// within warnEvery, so a burst long ago does not count against a peer.
	recent     int
	recentFrom time.Time

	// grown is how far the streams' receive windows are past the initial
	// window, all together: at most cfg.SessionWindow.
	grown atomic.Int64

	// in is conn as recvLoop reads it: every read is news from the peer.
	in io.Reader
	// lastRecv is when the peer was last heard, as time since born (a
	// monotonic clock: a wall clock that steps would fake silence).
	born     time.Time
	lastRecv atomic.Int64
}

// Client starts the dialing side of a session over conn.
func Client(conn net.Conn, cfg Config) *Session { return start(conn, cfg, 1) }

// Server starts the accepting side of a session over conn.
func Server(conn net.Conn, cfg Config) *Session { return start(conn, cfg, 2) }

func start(conn net.Conn, cfg Config, firstID uint32) *Session {
	cfg.Window = max(cfg.Window, initialWindow)
	if cfg.SessionWindow <= 0 {
		cfg.SessionWindow = 4 * int64(cfg.Window)
	}
	if cfg.AcceptBacklog <= 0 {
		cfg.AcceptBacklog = 256
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 1024
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Session{
		conn: conn, cfg: cfg, log: log,
		accept:  make(chan *Stream, cfg.AcceptBacklog),
		done:    make(chan struct{}),
		answers: make(chan frameSpec, maxAnswers),
		wbuf:    make([]byte, 0, maxRecord),
		streams: map[uint32]*Stream{},
		nextID:  firstID,
		pings:   map[uint32]chan struct{}{},
	}
	s.born = time.Now()
	s.in = heardReader{s}
	go s.recvLoop()
	go s.answerLoop()
	if cfg.KeepAliveInterval > 0 {
		go s.keepalive()
	}
	return s
}

// Open opens a new stream. Nothing is sent until the stream is first
// written to or read from: its SYN rides on that frame.
func (s *Session) Open() (*Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		return nil, s.err
	case s.goAway:
		return nil, ErrGoAway
	case s.nextID >= 1<<32-2:
		return nil, errors.New("mux: stream IDs exhausted")
	}
	st := newStream(s, s.nextID, flagSYN)
	s.nextID += 2
	s.streams[st.id] = st
	return st, nil
}

// Accept waits for the next stream the peer opens, and acknowledges it at
// once: hashicorp/yamux gives up a session whose opened streams wait long
// for their ACK.
func (s *Session) Accept() (*Stream, error) {
	select {
	case st := <-s.accept:
		st.send(typeWindowUpdate, 0, 0, nil)
		return st, nil
	case <-s.done:
		return nil, s.Err()
	}
}

// Ping sends a ping and waits for its answer, at most WriteTimeout.
func (s *Session) Ping() (time.Duration, error) {
	ch := make(chan struct{})
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return 0, s.err
	}
	s.pingID++
	id := s.pingID
	s.pings[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pings, id)
		s.mu.Unlock()
	}()
	start := time.Now()
	if err := s.writeFrame(typePing, flagSYN, 0, id, nil); err != nil {
		return 0, err
	}
	t := time.NewTimer(s.cfg.WriteTimeout)
	defer t.Stop()
	select {
	case <-ch:
		return time.Since(start), nil
	case <-t.C:
		return 0, ErrKeepAlive
	case <-s.done:
		return 0, s.Err()
	}
}

// NumStreams is how many streams are open.
func (s *Session) NumStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended, or nil while it runs.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close tells the peer and ends the session and its connection.
func (s *Session) Close() error {
	s.mu.Lock()
	running := s.err == nil
	s.mu.Unlock()
	if running {
		s.writeGoAway(goAwayNormal)
	}
	s.shutdown(ErrSessionClosed)
	return nil
}

// LocalAddr is the connection's local address.
func (s *Session) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// RemoteAddr is the connection's remote address.
func (s *Session) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// shutdown ends the session for err (the first reason wins) and wakes every
// stream.
func (s *Session) shutdown(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	streams := s.streams
	s.streams = map[uint32]*Stream{}
	s.mu.Unlock()
	close(s.done)
	s.conn.Close()
	for _, st := range streams {
		st.mu.Lock()
		st.stopTimer()
		st.mu.Unlock()
	}
}

func (s *Session) forget(id uint32) {
	s.mu.Lock()
	if _, ok := s.streams[id]; ok && id%2 != s.nextID%2 {
		s.theirs--
	}
	delete(s.streams, id)
	s.mu.Unlock()
}

// reserve takes up to n bytes of the session's room for window growth
// and says how much it took.
func (s *Session) reserve(n int64) int64 {
	for {
		grown := s.grown.Load()
		take := min(n, s.cfg.SessionWindow-grown)
		if take <= 0 {
			return 0
		}
		if s.grown.CompareAndSwap(grown, grown+take) {
			return take
		}
	}
}

// writeGoAway tells the peer the session ends, unless a write is under
// way: closing does not wait on a stuck peer.
func (s *Session) writeGoAway(code uint32) {
	if !s.wmu.TryLock() {
		return
	}
	defer s.wmu.Unlock()
	var hdr [headerSize]byte
	hdr[1] = typeGoAway
	binary.BigEndian.PutUint32(hdr[8:12], code)
	s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	s.conn.Write(hdr[:])
}

// writeFrame writes one frame. A data frame's length is len(body); other
// frames carry length in the header alone. A failed write ends the
// session: the connection's framing is lost.
func (s *Session) writeFrame(typ uint8, flags uint16, id, length uint32, body []byte) error {
	var hdr [headerSize]byte
	hdr[0], hdr[1] = protoVersion, typ
	binary.BigEndian.PutUint16(hdr[2:4], flags)
	binary.BigEndian.PutUint32(hdr[4:8], id)
	binary.BigEndian.PutUint32(hdr[8:12], length)

	s.wmu.Lock()
	defer s.wmu.Unlock()
	select {
	case <-s.done:
		return s.Err()
	default:
	}
	head := min(len(body), maxRecord-headerSize)
	s.wbuf = append(append(s.wbuf[:0], hdr[:]...), body[:head]...)
	s.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	_, err := s.conn.Write(s.wbuf)
	if err == nil && head < len(body) {
		_, err = s.conn.Write(body[head:])
	}
	if err != nil {
		// The cause as text only: a timed-out connection is not a
		// stream's deadline.
		err = fmt.Errorf("mux: write: %v: %w", err, ErrSessionClosed)
		s.shutdown(err)
		return err
	}
	return nil
}

// frameSpec is a frame without a body.
type frameSpec struct {
	typ        uint8
	flags      uint16
	id, length uint32
}

// control queues a frame owed to the peer. It reports false when the peer
// is owed too many: it asks faster than it reads.
func (s *Session) control(f frameSpec) bool {
	select {
	case s.answers <- f:
		return true
	default:
		return false
	}
}

func (s *Session) answerLoop() {
	for {
		select {
		case f := <-s.answers:
			if s.writeFrame(f.typ, f.flags, f.id, f.length, nil) != nil {
				return
			}
		case <-s.done:
			return
		}
	}
}

// errFlood ends a session whose peer is owed more answers than it reads.
var errFlood = fmt.Errorf("%w: the peer asks faster than it reads the answers", ErrProtocol)

// heard notes that the peer just sent something.
func (s *Session) heard() { s.lastRecv.Store(int64(time.Since(s.born))) }

// quiet is how long the peer has said nothing.
func (s *Session) quiet() time.Duration {
	return time.Since(s.born) - time.Duration(s.lastRecv.Load())
}

// heardReader reads the connection and notes each read, so a long frame
// read (or thrown away) on a slow link is no silence.
type heardReader struct{ s *Session }

func (h heardReader) Read(p []byte) (int, error) {
	n, err := h.s.conn.Read(p)
	if n > 0 {
		h.s.heard()
	}
	return n, err
}

// keepalive pings the peer once nothing came from it for
// KeepAliveInterval, and ends the session once nothing came for
// KeepAliveInterval + WriteTimeout. Any frame counts, so of two sides that
// both keep alive only one pings while all is quiet (the other hears its
// pings), and a busy session sends none. A dead peer is noticed within
// KeepAliveInterval + WriteTimeout and one check (every half of the
// shorter of the two).
func (s *Session) keepalive() {
	t := time.NewTicker(max(min(s.cfg.KeepAliveInterval, s.cfg.WriteTimeout)/2, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.done:
			return
		}
		quiet := s.quiet()
		if quiet > s.cfg.KeepAliveInterval+s.cfg.WriteTimeout {
			s.log.Warn("mux: peer silent; closing", "for", quiet.Round(time.Millisecond), "remote", s.conn.RemoteAddr())
			s.shutdown(ErrKeepAlive)
			return
		}
		if quiet >= s.cfg.KeepAliveInterval && s.writeFrame(typePing, flagSYN, 0, 0, nil) != nil {
			return
		}
	}
}

// recvLoop reads frames until the connection ends. It never writes to the
// connection itself: a peer that is busy writing to us must still be read
// from, or both sides could block on full buffers.
func (s *Session) recvLoop() {
	var hdr [headerSize]byte
	for {
		if _, err := io.ReadFull(s.in, hdr[:]); err != nil {
			s.shutdown(readErr(err))
			return
		}
		if err := s.handle(hdr); err != nil {
			if errors.Is(err, ErrProtocol) {
				s.log.Warn("mux: closing the session", "err", err, "remote", s.conn.RemoteAddr())
				go func() {
					s.writeGoAway(goAwayProtoErr)
					s.shutdown(err)
				}()
				return
			}
			s.shutdown(err)
			return
		}
	}
}

func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
		return ErrSessionClosed
	}
	return fmt.Errorf("mux: read: %v: %w", err, ErrSessionClosed)
}

func (s *Session) handle(hdr [headerSize]byte) error {
	if hdr[0] != protoVersion {
		return fmt.Errorf("%w: version %d", ErrProtocol, hdr[0])
	}
	typ, flags := hdr[1], binary.BigEndian.Uint16(hdr[2:4])
	id, length := binary.BigEndian.Uint32(hdr[4:8]), binary.BigEndian.Uint32(hdr[8:12])
	switch typ {
	case typeData, typeWindowUpdate:
		return s.handleStream(typ, flags, id, length)
	case typePing:
		switch {
		case flags&flagSYN != 0:
			if !s.control(frameSpec{typ: typePing, flags: flagACK, length: length}) {
				return errFlood
			}
		case flags&flagACK != 0:
			s.mu.Lock()
			if ch := s.pings[length]; ch != nil {
				close(ch)
				delete(s.pings, length)
			}
			s.mu.Unlock()
		}
		return nil
	case typeGoAway:
		if length != goAwayNormal {
			return fmt.Errorf("mux: the peer ended the session with code %d", length)
		}
		s.mu.Lock()
		s.goAway = true
		s.mu.Unlock()
		return nil
	default:
		return fmt.Errorf("%w: frame type %d", ErrProtocol, typ)
	}
}

func (s *Session) handleStream(typ uint8, flags uint16, id, length uint32) error {
	s.mu.Lock()
	st := s.streams[id]
	if flags&flagSYN != 0 {
		if st != nil || id == 0 || id%2 == s.nextID%2 {
			s.mu.Unlock()
			return fmt.Errorf("%w: stream %d opened twice, or with an ID of ours", ErrProtocol, id)
		}
		var err error
		if st, err = s.incoming(id); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	s.mu.Unlock()
	if st == nil {
		// A stream reset or forgotten here: its data goes nowhere.
		if typ == typeData && length > 0 {
			if _, err := io.CopyN(io.Discard, s.in, int64(length)); err != nil {
				return readErr(err)
			}
		}
		return nil
	}
	if typ == typeWindowUpdate {
		st.addSendWindow(length)
	} else if length > 0 {
		if err := st.receive(s.in, length); err != nil {
			return err
		}
	}
	if flags&(flagFIN|flagRST) != 0 {
		st.remoteClose(flags&flagRST != 0)
	}
	return nil
}

// incoming registers a stream the peer opened and queues it for Accept,
// or resets it when the peer has too many open or waiting (nil, nil).
// The error ends the session: the reset cannot be queued either, or the
// peer was refused MaxRefused streams. s.mu is held.
func (s *Session) incoming(id uint32) (*Stream, error) {
	if s.theirs >= s.cfg.MaxStreams {
		return nil, s.refuseNew(id, "too many streams open")
	}
	st := newStream(s, id, flagACK)
	select {
	case s.accept <- st:
		s.streams[id] = st
		s.theirs++
		return st, nil
	default:
		return nil, s.refuseNew(id, "too many streams waiting to be accepted")
	}
}

// errRefused ends a session whose peer keeps opening streams it is refused.
var errRefused = fmt.Errorf("%w: the peer keeps opening streams past its limit", ErrProtocol)

// refuseNew resets a stream the peer opens, and says so at most once
// every warnEvery. s.mu is held.
func (s *Session) refuseNew(id uint32, why string) error {
	s.refused++
	now := time.Now()
	if now.Sub(s.recentFrom) >= warnEvery {
		s.recent, s.recentFrom = 0, now
	}
	s.recent++
	if s.cfg.MaxRefused > 0 && s.recent > s.cfg.MaxRefused {
		return errRefused
	}
	if now.Sub(s.warned) >= warnEvery {
		s.warned = now
		s.log.Warn("mux: resetting new streams", "why", why, "stream", id, "refused", s.refused, "remote", s.conn.RemoteAddr())
	}
	if !s.control(frameSpec{typ: typeWindowUpdate, flags: flagRST, id: id}) {
		return errFlood
	}
	return nil
}
