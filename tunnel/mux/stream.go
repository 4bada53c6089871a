package mux

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// chunkSize is the unit received data is kept in until it is read.
const chunkSize = 64 << 10

type chunk struct {
	buf  []byte
	r, n int // read up to r, filled up to n
}

// chunks recycles receive chunks across streams and sessions: a busy
// stream needs a few, an idle one none.
var chunks = sync.Pool{New: func() any { return &chunk{buf: make([]byte, chunkSize)} }}

// Stream is one bidirectional stream of a session. It is a net.Conn: Close
// ends both directions, CloseWrite only this side's writing.
type Stream struct {
	s  *Session
	id uint32

	writeMu sync.Mutex // one Write at a time
	sendMu  sync.Mutex // this stream's frames go out in order (SYN first)

	mu         sync.Mutex
	pending    uint16 // SYN or ACK, sent with the stream's first frame
	sendWindow uint32 // what may still be sent
	recvWindow uint32 // what the peer may still send
	grown      bool   // the receive window was raised past the initial
	extra      int64  // of Session.grown, this stream's part
	queue      []*chunk
	buffered   int  // received, not read yet
	inflight   int  // of the frame being received, not buffered yet
	filling    bool // recvLoop is reading into the last chunk
	writeShut  bool // FIN sent (or never will be)
	readShut   bool // Close: what arrives now is refused
	remoteFIN  bool
	reset      bool
	readDL     time.Time
	writeDL    time.Time
	closeTimer *time.Timer

	readable chan struct{} // data came (one waiting reader)
	writable chan struct{} // window came (one waiting writer)
	changed  chan struct{} // closed on what every waiter must see: close, reset, FIN, deadlines
}

func newStream(s *Session, id uint32, pending uint16) *Stream {
	return &Stream{
		s: s, id: id, pending: pending,
		sendWindow: initialWindow, recvWindow: initialWindow,
		readable: make(chan struct{}, 1), writable: make(chan struct{}, 1), changed: make(chan struct{}),
	}
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// broadcast wakes every waiting Read and Write. st.mu is held.
func (st *Stream) broadcast() {
	close(st.changed)
	st.changed = make(chan struct{})
}

// ID is the stream's number on the wire.
func (st *Stream) ID() uint32 { return st.id }

// wait blocks until ch or changed is signalled, the deadline passes or the
// session ends; the caller checks again why.
func (st *Stream) wait(ch, changed chan struct{}, deadline time.Time) error {
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ch:
	case <-changed:
	case <-timeout:
	case <-st.s.done:
	}
	return nil
}

// send writes one frame of this stream, with the SYN or ACK it still owes.
func (st *Stream) send(typ uint8, flags uint16, length uint32, body []byte) error {
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	return st.sendLocked(typ, flags, length, body)
}

// sendLocked is send with st.sendMu held: what Close decides under it
// (FIN sent, or a stream the peer never heard of forgotten) holds for
// every frame after.
func (st *Stream) sendLocked(typ uint8, flags uint16, length uint32, body []byte) error {
	st.mu.Lock()
	switch {
	case typ == typeData && st.writeShut:
		st.mu.Unlock()
		return ErrStreamClosed
	case st.pending&flagSYN != 0 && st.readShut:
		st.mu.Unlock()
		return ErrStreamClosed // closed before the peer heard of it
	}
	flags |= st.pending
	st.pending = 0
	st.mu.Unlock()
	return st.s.writeFrame(typ, flags, st.id, length, body)
}

// Read reads what the peer sent.
func (st *Stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		st.mu.Lock()
		switch {
		case st.readShut:
			st.mu.Unlock()
			return 0, ErrStreamClosed
		case st.reset:
			st.mu.Unlock()
			return 0, ErrStreamReset
		case st.buffered > 0:
			n := st.copyOut(p)
			delta := st.windowDelta()
			st.mu.Unlock()
			if delta > 0 {
				// The data is read; a failed update ends the session and
				// shows on the next call.
				st.send(typeWindowUpdate, 0, delta, nil)
			}
			return n, nil
		case st.remoteFIN:
			st.mu.Unlock()
			return 0, io.EOF
		}
		if err := st.s.Err(); err != nil {
			st.mu.Unlock()
			return 0, err
		}
		dl, changed, syn := st.readDL, st.changed, st.pending&flagSYN != 0
		st.mu.Unlock()
		if syn {
			// Read before any write: the peer must learn of the stream.
			if err := st.send(typeWindowUpdate, 0, 0, nil); err != nil {
				return 0, err
			}
		}
		if err := st.wait(st.readable, changed, dl); err != nil {
			return 0, err
		}
	}
}

