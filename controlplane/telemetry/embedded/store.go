// Package embedded is the default telemetry store: Pebble (an LSM tree) in
// a directory of the control plane's data dir, nothing else to run. Keys
// are ordered tenant, environment, app, then time, so every query is a
// range scan and retention a range deletion; docs/observability.md has the
// layout and why an LSM tree.
package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/telemetry"
)

// Store is a Pebble database of telemetry.
type Store struct {
	// mu lets Close wait for the calls in flight; a call after Close gets
	// ErrClosed rather than Pebble's panic.
	mu     sync.RWMutex
	closed bool
	db     *pebble.DB
}

// ErrClosed is what a call on a closed store answers.
var ErrClosed = errors.New("the telemetry store is closed")

// hold read-locks s for a call, unless it is closed.
func (s *Store) hold() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

var _ telemetry.Store = (*Store)(nil)

// Open opens (creating it if need be) the store in dir.
func Open(dir string, log *slog.Logger) (*Store, error) {
	o := &pebble.Options{
		Merger:                   merger,
		Logger:                   logger{log},
		MemTableSize:             64 << 20,
		L0CompactionThreshold:    4,
		L0StopWritesThreshold:    24,
		LBaseMaxBytes:            256 << 20,
		MaxConcurrentCompactions: func() int { return 2 },
	}
	o.EnsureDefaults()
	db, err := pebble.Open(dir, o)
	if err != nil {
		return nil, fmt.Errorf("open telemetry store in %s: %w", dir, err)
	}
	return &Store{db: db}, nil
}

// logger puts Pebble's log lines into the control plane's log.
type logger struct{ log *slog.Logger }

func (l logger) Infof(format string, a ...any) { l.log.Debug("pebble: " + fmt.Sprintf(format, a...)) }
func (l logger) Errorf(format string, a ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, a...))
}
func (l logger) Fatalf(format string, a ...any) {
	panic(fmt.Sprintf("pebble: "+format, a...))
}

// Close closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}

func (s *Store) get(k key) ([]byte, bool, error) {
	v, c, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer c.Close()
	return slices.Clone(v), true, nil
}

