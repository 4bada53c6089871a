// Package storetest is what every telemetry.Store must pass, through the
// service: each record stored once, a refused batch stores nothing, tenants
// never see each other, and every query answers what it says.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/telemetry"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// Now is the clock of every service the suite makes.
var Now = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// Run runs the suite; open makes an empty store (closed by the suite).
func Run(t *testing.T, open func(t *testing.T) telemetry.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, *telemetry.Service)
	}{
		{"Duplicates", testDuplicates},
		{"RefusedStoresNothing", testRefused},
		{"Tenants", testTenants},
		{"Filters", testFilters},
		{"Paging", testPaging},
		{"PagingByTheMicrosecond", testPagingByTheMicrosecond},
		{"Exchange", testExchange},
		{"Routes", testRoutes},
		{"RouteWindows", testRouteWindows},
		{"Series", testSeries},
		{"Retention", testRetention},
		{"Metrics", testMetrics},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := open(t)
			t.Cleanup(func() { st.Close() })
			tc.fn(t, telemetry.New(telemetry.Options{Store: st, Now: func() time.Time { return Now },
				Retention: func(tenant string) time.Duration {
					if tenant == "short" {
						return time.Hour
					}
					return 0
				}}))
		})
	}
	t.Run("OriginalNotes", func(t *testing.T) {
		st := open(t)
		t.Cleanup(func() { st.Close() })
		testOriginalNotes(t, st)
	})
}

// testOriginalNotes: what a runner says of its originals goes to the
// service's Originals, in order, once per record stored, beside the
// exchanges; a batch resent hands nothing on again.
func testOriginalNotes(t *testing.T, st telemetry.Store) {
	var got []telemetry.OriginalNote
	s := telemetry.New(telemetry.Options{Store: st, Now: func() time.Time { return Now },
		Originals: func(_ context.Context, tenant, runner string, notes []telemetry.OriginalNote) error {
			if tenant != "acme" || runner != "r1" {
				t.Errorf("notes of %s/%s", tenant, runner)
			}
			got = append(got, notes...)
			return nil
		}})
	until := Now.Add(time.Hour).UnixMilli()
	b := Batch(1, "orders", Ex("a", "r1", api.StatusFailed, time.Minute, 2),
		api.Event{Kind: api.KindKept, Kept: &api.Kept{Exchange: "a", Route: "r1", Until: until}},
		api.Event{Kind: api.KindEvicted, Evicted: &api.Evicted{Exchange: "z", Reason: api.EvictedBytes}})
	if ack := ingest(t, s, "acme", "r1", b); ack.Stored != 3 || ack.Last != 3 {
		t.Fatalf("ack %+v", ack)
	}
	if ack := ingest(t, s, "acme", "r1", b); ack.Duplicates != 3 {
		t.Fatalf("resent: ack %+v", ack)
	}
	if len(got) != 2 || got[0].Kept == nil || got[0].Kept.Exchange != "a" || got[0].Kept.Until != until || got[0].App != "orders" ||
		got[1].Evicted == nil || got[1].Evicted.Exchange != "z" {
		t.Fatalf("notes handed on: %+v", got)
	}
	if ids := list(t, s, telemetry.ExchangeQuery{}); !reflect.DeepEqual(ids, []string{"a"}) {
		t.Fatalf("exchanges stored: %v", ids)
	}
}

// Ex is an exchange of route started ago before Now.
func Ex(id, route, status string, ago time.Duration, nodes int) api.Event {
	start := Now.Add(-ago).UnixMicro()
	x := &api.Exchange{ID: id, Context: "ctx", Route: route, From: "timer:" + route, Correlation: id,
		Start: start, Duration: 1500, Status: status, BodySize: 4, Body: "body",
		Headers: map[string]string{"orderId": "order-" + id}}
	if status != api.StatusCompleted {
		x.Error = &api.ExchangeError{Type: "java.lang.IllegalStateException", Message: "boom", Stack: "at x"}
	}
	for i := 0; i < nodes; i++ {
		x.Nodes = append(x.Nodes, api.NodeRun{ID: fmt.Sprintf("n%d", i), Type: "to", Route: route, Parent: i - 1,
			Start: start + int64(i*10), Duration: 100, Failed: status != api.StatusCompleted && i == nodes-1})
	}
	return api.Event{Kind: api.KindExchange, Exchange: x}
}

