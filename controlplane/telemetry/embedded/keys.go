package embedded

import (
	"encoding/binary"
	"time"
)

// Every key starts with a byte naming its table and the tenant; strings
// are length-prefixed (so a prefix of whole strings never matches a longer
// string), numbers big-endian (so they sort).
const (
	tMark     = 'm' // tenant, runner -> the runner's mark
	tTenant   = 't' // tenant -> ""
	tApp      = 'a' // tenant, env, app -> ""
	tRoute    = 'r' // tenant, env, app, route -> ""
	tExchange = 'x' // tenant, env, app, ^start, id -> summary
	tFailed   = 'f' // tenant, env, app, ^start, id -> summary (status failed or handled)
	tTrace    = 'd' // tenant, env, app, ^start, id -> trace
	tID       = 'i' // tenant, env, app, id -> ^start
	tChain    = 'c' // tenant, env, app, correlation, ^start, id -> ""
	tStats    = 's' // tenant, env, app, route, level, minute, node -> count (merged)
	tModel    = 'p' // tenant, env, app, context -> model
)

// Levels of the statistics rows: a route's own or its nodes', per minute
// or per hour (the hour rows sum its minutes, so a day is 24 rows a node).
const (
	levelRoute byte = iota
	levelNode
	levelRouteHour
	levelNodeHour
)

type key []byte

func newKey(table byte, parts ...string) key {
	k := key{table}
	for _, p := range parts {
		k = k.str(p)
	}
	return k
}

func (k key) str(s string) key {
	return append(binary.AppendUvarint(k, uint64(len(s))), s...)
}

func (k key) u64(v uint64) key { return binary.BigEndian.AppendUint64(k, v) }

// inv is a start time (µs) that sorts newest first.
func inv(start int64) uint64 { return ^uint64(start) }

func minute(t time.Time) uint64 { return uint64(t.Unix() / 60) }

// appKey is the tuple that follows the table byte in the keys of an app.
func appKey(tenant, env, app string) key { return newKey(0, tenant, env, app)[1:] }

// in is the key of table t that starts with the tuple a.
func in(t byte, a key) key { return append(append(make(key, 0, len(a)+48), t), a...) }

// clone is k with room of its own, so appending to it leaves k as it is.
func (k key) clone() key { return append(make(key, 0, len(k)+32), k...) }

// end is the first key after every key that starts with k.
func (k key) end() key {
	e := k.clone()
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] != 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return nil
}

// exchangeTail reads what follows prefix p in an exchange key: its start
// and id.
func exchangeTail(k []byte, p int) (start int64, id string, ok bool) {
	if len(k) < p+8 {
		return 0, "", false
	}
	start = int64(^binary.BigEndian.Uint64(k[p:]))
	n, w := binary.Uvarint(k[p+8:])
	if w <= 0 || len(k) != p+8+w+int(n) {
		return 0, "", false
	}
	return start, string(k[p+8+w:]), true
}

// readStr reads a length-prefixed string at k[i:], and where it ends.
func readStr(k []byte, i int) (string, int, bool) {
	n, w := binary.Uvarint(k[i:])
	if w <= 0 || len(k) < i+w+int(n) {
		return "", 0, false
	}
	return string(k[i+w : i+w+int(n)]), i + w + int(n), true
}
