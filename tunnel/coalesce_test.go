package tunnel

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
)

// writesConn records each Write as one element.
type writesConn struct {
	net.Conn
	writes [][]byte
}

func (w *writesConn) Write(p []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), p...))
	return len(p), nil
}

func header(typ byte, length uint32) []byte {
	h := make([]byte, frameHeaderSize)
	h[1] = typ
	binary.BigEndian.PutUint32(h[8:], length)
	return h
}

func TestCoalescingConn(t *testing.T) {
	w := &writesConn{}
	c := &coalescingConn{Conn: w}
	small := []byte("GET / HTTP/1.1\r\n\r\n")
	large := bytes.Repeat([]byte("x"), 40<<10)
	for _, p := range [][]byte{
		header(frameTypeData, uint32(len(small))), small,
		header(1, 1<<20), // a window update: no body follows
		header(frameTypeData, uint32(len(large))), large,
	} {
		if n, err := c.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write: %d %v", n, err)
		}
	}
	if len(w.writes) != 4 {
		t.Fatalf("%d writes, want 4 (data frame, window update, large frame in two)", len(w.writes))
	}
	if want := append(header(frameTypeData, uint32(len(small))), small...); !bytes.Equal(w.writes[0], want) {
		t.Errorf("first write %q, want header and body together", w.writes[0])
	}
	if len(w.writes[1]) != frameHeaderSize || len(w.writes[2]) != maxRecord {
		t.Errorf("writes of %d and %d bytes, want %d and %d", len(w.writes[1]), len(w.writes[2]), frameHeaderSize, maxRecord)
	}
	if got := append(append([]byte(nil), w.writes[2][frameHeaderSize:]...), w.writes[3]...); !bytes.Equal(got, large) {
		t.Error("the large body did not arrive whole and in order")
	}
}