// copyOut moves queued data into p, recycling the chunks it empties.
// st.mu is held.
func (st *Stream) copyOut(p []byte) int {
	n := 0
	for n < len(p) && len(st.queue) > 0 {
		c := st.queue[0]
		m := copy(p[n:], c.buf[c.r:c.n])
		c.r += m
		n += m
		if c.r < c.n {
			break
		}
		if len(st.queue) == 1 && st.filling {
			break // recvLoop is writing into it
		}
		st.queue[0] = nil
		st.queue = st.queue[1:]
		chunks.Put(c)
	}
	st.buffered -= n
	return n
}

// windowDelta is the window update to send now, or 0. The first update
// goes out once half the initial window is used, so short exchanges send
// none; from then on the window is kept near Config.Window, as far as the
// session's SessionWindow has room. st.mu is held.
func (st *Stream) windowDelta() uint32 {
	s := st.s
	// What the peer may have here unread or still send.
	window := int64(st.buffered) + int64(st.inflight) + int64(st.recvWindow)
	if extra := max(window-initialWindow, 0); extra < st.extra {
		s.grown.Add(extra - st.extra) // read: room for other streams
		st.extra = extra
	}
	limit := min(int64(s.cfg.Window), initialWindow+st.extra+max(s.cfg.SessionWindow-s.grown.Load(), 0))
	delta := limit - window
	threshold := limit / 2
	if !st.grown {
		threshold = limit - initialWindow/2
	}
	if delta < threshold || delta <= 0 {
		return 0
	}
	// Another stream may have taken the room meanwhile.
	if grow := window + delta - initialWindow - st.extra; grow > 0 {
		got := s.reserve(grow)
		st.extra += got
		delta -= grow - got
	}
	if delta <= 0 {
		return 0
	}
	st.grown = true
	st.recvWindow += uint32(delta)
	return uint32(delta)
}

// drop throws away what was received and not read: its chunks go back to
// the pool and its window growth to the session. st.mu is held.
func (st *Stream) drop() {
	for i, c := range st.queue {
		if i == len(st.queue)-1 && st.filling {
			break // recvLoop is reading into it: left to the collector
		}
		chunks.Put(c)
	}
	st.queue, st.buffered = nil, 0
	st.s.grown.Add(-st.extra)
	st.extra = 0
}

// receive reads a data frame's body of length bytes from r into the
// stream's queue, each piece readable as soon as it is in. It runs in
// recvLoop.
func (st *Stream) receive(r io.Reader, length uint32) error {
	st.mu.Lock()
	if length > st.recvWindow {
		st.mu.Unlock()
		return fmt.Errorf("%w: stream %d sent %d bytes, %d over its window", ErrProtocol, st.id, length, length-st.recvWindow)
	}
	st.recvWindow -= length
	refuse := st.readShut || st.reset
	if !refuse {
		st.inflight = int(length)
	}
	st.mu.Unlock()
	if refuse {
		if _, err := io.CopyN(io.Discard, r, int64(length)); err != nil {
			return readErr(err)
		}
		if !st.refuse() {
			return errFlood
		}
		return nil
	}
	for left := int(length); left > 0; {
		st.mu.Lock()
		if st.readShut || st.reset {
			// Dropped mid-frame: the rest goes nowhere.
			st.inflight = 0
			st.mu.Unlock()
			if _, err := io.CopyN(io.Discard, r, int64(left)); err != nil {
				return readErr(err)
			}
			return nil
		}
		var c *chunk
		if k := len(st.queue); k > 0 && st.queue[k-1].n < len(st.queue[k-1].buf) {
			c = st.queue[k-1]
		} else {
			c = chunks.Get().(*chunk)
			c.r, c.n = 0, 0
			st.queue = append(st.queue, c)
		}
		start := c.n
		st.filling = true
		st.mu.Unlock()

		n, err := r.Read(c.buf[start : start+min(left, len(c.buf)-start)])

		st.mu.Lock()
		st.filling = false
		st.inflight -= n
		if st.readShut || st.reset {
			st.inflight = 0
		} else {
			c.n = start + n
			st.buffered += n
		}
		st.mu.Unlock()
		if n > 0 {
			notify(st.readable)
		}
		left -= n
		if err != nil && left > 0 {
			return readErr(err)
		}
	}
	return nil
}

// refuse resets a stream that was sent data after it was closed here, as
// TCP does: the peer's writer learns at once that nobody reads. False if
// the reset cannot be queued.
func (st *Stream) refuse() bool {
	st.mu.Lock()
	already := st.reset
	st.reset = true
	st.stopTimer()
	st.broadcast()
	st.mu.Unlock()
	if already {
		return true
	}
	st.s.forget(st.id)
	return st.s.control(frameSpec{typ: typeWindowUpdate, flags: flagRST, id: st.id})
}

