// Package telemetry is the control plane's side of what the agents see of
// Camel: it takes the runners' batches (Ingest: validated whole, each
// record stored once), answers the queries of the API (Exchanges, Exchange,
// Routes, Series), reports its pipeline (Collectors) and enforces each
// tenant's retention (Run). Where the data lives is a Store: the embedded
// one or ClickHouse. docs/observability.md describes the whole.
package telemetry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// DefaultRetention is how long a tenant's telemetry is kept unless
// Options.Retention says otherwise.
const DefaultRetention = 7 * 24 * time.Hour

// RetentionInterval is how often Run removes what is past retention.
const RetentionInterval = 10 * time.Minute

// Bounds of the queries' windows and series.
const (
	MaxWindow = 31 * 24 * time.Hour
	MaxPoints = 1440
)

// Options configure the service.
type Options struct {
	Store Store
	Log   *slog.Logger
	// Retention is how long a tenant's telemetry is kept (nil, or 0 for
	// a tenant: DefaultRetention).
	Retention func(tenant string) time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Originals takes what a runner says of the originals it keeps for
	// replay, before the records that said it are marked stored (so it
	// may see notes again, in order, after a batch is resent); nil: they
	// are dropped.
	Originals func(ctx context.Context, tenant, runner string, notes []OriginalNote) error
}

// OriginalNote is what a runner said of an original of an app: it keeps
// it (Kept) or no longer does (Evicted), at Received.
type OriginalNote struct {
	Environment, App string
	Received         time.Time
	Kept             *api.Kept
	Evicted          *api.Evicted
}

// Service is the telemetry of every tenant.
type Service struct {
	opts    Options
	metrics metrics
	// runners serializes the batches of one runner: a mark is read, then
	// moved with the data.
	runners sync.Map // tenant + "/" + runner -> *sync.Mutex
}

// New makes the service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Service{opts: o, metrics: newMetrics(o.Store)}
}

func badRequest(format string, a ...any) error {
	return httpjson.Errorf(http.StatusBadRequest, format, a...)
}