// Batch wraps events as records of app in env "dev", seqs from first on.
func Batch(first uint64, app string, evs ...api.Event) api.TelemetryBatch {
	var b api.TelemetryBatch
	for i, ev := range evs {
		raw, err := json.Marshal(ev)
		if err != nil {
			panic(err)
		}
		b.Records = append(b.Records, api.TelemetryRecord{Seq: first + uint64(i), Environment: "dev", App: app,
			Instance: app + "-0", Received: Now.Add(-time.Second).UnixMilli(), Event: raw})
	}
	return b
}

func ingest(t *testing.T, s *telemetry.Service, tenant, runner string, b api.TelemetryBatch) api.TelemetryAck {
	t.Helper()
	ack, err := s.Ingest(context.Background(), tenant, runner, b)
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	return ack
}

func list(t *testing.T, s *telemetry.Service, q telemetry.ExchangeQuery) []string {
	t.Helper()
	if q.Tenant == "" {
		q.Tenant = "acme"
	}
	q.Environment, q.Limit = "dev", telemetry.MaxLimit
	if q.App == "" {
		q.App = "orders"
	}
	p, err := s.Exchanges(context.Background(), q)
	if err != nil {
		t.Fatalf("exchanges %+v: %v", q, err)
	}
	ids := []string{}
	for _, x := range p.Exchanges {
		ids = append(ids, x.ID)
	}
	return ids
}

// Stats is one route's statistics of a minute ago before Now: count runs
// of 1000 µs of which failed failed, over its nodes.
func Stats(route string, ago time.Duration, count, failed uint64, nodes ...string) api.Event {
	c := api.Count{Count: count, Failures: failed, Sum: int64(count) * 1000,
		Buckets: [][2]uint64{{uint64(api.Bucket(1000)), count}}}
	rs := api.RouteStats{Route: route, Count: c}
	for _, n := range nodes {
		rs.Nodes = append(rs.Nodes, api.NodeStats{ID: n, Count: c})
	}
	return api.Event{Kind: api.KindStats, Stats: &api.Stats{Context: "ctx", Start: Now.Add(-ago).UnixMicro(),
		Seconds: 10, Routes: []api.RouteStats{rs}}}
}

func testDuplicates(t *testing.T, s *telemetry.Service) {
	evs := []api.Event{Ex("a", "r1", api.StatusCompleted, time.Minute, 2), Ex("b", "r1", api.StatusFailed, time.Minute, 2),
		Stats("r1", time.Minute, 10, 1, "n0"), Ex("c", "r1", api.StatusCompleted, time.Minute, 2)}
	if ack := ingest(t, s, "acme", "run1", Batch(1, "orders", evs[:3]...)); ack != (api.TelemetryAck{Stored: 3, Last: 3}) {
		t.Fatalf("first batch: %+v", ack)
	}
	if ack := ingest(t, s, "acme", "run1", Batch(1, "orders", evs[:3]...)); ack != (api.TelemetryAck{Duplicates: 3, Last: 3}) {
		t.Fatalf("resent batch: %+v", ack)
	}
	// Overlapping: seqs 2..4, of which 4 is new.
	if ack := ingest(t, s, "acme", "run1", Batch(2, "orders", evs[1:]...)); ack != (api.TelemetryAck{Stored: 1, Duplicates: 2, Last: 4}) {
		t.Fatalf("overlapping batch: %+v", ack)
	}
	if got := list(t, s, telemetry.ExchangeQuery{}); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("exchanges = %v, want a b c once each", got)
	}
	routes, err := s.Routes(context.Background(), "acme", "dev", "orders", time.Hour)
	if err != nil || len(routes) != 1 || routes[0].Stats.Count != 10 || routes[0].Nodes[0].Stats.Count != 10 {
		t.Errorf("routes = %+v, %v; want r1 counted 10 once", routes, err)
	}
	// Another runner's sequence numbers are its own.
	if ack := ingest(t, s, "acme", "run2", Batch(1, "orders", Ex("d", "r1", api.StatusCompleted, time.Minute, 1))); ack.Stored != 1 {
		t.Errorf("other runner: %+v", ack)
	}
}