// addSendWindow applies a window update from the peer.
func (st *Stream) addSendWindow(delta uint32) {
	st.mu.Lock()
	st.sendWindow = uint32(min(uint64(st.sendWindow)+uint64(delta), 1<<32-1))
	st.mu.Unlock()
	notify(st.writable)
}

// remoteClose applies the peer's FIN or RST. It runs in recvLoop.
func (st *Stream) remoteClose(rst bool) {
	st.mu.Lock()
	if rst {
		st.reset = true
		st.drop()
	} else {
		st.remoteFIN = true
	}
	done := st.reset || st.writeShut
	if done {
		st.stopTimer()
	}
	st.broadcast()
	st.mu.Unlock()
	if done {
		st.s.forget(st.id)
	}
}

// Write sends p, waiting for the peer's window as needed.
func (st *Stream) Write(p []byte) (int, error) {
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	total := 0
	for len(p) > 0 {
		st.mu.Lock()
		for {
			if err := st.writeErr(); err != nil {
				st.mu.Unlock()
				return total, err
			}
			if st.sendWindow > 0 {
				break
			}
			dl, changed := st.writeDL, st.changed
			st.mu.Unlock()
			if err := st.wait(st.writable, changed, dl); err != nil {
				return total, err
			}
			st.mu.Lock()
		}
		n := min(len(p), int(st.sendWindow), maxFrame)
		st.sendWindow -= uint32(n)
		st.mu.Unlock()
		if err := st.send(typeData, 0, uint32(n), p[:n]); err != nil {
			return total, err
		}
		total += n
		p = p[n:]
	}
	return total, nil
}

// writeErr says why nothing more can be written, if so. st.mu is held.
func (st *Stream) writeErr() error {
	switch {
	case st.writeShut:
		return ErrStreamClosed
	case st.reset:
		return ErrStreamReset
	case !st.writeDL.IsZero() && !time.Now().Before(st.writeDL):
		return os.ErrDeadlineExceeded
	}
	return st.s.Err()
}

// CloseWrite sends FIN: the peer reads to its end, and may go on writing.
func (st *Stream) CloseWrite() error {
	return st.shut(false)
}

// Close ends the stream: FIN to the peer, and what the peer sends from now
// on is refused with a reset.
func (st *Stream) Close() error {
	return st.shut(true)
}

func (st *Stream) shut(read bool) error {
	// Under sendMu: no frame of this stream is on its way while this
	// decides, and none after it goes out against the decision.
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	st.mu.Lock()
	sendFIN := !st.writeShut && !st.reset
	unsent := read && st.pending&flagSYN != 0 // the peer never heard of it
	st.writeShut = true
	if read {
		st.readShut = true
		st.drop()
	}
	done := st.reset || st.remoteFIN || unsent
	// Closed here for good: the peer gets closeTimeout to say it is done
	// too. (After CloseWrite the peer may go on; whoever reads closes.)
	if !done && read && st.closeTimer == nil {
		st.closeTimer = time.AfterFunc(closeTimeout, st.abandon)
	}
	st.broadcast()
	st.mu.Unlock()
	if done {
		st.s.forget(st.id)
	}
	if sendFIN && !unsent {
		return st.sendLocked(typeWindowUpdate, flagFIN, 0, nil)
	}
	return nil
}

// abandon resets a stream whose peer never sent its FIN after ours.
func (st *Stream) abandon() {
	st.mu.Lock()
	already := st.reset
	st.reset = true
	st.closeTimer = nil
	st.broadcast()
	st.mu.Unlock()
	if !already {
		st.s.forget(st.id)
		st.send(typeWindowUpdate, flagRST, 0, nil)
	}
}

// stopTimer stops the close timer. st.mu is held.
func (st *Stream) stopTimer() {
	if st.closeTimer != nil {
		st.closeTimer.Stop()
		st.closeTimer = nil
	}
}

// SetDeadline sets the read and write deadlines.
func (st *Stream) SetDeadline(t time.Time) error {
	st.SetReadDeadline(t)
	return st.SetWriteDeadline(t)
}

// SetReadDeadline sets when a waiting Read gives up.
func (st *Stream) SetReadDeadline(t time.Time) error {
	st.mu.Lock()
	st.readDL = t
	st.broadcast()
	st.mu.Unlock()
	return nil
}

// SetWriteDeadline sets when a Write waiting for the peer's window gives
// up. A frame already going out on the connection is bounded by
// Config.WriteTimeout instead, which ends the session.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	st.mu.Lock()
	st.writeDL = t
	st.broadcast()
	st.mu.Unlock()
	return nil
}

// LocalAddr is the session's local address.
func (st *Stream) LocalAddr() net.Addr { return st.s.LocalAddr() }

// RemoteAddr is the session's remote address.
func (st *Stream) RemoteAddr() net.Addr { return st.s.RemoteAddr() }

var _ net.Conn = (*Stream)(nil)