// Ingest decodes and validates every record of a batch from runner of
// tenant (the tenant is the runner's certificate's, never the batch's) and
// stores the records above the runner's mark, moving the mark with them.
// Records at or below it are duplicates: counted and skipped. A malformed
// batch is refused whole with a 400 *httpjson.StatusError naming the
// fault and where it is, and nothing is stored.
func (s *Service) Ingest(ctx context.Context, tenant, runner string, b api.TelemetryBatch) (api.TelemetryAck, error) {
	now := s.opts.Now()
	recs, err := validate(&b, now)
	if err != nil {
		s.metrics.refused()
		return api.TelemetryAck{}, badRequest("telemetry batch: %v", err)
	}
	mu, _ := s.runners.LoadOrStore(tenant+"/"+runner, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()

	mark, err := s.opts.Store.Mark(ctx, tenant, runner)
	if err != nil {
		return api.TelemetryAck{}, fmt.Errorf("telemetry mark of runner %s: %w", runner, err)
	}
	w := Write{Tenant: tenant, Runner: runner, Last: mark}
	ack := api.TelemetryAck{Last: mark}
	var nodes int
	var notes []OriginalNote
	for _, d := range recs {
		if d.rec.Seq <= mark {
			ack.Duplicates++
			continue
		}
		ack.Stored++
		w.Last = d.rec.Seq
		if d.event.Kept != nil || d.event.Evicted != nil {
			notes = append(notes, OriginalNote{Environment: d.rec.Environment, App: d.rec.App,
				Received: time.UnixMilli(d.rec.Received), Kept: d.event.Kept, Evicted: d.event.Evicted})
			continue
		}
		nodes += add(&w, d)
	}
	if len(notes) > 0 && s.opts.Originals != nil {
		if err := s.opts.Originals(ctx, tenant, runner, notes); err != nil {
			return api.TelemetryAck{}, fmt.Errorf("note the originals of runner %s: %w", runner, err)
		}
	}
	if ack.Stored > 0 {
		if err := s.opts.Store.Write(ctx, w); err != nil {
			return api.TelemetryAck{}, fmt.Errorf("store telemetry of runner %s: %w", runner, err)
		}
		ack.Last = w.Last
	}
	s.metrics.ingested(tenant, runner, &b, recs, mark, nodes, ack.Duplicates, s.opts.Now())
	return ack, nil
}

// add puts one new record's event into w; it returns its node runs.
func add(w *Write, d decoded) int {
	r := d.rec
	switch ev := d.event; {
	case ev.Exchange != nil:
		x := ev.Exchange
		sum := ExchangeSummary{ID: x.ID, Environment: r.Environment, App: r.App, Instance: r.Instance,
			Context: x.Context, Route: x.Route, From: x.From, Correlation: x.Correlation, Parent: x.Parent,
			Start: micros(x.Start), DurationMicros: x.Duration, Status: x.Status, Redeliveries: x.Redeliveries,
			NodeCount: len(x.Nodes)}
		if x.Error != nil {
			sum.ErrorType, sum.ErrorMessage = x.Error.Type, x.Error.Message
		}
		w.Exchanges = append(w.Exchanges, StoredExchange{Seq: r.Seq, Summary: sum,
			Headers: headerValues(x.Headers), FailedNodes: failedNodes(x.Nodes), Trace: r.Event})
		return len(x.Nodes)
	case ev.Stats != nil:
		minute := time.UnixMicro(ev.Stats.Start).UTC().Truncate(time.Minute)
		for _, rs := range ev.Stats.Routes {
			row := StatRow{Seq: r.Seq, Environment: r.Environment, App: r.App, Route: rs.Route, Minute: minute}
			row.Count = rs.Count
			w.Stats = append(w.Stats, row)
			for _, n := range rs.Nodes {
				row.Node, row.Count = n.ID, n.Count
				w.Stats = append(w.Stats, row)
			}
		}
	default:
		w.Models = append(w.Models, StoredModel{Seq: r.Seq, Environment: r.Environment, App: r.App,
			Received: time.UnixMilli(r.Received).UTC(), Model: *ev.Routes})
	}
	return 0
}

// Exchanges answers one page of the exchanges q selects, newest first.
func (s *Service) Exchanges(ctx context.Context, q ExchangeQuery) (ExchangePage, error) {
	if err := checkApp(q.Environment, q.App); err != nil {
		return ExchangePage{}, err
	}
	switch q.Status {
	case "", api.StatusCompleted, api.StatusFailed, api.StatusHandled:
	default:
		return ExchangePage{}, badRequest("status %q: want %s, %s or %s", q.Status, api.StatusCompleted, api.StatusFailed, api.StatusHandled)
	}
	if len(q.Route) > MaxName || len(q.Node) > MaxName || len(q.Correlation) > MaxName || len(q.Text) > MaxText {
		return ExchangePage{}, badRequest("route, node or correlation over %d bytes, or text over %d", MaxName, MaxText)
	}
	if q.Limit < 0 || q.Limit > MaxLimit {
		return ExchangePage{}, badRequest("limit %d not in 1..%d", q.Limit, MaxLimit)
	}
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return ExchangePage{}, badRequest("from must be before to")
	}
	after, err := decodeCursor(q.Cursor)
	if err != nil {
		return ExchangePage{}, err
	}
	xs, err := s.opts.Store.Exchanges(ctx, q, after, q.Limit+1)
	if err != nil {
		return ExchangePage{}, fmt.Errorf("list exchanges of %s/%s: %w", q.Environment, q.App, err)
	}
	page := ExchangePage{Exchanges: xs}
	if len(xs) > q.Limit {
		page.Exchanges = xs[:q.Limit]
		last := xs[q.Limit-1]
		page.Next = encodeCursor(Position{Start: last.Start.UnixMicro(), ID: last.ID})
	}
	if page.Exchanges == nil {
		page.Exchanges = []ExchangeSummary{}
	}
	return page, nil
}