// refused checks that err is a one-line 400 naming want.
func refused(t *testing.T, err error, want string) {
	t.Helper()
	var se *httpjson.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusBadRequest {
		t.Fatalf("err = %v, want a 400 StatusError", err)
	}
	if !strings.Contains(se.Msg, want) {
		t.Errorf("message %q does not name %q", se.Msg, want)
	}
}

func testRefused(t *testing.T, s *telemetry.Service) {
	b := Batch(1, "orders", Ex("a", "r1", api.StatusCompleted, time.Minute, 1), Stats("r1", time.Minute, 1, 0),
		Ex("b", "r1", "exploded", time.Minute, 1))
	_, err := s.Ingest(context.Background(), "acme", "run1", b)
	refused(t, err, "record 2 (seq 3): exchange: unknown status")
	if got := list(t, s, telemetry.ExchangeQuery{}); len(got) != 0 {
		t.Errorf("a refused batch stored %v", got)
	}
	// The mark did not move: the same seqs, valid, are stored.
	b = Batch(1, "orders", Ex("a", "r1", api.StatusCompleted, time.Minute, 1))
	if ack := ingest(t, s, "acme", "run1", b); ack.Stored != 1 {
		t.Errorf("after a refusal: %+v", ack)
	}
}

func testTenants(t *testing.T, s *telemetry.Service) {
	ingest(t, s, "acme", "run1", Batch(1, "orders", Ex("a", "r1", api.StatusCompleted, time.Minute, 1),
		Stats("r1", time.Minute, 5, 0)))
	// The same runner name and seqs in another tenant are not duplicates.
	if ack := ingest(t, s, "other", "run1", Batch(1, "orders", Ex("b", "r1", api.StatusFailed, time.Minute, 1))); ack.Stored != 1 {
		t.Fatalf("other tenant's batch: %+v", ack)
	}
	if got := list(t, s, telemetry.ExchangeQuery{}); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("acme sees %v", got)
	}
	if got := list(t, s, telemetry.ExchangeQuery{Tenant: "other"}); !reflect.DeepEqual(got, []string{"b"}) {
		t.Errorf("other sees %v", got)
	}
	if _, err := s.Exchange(context.Background(), "other", "dev", "orders", "a"); !isStatus(err, http.StatusNotFound) {
		t.Errorf("other reads acme's exchange: %v", err)
	}
	routes, err := s.Routes(context.Background(), "other", "dev", "orders", time.Hour)
	if err != nil || len(routes) != 0 {
		t.Errorf("other sees acme's routes: %+v, %v", routes, err)
	}
}

func isStatus(err error, status int) bool {
	var se *httpjson.StatusError
	return errors.As(err, &se) && se.Status == status
}