// Mark is the runner's highest stored sequence number.
func (s *Store) Mark(_ context.Context, tenant, runner string) (uint64, error) {
	if err := s.hold(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	v, ok, err := s.get(newKey(tMark, tenant, runner))
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("mark of %s/%s: %d bytes", tenant, runner, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// stored is an exchange's row in tExchange and tFailed.
type stored struct {
	S telemetry.ExchangeSummary `json:"s"`
	H []string                  `json:"h,omitempty"`
	F []string                  `json:"f,omitempty"`
}

// Write stores w and the runner's mark in one atomic, synced batch.
func (s *Store) Write(_ context.Context, w telemetry.Write) error {
	if err := s.hold(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	b := s.db.NewBatch()
	defer b.Close()
	t := w.Tenant
	_ = b.Set(newKey(tTenant, t), nil, nil)
	_ = b.Set(newKey(tMark, t, w.Runner), binary.BigEndian.AppendUint64(nil, w.Last), nil)
	apps := map[[2]string]bool{}
	routes := map[[3]string]bool{}
	for _, x := range w.Exchanges {
		sm := x.Summary
		apps[[2]string{sm.Environment, sm.App}] = true
		app := appKey(t, sm.Environment, sm.App)
		st := inv(sm.Start.UnixMicro())
		v, err := json.Marshal(stored{S: sm, H: x.Headers, F: x.FailedNodes})
		if err != nil {
			return fmt.Errorf("encode exchange %s: %w", sm.ID, err)
		}
		_ = b.Set(in(tExchange, app).u64(st).str(sm.ID), v, nil)
		if sm.Status != api.StatusCompleted {
			_ = b.Set(in(tFailed, app).u64(st).str(sm.ID), v, nil)
		}
		_ = b.Set(in(tTrace, app).u64(st).str(sm.ID), x.Trace, nil)
		_ = b.Set(in(tID, app).str(sm.ID), binary.BigEndian.AppendUint64(nil, st), nil)
		_ = b.Set(in(tChain, app).str(sm.Correlation).u64(st).str(sm.ID), nil, nil)
	}
	var val []byte
	for _, r := range w.Stats {
		apps[[2]string{r.Environment, r.App}] = true
		routes[[3]string{r.Environment, r.App, r.Route}] = true
		level := levelRoute
		if r.Node != "" {
			level = levelNode
		}
		p := newKey(tStats, t, r.Environment, r.App, r.Route)
		val = encodeCount(val[:0], r.Count)
		_ = b.Merge(append(p.clone(), level).u64(minute(r.Minute)).str(r.Node), val, nil)
		_ = b.Merge(append(p.clone(), level+levelRouteHour).u64(minute(r.Minute.Truncate(time.Hour))).str(r.Node), val, nil)
	}
	for a := range apps {
		_ = b.Set(newKey(tApp, t, a[0], a[1]), nil, nil)
	}
	for r := range routes {
		_ = b.Set(newKey(tRoute, t, r[0], r[1], r[2]), nil, nil)
	}
	if err := s.models(b, t, w.Models); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("commit telemetry of %s/%s: %w", t, w.Runner, err)
	}
	return nil
}

// models puts the route models that are newer than those stored into b.
func (s *Store) models(b *pebble.Batch, tenant string, ms []telemetry.StoredModel) error {
	pending := map[string]telemetry.StoredModel{}
	for _, m := range ms {
		k := newKey(tModel, tenant, m.Environment, m.App, m.Model.Context)
		old, ok := pending[string(k)]
		if !ok {
			v, found, err := s.get(k)
			if err != nil {
				return fmt.Errorf("route model of %s/%s: %w", m.App, m.Model.Context, err)
			}
			ok = found && json.Unmarshal(v, &old) == nil
		}
		if ok && (old.Received.After(m.Received) || old.Received.Equal(m.Received) && old.Seq > m.Seq) {
			continue
		}
		pending[string(k)] = m
		v, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("encode route model of %s: %w", m.App, err)
		}
		_ = b.Set(k, v, nil)
	}
	return nil
}

// Exchanges scans the table that holds the fewest rows beside what q asks:
// the chain of a correlation id, the failed and handled exchanges, or all.
func (s *Store) Exchanges(_ context.Context, q telemetry.ExchangeQuery, after telemetry.Position, limit int) ([]telemetry.ExchangeSummary, error) {
	if err := s.hold(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var p key
	chain := q.Correlation != ""
	switch {
	case chain:
		p = newKey(tChain, q.Tenant, q.Environment, q.App, q.Correlation)
	case q.Status == api.StatusFailed || q.Status == api.StatusHandled:
		p = newKey(tFailed, q.Tenant, q.Environment, q.App)
	default:
		p = newKey(tExchange, q.Tenant, q.Environment, q.App)
	}
	lo, hi := p.clone(), p.end()
	if !q.To.IsZero() {
		lo = p.clone().u64(inv(q.To.UnixMicro() - 1))
	}
	// A page goes on in key order from its last row's key, skipping it:
	// ids of one start sort there by length first, so the key, not the
	// Position, says what comes after.
	var last key
	if after != (telemetry.Position{}) {
		last = p.clone().u64(inv(after.Start)).str(after.ID)
		if bytes.Compare(last, lo) > 0 {
			lo = last
		}
	}
	if !q.From.IsZero() {
		hi = p.clone().u64(inv(q.From.UnixMicro()) + 1)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	// A row that Text matches holds it as a JSON string (the same encoder
	// wrote it): the rows without those bytes are not decoded.
	var needle, node []byte
	if q.Text != "" {
		needle, _ = json.Marshal(q.Text)
	}
	if q.Node != "" {
		node, _ = json.Marshal(q.Node)
	}
	var out []telemetry.ExchangeSummary
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		start, id, ok := exchangeTail(it.Key(), len(p))
		if !ok || bytes.Equal(it.Key(), last) {
			continue
		}
		v := it.Value()
		if chain {
			// The chain index points at the exchange's row.
			app := appKey(q.Tenant, q.Environment, q.App)
			row, found, err := s.get(in(tExchange, app).u64(inv(start)).str(id))
			if err != nil {
				return nil, err
			}
			if !found {
				continue
			}
			v = row
		}
		if (needle != nil && !bytes.Contains(v, needle)) || (node != nil && !bytes.Contains(v, node)) {
			continue
		}
		var st stored
		if err := json.Unmarshal(v, &st); err != nil {
			return nil, fmt.Errorf("exchange %s: %w", id, err)
		}
		// The key's start, to the microsecond: the row's JSON has milliseconds,
		// and a page that ends on it must go on exactly after it.
		st.S.Start = telemetry.Time{Time: time.UnixMicro(start).UTC()}
		if match(q, &st) {
			out = append(out, st.S)
		}
	}
	return out, it.Error()
}

func match(q telemetry.ExchangeQuery, st *stored) bool {
	x := &st.S
	switch {
	case q.Route != "" && x.Route != q.Route, q.Status != "" && x.Status != q.Status,
		q.Node != "" && !slices.Contains(st.F, q.Node):
		return false
	case q.Text == "", q.Text == x.ID, q.Text == x.Correlation:
		return true
	}
	return slices.Contains(st.H, q.Text)
}

// Exchange reads an exchange through the id index.
func (s *Store) Exchange(_ context.Context, tenant, env, app, id string) (telemetry.ExchangeSummary, json.RawMessage, error) {
	if err := s.hold(); err != nil {
		return telemetry.ExchangeSummary{}, nil, err
	}
	defer s.mu.RUnlock()
	a := appKey(tenant, env, app)
	st, ok, err := s.get(in(tID, a).str(id))
	if err == nil && (!ok || len(st) != 8) {
		err = telemetry.ErrNotFound
	}
	if err != nil {
		return telemetry.ExchangeSummary{}, nil, err
	}
	row, ok, err := s.get(in(tExchange, a).u64(binary.BigEndian.Uint64(st)).str(id))
	if err == nil && !ok {
		err = telemetry.ErrNotFound // expired, its index entry not yet
	}
	if err != nil {
		return telemetry.ExchangeSummary{}, nil, err
	}
	trace, ok, err := s.get(in(tTrace, a).u64(binary.BigEndian.Uint64(st)).str(id))
	if err == nil && !ok {
		err = telemetry.ErrNotFound
	}
	if err != nil {
		return telemetry.ExchangeSummary{}, nil, err
	}
	var x stored
	if err := json.Unmarshal(row, &x); err != nil {
		return telemetry.ExchangeSummary{}, nil, fmt.Errorf("exchange %s: %w", id, err)
	}
	x.S.Start = telemetry.Time{Time: time.UnixMicro(int64(^binary.BigEndian.Uint64(st))).UTC()}
	return x.S, trace, nil
}

// scan calls fn with the key and value of every row that starts with p.
func (s *Store) scan(lo, hi key, fn func(k, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

// strings are the last string of each key that starts with p.
func (s *Store) strings(p key) ([]string, error) {
	var out []string
	err := s.scan(p, p.end(), func(k, _ []byte) error {
		v, _, ok := readStr(k, len(p))
		if !ok {
			return fmt.Errorf("malformed key %q", k)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// Stats reads the rows of each route asked, a range per route and level.
// A total reads the hour rows of the whole hours within the window and
// the minute rows of its ragged ends.
func (s *Store) Stats(_ context.Context, q telemetry.StatsQuery) ([]telemetry.StatRow, error) {
	routes := []string{q.Route}
	if q.Route == "" {
		var err error
		if routes, err = s.strings(newKey(tRoute, q.Tenant, q.Environment, q.App)); err != nil {
			return nil, err
		}
	}
	levels := []byte{levelRoute}
	if q.Nodes {
		levels = append(levels, levelNode)
	}
	type span struct {
		from, to time.Time
		hours    bool
	}
	spans := []span{{q.From, q.To, false}}
	if h0, h1 := q.From.Add(time.Hour-time.Nanosecond).Truncate(time.Hour), q.To.Truncate(time.Hour); q.Total && h0.Before(h1) {
		spans = []span{{q.From, h0, false}, {h0, h1, true}, {h1, q.To, false}}
	}
	var out []telemetry.StatRow
	totals := map[[2]string]*api.Count{}
	for _, r := range routes {
		for _, l := range levels {
			for _, sp := range spans {
				lv := l
				if sp.hours {
					lv += levelRouteHour
				}
				p := append(newKey(tStats, q.Tenant, q.Environment, q.App, r), lv)
				err := s.scan(p.clone().u64(minute(sp.from)), p.clone().u64(minute(sp.to)), func(k, v []byte) error {
					node, _, ok := readStr(k, len(p)+8)
					c, err := decodeCount(v)
					if !ok || err != nil {
						return fmt.Errorf("malformed statistics row %q", k)
					}
					if q.Total {
						add(totals, [2]string{r, node}, c)
						return nil
					}
					m := time.Unix(int64(binary.BigEndian.Uint64(k[len(p):]))*60, 0).UTC()
					out = append(out, telemetry.StatRow{Environment: q.Environment, App: q.App, Route: r, Node: node, Minute: m, Count: c})
					return nil
				})
				if err != nil {
					return nil, err
				}
			}
		}
	}
	for k, c := range totals {
		out = append(out, telemetry.StatRow{Environment: q.Environment, App: q.App, Route: k[0], Node: k[1], Minute: q.From, Count: *c})
	}
	return out, nil
}

// add sums c into totals[k].
func add(totals map[[2]string]*api.Count, k [2]string, c api.Count) {
	t := totals[k]
	if t == nil {
		totals[k] = &c
		return
	}
	t.Count += c.Count
	t.Failures += c.Failures
	t.Sum += c.Sum
	t.Buckets = append(t.Buckets, c.Buckets...) // the service sums buckets by index
}

// Models reads the app's route models.
func (s *Store) Models(_ context.Context, tenant, env, app string) ([]api.RouteModel, error) {
	if err := s.hold(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var out []api.RouteModel
	p := newKey(tModel, tenant, env, app)
	err := s.scan(p, p.end(), func(_, v []byte) error {
		var m telemetry.StoredModel
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("route model of %s: %w", app, err)
		}
		out = append(out, m.Model)
		return nil
	})
	return out, err
}

// Tenants lists the tenants that ever wrote.
func (s *Store) Tenants(context.Context) ([]string, error) {
	if err := s.hold(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	return s.strings(key{tTenant})
}

// DeleteBefore deletes the tenant's old exchanges and statistics with
// range deletions per app and route, and the exchanges' index entries one
// by one.
func (s *Store) DeleteBefore(_ context.Context, tenant string, before time.Time) error {
	if err := s.hold(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	b := s.db.NewBatch()
	defer b.Close()
	ap := newKey(tApp, tenant)
	err := s.scan(ap, ap.end(), func(k, _ []byte) error {
		env, i, ok1 := readStr(k, len(ap))
		app, _, ok2 := readStr(k, i)
		if !ok1 || !ok2 {
			return fmt.Errorf("malformed key %q", k)
		}
		a := appKey(tenant, env, app)
		old := inv(before.UnixMicro() - 1) // rows older than before sort at or after it
		xp := in(tExchange, a)
		err := s.scan(xp.clone().u64(old), xp.end(), func(k, v []byte) error {
			var st stored
			if err := json.Unmarshal(v, &st); err != nil {
				return err
			}
			_ = b.Delete(in(tID, a).str(st.S.ID), nil)
			_ = b.Delete(in(tChain, a).str(st.S.Correlation).u64(inv(st.S.Start.UnixMicro())).str(st.S.ID), nil)
			return nil
		})
		if err != nil {
			return fmt.Errorf("old exchanges of %s/%s: %w", env, app, err)
		}
		for _, t := range []byte{tExchange, tFailed, tTrace} {
			p := in(t, a)
			_ = b.DeleteRange(p.clone().u64(old), p.end(), nil)
		}
		routes, err := s.strings(newKey(tRoute, tenant, env, app))
		if err != nil {
			return err
		}
		// A minute row goes once it starts before retention's start, an
		// hour row once its whole hour is past it.
		ends := [...]uint64{levelRoute: minute(before), levelNode: minute(before),
			levelRouteHour: minute(before.Add(-time.Hour)) + 1, levelNodeHour: minute(before.Add(-time.Hour)) + 1}
		for _, r := range routes {
			for l, end := range ends {
				p := append(newKey(tStats, tenant, env, app, r), byte(l))
				_ = b.DeleteRange(p, p.clone().u64(end), nil)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("retention of %s: %w", tenant, err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("retention of %s: %w", tenant, err)
	}
	return nil
}

// Size is the database's size on disk.
func (s *Store) Size(context.Context) (int64, error) {
	if err := s.hold(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	return int64(s.db.Metrics().DiskSpaceUsage()), nil
}