// After is the cursor of the page that follows the exchange that began at
// start (microseconds) with id: where a walk of the exchanges goes on.
func After(start int64, id string) string { return encodeCursor(Position{Start: start, ID: id}) }

func encodeCursor(p Position) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(p.Start, 10) + ":" + p.ID))
}

func decodeCursor(c string) (Position, error) {
	if c == "" {
		return Position{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	start, id, ok := strings.Cut(string(b), ":")
	n, perr := strconv.ParseInt(start, 10, 64)
	if err != nil || !ok || perr != nil || id == "" {
		return Position{}, badRequest("cursor %.40q: not one this API gave", c)
	}
	return Position{Start: n, ID: id}, nil
}

func checkApp(env, app string) error {
	if err := api.ValidName(env); err != nil {
		return badRequest("environment: %v", err)
	}
	if err := api.ValidName(app); err != nil {
		return badRequest("app: %v", err)
	}
	return nil
}

// Exchange answers one exchange's whole trace with the summaries of its
// chain; a 404 *httpjson.StatusError when the tenant has no such exchange.
func (s *Service) Exchange(ctx context.Context, tenant, env, app, id string) (ExchangeDetail, error) {
	if err := checkApp(env, app); err != nil {
		return ExchangeDetail{}, err
	}
	if err := name("exchange id", id); err != nil {
		return ExchangeDetail{}, badRequest("%v", err)
	}
	sum, raw, err := s.opts.Store.Exchange(ctx, tenant, env, app, id)
	if errors.Is(err, ErrNotFound) {
		return ExchangeDetail{}, httpjson.Errorf(http.StatusNotFound, "app %s in %s has no exchange %q", app, env, id)
	}
	if err != nil {
		return ExchangeDetail{}, fmt.Errorf("exchange %s of %s/%s: %w", id, env, app, err)
	}
	var ev api.Event
	if err := json.Unmarshal(raw, &ev); err != nil || ev.Exchange == nil {
		return ExchangeDetail{}, fmt.Errorf("exchange %s of %s/%s: stored trace unreadable: %v", id, env, app, err)
	}
	x := ev.Exchange
	d := ExchangeDetail{ExchangeSummary: sum, ReplayOf: x.ReplayOf, Replayable: x.Replayable, Body: x.Body, BodySize: x.BodySize, BodyTruncated: x.BodyTruncated,
		Headers: x.Headers, NodesDropped: x.NodesDropped, Nodes: make([]TraceNode, len(x.Nodes))}
	if x.Error != nil {
		d.Stack = x.Error.Stack
	}
	for i, n := range x.Nodes {
		d.Nodes[i] = TraceNode{ID: n.ID, Type: n.Type, Label: n.Label, Route: n.Route, Parent: n.Parent,
			Exchange: n.Exchange, Start: micros(n.Start), OffsetMicros: n.Start - x.Start,
			DurationMicros: n.Duration, Failed: n.Failed}
	}
	chain, err := s.opts.Store.Exchanges(ctx, ExchangeQuery{Tenant: tenant, Environment: env, App: app,
		Correlation: sum.Correlation}, Position{}, MaxLimit+1)
	if err != nil {
		return ExchangeDetail{}, fmt.Errorf("exchanges correlated with %s: %w", id, err)
	}
	d.Correlated = []ExchangeSummary{}
	for _, c := range chain {
		if c.ID != id && len(d.Correlated) < MaxLimit {
			d.Correlated = append(d.Correlated, c)
		}
	}
	return d, nil
}

// window is the minutes [from, to) that end with the current one.
func (s *Service) window(window time.Duration) (from, to time.Time, err error) {
	if window < time.Minute || window > MaxWindow {
		return from, to, badRequest("window %s not in 1m..%s", window, MaxWindow)
	}
	to = s.opts.Now().UTC().Truncate(time.Minute).Add(time.Minute)
	return to.Add(-window), to, nil
}

// Routes answers the routes of an app (of every context) as the latest
// route models define them, with the route's and each node's Aggregate
// over the last window.
func (s *Service) Routes(ctx context.Context, tenant, env, app string, window time.Duration) ([]RouteView, error) {
	if err := checkApp(env, app); err != nil {
		return nil, err
	}
	from, to, err := s.window(window)
	if err != nil {
		return nil, err
	}
	models, err := s.opts.Store.Models(ctx, tenant, env, app)
	if err != nil {
		return nil, fmt.Errorf("route models of %s/%s: %w", env, app, err)
	}
	rows, err := s.opts.Store.Stats(ctx, StatsQuery{Tenant: tenant, Environment: env, App: app, From: from, To: to,
		Nodes: true, Total: true})
	if err != nil {
		return nil, fmt.Errorf("statistics of %s/%s: %w", env, app, err)
	}
	// Sum per route and node.
	type key struct{ route, node string }
	sums := map[key]*summer{}
	for _, r := range rows {
		k := key{r.Route, r.Node}
		if sums[k] == nil {
			sums[k] = &summer{buckets: map[uint64]uint64{}}
		}
		sums[k].add(r.Count)
	}
	agg := func(route, node string) Aggregate {
		if sm := sums[key{route, node}]; sm != nil {
			return sm.aggregate()
		}
		return Aggregate{}
	}
	views := []RouteView{}
	modelled := map[string]bool{}
	for _, m := range models {
		for _, g := range m.Routes {
			modelled[g.ID] = true
			v := RouteView{Context: m.Context, ID: g.ID, From: g.From, Description: g.Description,
				Stats: agg(g.ID, ""), Edges: g.Edges, Nodes: make([]RouteNode, len(g.Nodes))}
			if v.Edges == nil {
				v.Edges = [][2]string{}
			}
			for i, n := range g.Nodes {
				v.Nodes[i] = RouteNode{ID: n.ID, Type: n.Type, Label: n.Label, Parent: n.Parent, Order: n.Order,
					Stats: agg(g.ID, n.ID)}
			}
			views = append(views, v)
		}
	}
	// Routes with statistics and no model: their nodes are what ran.
	extra := map[string][]string{}
	for k := range sums {
		if !modelled[k.route] {
			if _, ok := extra[k.route]; !ok {
				extra[k.route] = nil
			}
			if k.node != "" {
				extra[k.route] = append(extra[k.route], k.node)
			}
		}
	}
	for route, nodes := range extra {
		sort.Strings(nodes)
		v := RouteView{ID: route, Stats: agg(route, ""), Edges: [][2]string{}, Nodes: make([]RouteNode, len(nodes))}
		for i, n := range nodes {
			v.Nodes[i] = RouteNode{ID: n, Order: i, Stats: agg(route, n)}
		}
		views = append(views, v)
	}
	sort.SliceStable(views, func(i, j int) bool {
		if views[i].ID != views[j].ID {
			return views[i].ID < views[j].ID
		}
		return views[i].Context < views[j].Context
	})
	return views, nil
}

// summer adds up counts and their histograms.
type summer struct {
	count, failures uint64
	sum             int64
	buckets         map[uint64]uint64
}

func (s *summer) add(c api.Count) {
	s.count += c.Count
	s.failures += c.Failures
	s.sum += c.Sum
	for _, b := range c.Buckets {
		s.buckets[b[0]] += b[1]
	}
}

func (s *summer) aggregate() Aggregate {
	a := Aggregate{Count: s.count, Failures: s.failures}
	if s.count > 0 {
		a.MeanMicros = float64(s.sum) / float64(s.count)
	}
	bs := make([]uint64, 0, len(s.buckets))
	var total uint64
	for b, n := range s.buckets {
		bs = append(bs, b)
		total += n
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i] < bs[j] })
	a.P50Micros = percentile(bs, s.buckets, total, 0.50)
	a.P95Micros = percentile(bs, s.buckets, total, 0.95)
	a.P99Micros = percentile(bs, s.buckets, total, 0.99)
	return a
}