func testFilters(t *testing.T, s *telemetry.Service) {
	chainChild := Ex("k", "r2", api.StatusCompleted, 3*time.Minute, 1)
	chainChild.Exchange.Correlation, chainChild.Exchange.Parent = "a", "a"
	ingest(t, s, "acme", "run1", Batch(1, "orders",
		Ex("a", "r1", api.StatusCompleted, 5*time.Minute, 1),
		Ex("b", "r1", api.StatusFailed, 4*time.Minute, 1),
		chainChild,
		Ex("h", "r2", api.StatusHandled, 2*time.Minute, 1),
		Ex("old", "r1", api.StatusFailed, 3*time.Hour, 1)))
	ingest(t, s, "acme", "run1", Batch(6, "billing", Ex("z", "r1", api.StatusFailed, time.Minute, 1)))
	for _, c := range []struct {
		q    telemetry.ExchangeQuery
		want []string
	}{
		{telemetry.ExchangeQuery{}, []string{"h", "k", "b", "a", "old"}},
		{telemetry.ExchangeQuery{App: "billing"}, []string{"z"}},
		{telemetry.ExchangeQuery{Route: "r1"}, []string{"b", "a", "old"}},
		{telemetry.ExchangeQuery{Status: api.StatusFailed}, []string{"b", "old"}},
		{telemetry.ExchangeQuery{Status: api.StatusHandled}, []string{"h"}},
		{telemetry.ExchangeQuery{Status: api.StatusCompleted}, []string{"k", "a"}},
		{telemetry.ExchangeQuery{Status: api.StatusFailed, From: Now.Add(-time.Hour)}, []string{"b"}},
		{telemetry.ExchangeQuery{From: Now.Add(-4 * time.Minute), To: Now.Add(-2 * time.Minute)}, []string{"k", "b"}},
		{telemetry.ExchangeQuery{Text: "b"}, []string{"b"}},
		{telemetry.ExchangeQuery{Text: "a"}, []string{"k", "a"}}, // by correlation id
		{telemetry.ExchangeQuery{Text: "order-h"}, []string{"h"}},
		{telemetry.ExchangeQuery{Text: "nothing"}, []string{}},
		{telemetry.ExchangeQuery{Correlation: "a"}, []string{"k", "a"}},
		{telemetry.ExchangeQuery{Correlation: "a", Route: "r2"}, []string{"k"}},
		{telemetry.ExchangeQuery{Node: "n0"}, []string{"h", "b", "old"}}, // failed or handled at n0
		{telemetry.ExchangeQuery{Node: "n0", Status: api.StatusFailed, Route: "r1"}, []string{"b", "old"}},
		{telemetry.ExchangeQuery{Node: "n1"}, []string{}},
	} {
		if got := list(t, s, c.q); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%+v: got %v, want %v", c.q, got, c.want)
		}
	}
	_, err := s.Exchanges(context.Background(), telemetry.ExchangeQuery{Tenant: "acme", Environment: "dev", App: "orders", Status: "bad"})
	refused(t, err, "status")
	_, err = s.Exchanges(context.Background(), telemetry.ExchangeQuery{Tenant: "acme", Environment: "dev", App: "orders", Cursor: "!!"})
	refused(t, err, "cursor")
}

func testPaging(t *testing.T, s *telemetry.Service) {
	var evs []api.Event
	var want []string
	for i := 0; i < 23; i++ {
		// Pairs that started in the same microsecond, to page within one.
		evs = append(evs, Ex(fmt.Sprintf("x%02d", i), "r1", api.StatusCompleted, time.Duration(i/2)*time.Second, 0))
	}
	ingest(t, s, "acme", "run1", Batch(1, "orders", evs...))
	for i := 0; i < 23; i += 2 {
		want = append(want, fmt.Sprintf("x%02d", i))
		if i+1 < 23 {
			want = append(want, fmt.Sprintf("x%02d", i+1))
		}
	}
	var got []string
	q := telemetry.ExchangeQuery{Tenant: "acme", Environment: "dev", App: "orders", Limit: 5}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		p, err := s.Exchanges(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range p.Exchanges {
			got = append(got, x.ID)
		}
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pages gave %v, want %v", got, want)
	}
}

