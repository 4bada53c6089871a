package tunnel

import (
	"encoding/binary"
	"net"
)

// yamux frame header layout: version, type, flags (2), stream (4), length
// (4); a data frame's body follows its header.
const (
	frameHeaderSize = 12
	frameTypeData   = 0
	// maxRecord is the most plaintext one TLS record carries.
	maxRecord = 16 << 10
)

// coalescingConn sends a data frame's header in the same write (the same
// TLS record, the same syscall) as the start of its body. yamux writes a
// header and then its body as two writes from its one send loop, so
// without this every frame costs the peer two records and often two
// wake-ups: most of what a small HTTP message through the tunnel costs.
type coalescingConn struct {
	net.Conn
	held []byte // a data frame's header waiting for its body
	buf  []byte
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	if c.held == nil {
		if len(p) == frameHeaderSize && p[1] == frameTypeData && binary.BigEndian.Uint32(p[8:12]) > 0 {
			c.held = append(c.buf[:0], p...)
			return len(p), nil
		}
		return c.Conn.Write(p)
	}
	// Header and the first record's worth of body, copied together; the
	// rest of a large body goes as it is.
	head := min(len(p), maxRecord-frameHeaderSize)
	c.buf = append(c.held, p[:head]...)
	c.held = nil
	if _, err := c.Conn.Write(c.buf); err != nil {
		return 0, err
	}
	if head == len(p) {
		return len(p), nil
	}
	n, err := c.Conn.Write(p[head:])
	return head + n, err
}