// percentile is the upper bound of the bucket the p-th of total durations
// falls in; bs are the buckets in order.
func percentile(bs []uint64, n map[uint64]uint64, total uint64, p float64) float64 {
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p * float64(total)))
	var seen uint64
	for _, b := range bs {
		seen += n[b]
		if seen >= rank {
			return math.Round(api.BucketUpper(int(b))*10) / 10
		}
	}
	return api.BucketUpper(int(bs[len(bs)-1]))
}

// Series answers the throughput and error rate of an app's exchanges, or
// (route != "") of one route's, over the last window in steps of step (a
// whole number of minutes), oldest first, steps without exchanges as 0.
func (s *Service) Series(ctx context.Context, tenant, env, app, route string, window, step time.Duration) ([]Point, error) {
	if err := checkApp(env, app); err != nil {
		return nil, err
	}
	if len(route) > MaxName {
		return nil, badRequest("route over %d bytes", MaxName)
	}
	if step < time.Minute || step%time.Minute != 0 {
		return nil, badRequest("step %s: want a whole number of minutes", step)
	}
	if window/step > MaxPoints {
		return nil, badRequest("window %s in steps of %s is over %d points", window, step, MaxPoints)
	}
	_, to, err := s.window(window)
	if err != nil {
		return nil, err
	}
	n := int((window + step - 1) / step)
	from := to.Add(-time.Duration(n) * step)
	rows, err := s.opts.Store.Stats(ctx, StatsQuery{Tenant: tenant, Environment: env, App: app, Route: route, From: from, To: to})
	if err != nil {
		return nil, fmt.Errorf("statistics of %s/%s: %w", env, app, err)
	}
	pts := make([]Point, n)
	for i := range pts {
		pts[i].Time = Time{from.Add(time.Duration(i) * step)}
	}
	for _, r := range rows {
		i := int(r.Minute.Sub(from) / step)
		if r.Node != "" || i < 0 || i >= n {
			continue
		}
		pts[i].Count += r.Count.Count
		pts[i].Failures += r.Failures
	}
	for i := range pts {
		pts[i].Throughput = float64(pts[i].Count) / step.Seconds()
		if pts[i].Count > 0 {
			pts[i].ErrorRate = float64(pts[i].Failures) / float64(pts[i].Count)
		}
	}
	return pts, nil
}

// Run removes each tenant's telemetry past its retention, now and every
// RetentionInterval, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(RetentionInterval)
	defer t.Stop()
	for {
		s.Expire(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Expire removes each tenant's telemetry past its retention once.
func (s *Service) Expire(ctx context.Context) {
	tenants, err := s.opts.Store.Tenants(ctx)
	if err != nil {
		s.opts.Log.Error("telemetry retention: list tenants", "err", err)
		return
	}
	now := s.opts.Now()
	for _, t := range tenants {
		keep := DefaultRetention
		if s.opts.Retention != nil {
			if d := s.opts.Retention(t); d > 0 {
				keep = d
			}
		}
		if err := s.opts.Store.DeleteBefore(ctx, t, now.Add(-keep)); err != nil {
			s.opts.Log.Error("telemetry retention", "tenant", t, "err", err)
		}
	}
}

// failedNodes are the ids of the nodes whose runs failed, each once.
func failedNodes(runs []api.NodeRun) []string {
	var ids []string
	for _, n := range runs {
		if n.Failed && !slices.Contains(ids, n.ID) {
			ids = append(ids, n.ID)
		}
	}
	return ids
}