// testPagingByTheMicrosecond: pages of one exchange each go through
// exchanges microseconds apart within one millisecond, and ids of unlike
// length that began in the same microsecond, each once, newest first.
func testPagingByTheMicrosecond(t *testing.T, s *telemetry.Service) {
	base := Now.Add(-time.Second).Truncate(time.Millisecond)
	var evs []api.Event
	want := map[string]bool{}
	for i, us := range []int{900, 900, 900, 500, 3, 3, 0} {
		id := []string{"b", "ab", "a", "m1", "z", "zz", "last"}[i]
		ev := Ex(id, "r1", api.StatusFailed, 0, 1)
		ev.Exchange.Start = base.Add(time.Duration(us) * time.Microsecond).UnixMicro()
		ev.Exchange.Nodes[0].Start = ev.Exchange.Start
		evs = append(evs, ev)
		want[id] = true
	}
	ingest(t, s, "acme", "run1", Batch(1, "orders", evs...))
	for _, status := range []string{"", api.StatusFailed} {
		got := map[string]bool{}
		var prev time.Time
		q := telemetry.ExchangeQuery{Tenant: "acme", Environment: "dev", App: "orders", Status: status, Limit: 1}
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatal("paging does not end")
			}
			p, err := s.Exchanges(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range p.Exchanges {
				if got[x.ID] || (!prev.IsZero() && x.Start.After(prev)) {
					t.Fatalf("status %q: %s (start %s) again or out of order after %s", status, x.ID, x.Start.Format(time.RFC3339Nano), prev.Format(time.RFC3339Nano))
				}
				got[x.ID], prev = true, x.Start.Time
			}
			if p.Next == "" {
				break
			}
			q.Cursor = p.Next
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("status %q: pages of one gave %v, want %v", status, got, want)
		}
	}
}

func testExchange(t *testing.T, s *telemetry.Service) {
	child := Ex("child", "r2", api.StatusCompleted, time.Minute, 1)
	child.Exchange.Correlation, child.Exchange.Parent = "root", "root"
	ingest(t, s, "acme", "run1", Batch(1, "orders", Ex("root", "r1", api.StatusFailed, 2*time.Minute, 3), child,
		Ex("alone", "r1", api.StatusCompleted, time.Minute, 0)))
	d, err := s.Exchange(context.Background(), "acme", "dev", "orders", "root")
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != api.StatusFailed || d.ErrorType == "" || d.Stack != "at x" || d.Body != "body" || d.Headers["orderId"] != "order-root" {
		t.Errorf("detail = %+v", d)
	}
	if len(d.Nodes) != 3 || d.Nodes[2].OffsetMicros != 20 || d.Nodes[2].Parent != 1 || !d.Nodes[2].Failed || d.NodeCount != 3 {
		t.Errorf("nodes = %+v", d.Nodes)
	}
	if len(d.Correlated) != 1 || d.Correlated[0].ID != "child" || d.Correlated[0].Parent != "root" {
		t.Errorf("correlated = %+v", d.Correlated)
	}
	b, _ := json.Marshal(d)
	var m map[string]any
	json.Unmarshal(b, &m)
	if m["start"] != Now.Add(-2*time.Minute).Format("2006-01-02T15:04:05.000Z07:00") || m["durationMicros"] != 1500.0 {
		t.Errorf("JSON start %v, durationMicros %v", m["start"], m["durationMicros"])
	}
	if _, err := s.Exchange(context.Background(), "acme", "dev", "orders", "missing"); !isStatus(err, http.StatusNotFound) {
		t.Errorf("missing exchange: %v", err)
	}
}

func model(routes ...api.RouteGraph) api.Event {
	return api.Event{Kind: api.KindRoutes, Routes: &api.RouteModel{Context: "ctx", Routes: routes}}
}

