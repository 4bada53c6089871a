package embedded

import (
	"encoding/binary"
	"errors"
	"io"
	"sort"

	"github.com/cockroachdb/pebble"

	"github.com/cameleer/cameleer/api"
)

// A statistics row is merged, not read and written: each Ingest adds its
// counts with a Merge, and Pebble sums them when it reads or compacts.
var merger = &pebble.Merger{
	Name: "cameleer.telemetry.count.v1",
	Merge: func(_, value []byte) (pebble.ValueMerger, error) {
		m := &countMerger{buckets: map[uint64]uint64{}}
		return m, m.add(value)
	},
}

type countMerger struct {
	c       api.Count
	buckets map[uint64]uint64
}

func (m *countMerger) add(v []byte) error {
	c, err := decodeCount(v)
	if err != nil {
		return err
	}
	m.c.Count += c.Count
	m.c.Failures += c.Failures
	m.c.Sum += c.Sum
	for _, b := range c.Buckets {
		m.buckets[b[0]] += b[1]
	}
	return nil
}

func (m *countMerger) MergeNewer(v []byte) error { return m.add(v) }
func (m *countMerger) MergeOlder(v []byte) error { return m.add(v) }

func (m *countMerger) Finish(bool) ([]byte, io.Closer, error) {
	m.c.Buckets = m.c.Buckets[:0]
	for b, n := range m.buckets {
		m.c.Buckets = append(m.c.Buckets, [2]uint64{b, n})
	}
	sort.Slice(m.c.Buckets, func(i, j int) bool { return m.c.Buckets[i][0] < m.c.Buckets[j][0] })
	return encodeCount(nil, m.c), nil, nil
}

func encodeCount(b []byte, c api.Count) []byte {
	b = binary.AppendUvarint(b, c.Count)
	b = binary.AppendUvarint(b, c.Failures)
	b = binary.AppendVarint(b, c.Sum)
	b = binary.AppendUvarint(b, uint64(len(c.Buckets)))
	for _, p := range c.Buckets {
		b = binary.AppendUvarint(b, p[0])
		b = binary.AppendUvarint(b, p[1])
	}
	return b
}

var errCount = errors.New("malformed statistics row")

func decodeCount(b []byte) (api.Count, error) {
	var c api.Count
	var vals [4]uint64
	for i := range vals {
		var w int
		if i == 2 {
			var s int64
			s, w = binary.Varint(b)
			c.Sum = s
		} else {
			vals[i], w = binary.Uvarint(b)
		}
		if w <= 0 {
			return c, errCount
		}
		b = b[w:]
	}
	c.Count, c.Failures = vals[0], vals[1]
	if vals[3] > uint64(len(b)) {
		return c, errCount
	}
	c.Buckets = make([][2]uint64, vals[3])
	for i := range c.Buckets {
		for j := 0; j < 2; j++ {
			v, w := binary.Uvarint(b)
			if w <= 0 {
				return c, errCount
			}
			c.Buckets[i][j] = v
			b = b[w:]
		}
	}
	return c, nil
}