func testRoutes(t *testing.T, s *telemetry.Service) {
	old := model(api.RouteGraph{ID: "gone", From: "timer:x", Nodes: []api.RouteNode{{ID: "from", Type: "from"}}})
	cur := model(api.RouteGraph{ID: "r1", From: "timer:r1", Nodes: []api.RouteNode{{ID: "from", Type: "from"},
		{ID: "n0", Type: "to", Order: 1}, {ID: "n1", Type: "log", Order: 2}}, Edges: [][2]string{{"from", "n0"}, {"n0", "n1"}}})
	// Durations: 90 runs of ~1 ms and 10 of ~100 ms.
	slow := Stats("r1", 2*time.Minute, 10, 5, "n0")
	for i := range slow.Stats.Routes[0].Nodes {
		slow.Stats.Routes[0].Nodes[i].Buckets = [][2]uint64{{uint64(api.Bucket(100000)), 10}}
	}
	slow.Stats.Routes[0].Buckets = [][2]uint64{{uint64(api.Bucket(100000)), 10}}
	ingest(t, s, "acme", "run1", Batch(1, "orders", old, cur,
		Stats("r1", time.Minute, 50, 0, "n0", "n1"), Stats("r1", 2*time.Minute, 40, 0, "n0"), slow,
		Stats("r1", 3*time.Hour, 1000, 0, "n0"), Stats("unmodelled", time.Minute, 3, 3, "x")))
	routes, err := s.Routes(context.Background(), "acme", "dev", "orders", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 2 || routes[0].ID != "r1" || routes[1].ID != "unmodelled" {
		t.Fatalf("routes = %+v, want r1 (the latest model) and unmodelled", routes)
	}
	r := routes[0]
	if r.Stats.Count != 100 || r.Stats.Failures != 5 || len(r.Nodes) != 3 || len(r.Edges) != 2 {
		t.Errorf("r1 = %+v", r)
	}
	p50, p95 := api.BucketUpper(api.Bucket(1000)), api.BucketUpper(api.Bucket(100000))
	near := func(a, b float64) bool { return a > b*0.99 && a < b*1.01 }
	if !near(r.Stats.P50Micros, p50) || !near(r.Stats.P95Micros, p95) || !near(r.Stats.P99Micros, p95) {
		t.Errorf("r1 percentiles %v %v %v, want %v %v %v", r.Stats.P50Micros, r.Stats.P95Micros, r.Stats.P99Micros, p50, p95, p95)
	}
	if r.Nodes[1].ID != "n0" || r.Nodes[1].Stats.Count != 100 || r.Nodes[2].Stats.Count != 50 || r.Nodes[0].Stats.Count != 0 {
		t.Errorf("r1 nodes = %+v", r.Nodes)
	}
	if u := routes[1]; u.Stats.Failures != 3 || len(u.Nodes) != 1 || u.Nodes[0].ID != "x" {
		t.Errorf("unmodelled = %+v", u)
	}
	if _, err := s.Routes(context.Background(), "acme", "dev", "orders", 0); !isStatus(err, http.StatusBadRequest) {
		t.Errorf("window 0: %v", err)
	}
}

// testRouteWindows checks that a window's totals count each minute in it
// once, whole hours and ragged ends alike (a store may sum hours apart).
func testRouteWindows(t *testing.T, s *telemetry.Service) {
	agos := []time.Duration{0, time.Minute, 61 * time.Minute, 119 * time.Minute, 179 * time.Minute,
		180 * time.Minute, 181 * time.Minute, 25 * time.Hour}
	var evs []api.Event
	for i, ago := range agos {
		evs = append(evs, Stats("r1", ago, 1<<i, 0, "n0"))
	}
	ingest(t, s, "acme", "run1", Batch(1, "orders", evs...))
	for _, c := range []struct {
		window time.Duration
		want   uint64 // bit i: agos[i] is in the window
	}{
		{time.Hour, 0b11}, {3 * time.Hour, 0b11111}, {24 * time.Hour, 0b1111111}, {26 * time.Hour, 0b11111111},
	} {
		rs, err := s.Routes(context.Background(), "acme", "dev", "orders", c.window)
		if err != nil || len(rs) != 1 {
			t.Fatalf("window %s: %+v, %v", c.window, rs, err)
		}
		if rs[0].Stats.Count != c.want || rs[0].Nodes[0].Stats.Count != c.want {
			t.Errorf("window %s: counted %b (nodes %b), want %b", c.window, rs[0].Stats.Count, rs[0].Nodes[0].Stats.Count, c.want)
		}
	}
}

func testSeries(t *testing.T, s *telemetry.Service) {
	ingest(t, s, "acme", "run1", Batch(1, "orders", Stats("r1", 0, 60, 6, "n0"), Stats("r1", 5*time.Minute, 30, 0),
		Stats("r2", 5*time.Minute, 30, 30), Stats("r1", 2*time.Hour, 1, 0)))
	pts, err := s.Series(context.Background(), "acme", "dev", "orders", "", time.Hour, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 12 {
		t.Fatalf("%d points, want 12", len(pts))
	}
	last, prev := pts[11], pts[10]
	if last.Count != 60 || last.Failures != 6 || last.ErrorRate != 0.1 || last.Throughput != 0.2 {
		t.Errorf("last point %+v", last)
	}
	if prev.Count != 60 || prev.ErrorRate != 0.5 || !pts[11].Time.After(pts[10].Time.Time) {
		t.Errorf("point before %+v", prev)
	}
	pts, err = s.Series(context.Background(), "acme", "dev", "orders", "r2", time.Hour, 5*time.Minute)
	if err != nil || pts[10].Count != 30 || pts[10].ErrorRate != 1 || pts[11].Count != 0 {
		t.Errorf("r2 series %+v, %v", pts, err)
	}
	if _, err := s.Series(context.Background(), "acme", "dev", "orders", "", time.Hour, time.Second); !isStatus(err, http.StatusBadRequest) {
		t.Errorf("step 1s: %v", err)
	}
}

func testRetention(t *testing.T, s *telemetry.Service) {
	for _, tenant := range []string{"acme", "short"} {
		ingest(t, s, tenant, "run1", Batch(1, "orders", Ex("new", "r1", api.StatusFailed, time.Minute, 1),
			Ex("old", "r1", api.StatusFailed, 2*time.Hour, 1), Ex("ancient", "r1", api.StatusFailed, 8*24*time.Hour, 1),
			Stats("r1", time.Minute, 1, 0, "n0"), Stats("r1", 2*time.Hour, 10, 0, "n0")))
	}
	s.Expire(context.Background())
	for tenant, want := range map[string][]string{"acme": {"new", "old"}, "short": {"new"}} {
		for _, status := range []string{"", api.StatusFailed} {
			if got := list(t, s, telemetry.ExchangeQuery{Tenant: tenant, Status: status}); !reflect.DeepEqual(got, want) {
				t.Errorf("%s after retention (status %q): %v, want %v", tenant, status, got, want)
			}
		}
		if _, err := s.Exchange(context.Background(), tenant, "dev", "orders", "ancient"); !isStatus(err, http.StatusNotFound) {
			t.Errorf("%s: ancient exchange still answered: %v", tenant, err)
		}
	}
	count := func(tenant string) uint64 {
		rs, err := s.Routes(context.Background(), tenant, "dev", "orders", 24*time.Hour)
		if err != nil || len(rs) != 1 {
			t.Fatalf("routes of %s: %+v, %v", tenant, rs, err)
		}
		return rs[0].Nodes[0].Stats.Count
	}
	if a, b := count("acme"), count("short"); a != 11 || b != 1 {
		t.Errorf("statistics after retention: acme %d (want 11), short %d (want 1)", a, b)
	}
}

func testMetrics(t *testing.T, s *telemetry.Service) {
	b := Batch(1, "orders", Ex("a", "r1", api.StatusCompleted, time.Minute, 3))
	b.AgentDropped, b.RunnerDropped = 7, 2
	ingest(t, s, "acme", "run1", b)
	ingest(t, s, "acme", "run1", b)
	s.Ingest(context.Background(), "acme", "run1", api.TelemetryBatch{Records: []api.TelemetryRecord{{}}})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collectors()...)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, f := range fams {
		expfmt.MetricFamilyToText(&out, f)
	}
	for _, want := range []string{"cameleer_telemetry_batches_total 2\n", "cameleer_telemetry_refused_batches_total 1\n",
		"cameleer_telemetry_duplicate_records_total 1\n", "cameleer_telemetry_node_runs_total 3\n",
		`cameleer_telemetry_events_total{kind="exchange"} 1`, `cameleer_telemetry_agent_dropped_total{runner="run1",tenant="acme"} 7`,
		`cameleer_telemetry_runner_dropped_total{runner="run1",tenant="acme"} 2`,
		`cameleer_telemetry_ingest_lag_seconds_bucket{le="1"} 1`, "cameleer_telemetry_store_bytes "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, out.String())
		}
	}
}
