package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/telemetry"
)

// Workload is the shape of the benchmarks' data: Apps apps of Routes
// routes each, exchanges of Nodes node runs, one in FailEvery failed.
type Workload struct {
	Apps, Routes, Nodes, FailEvery int
}

// Bench is the workload of docs/benchmarks.md.
var Bench = Workload{Apps: 5, Routes: 10, Nodes: 20, FailEvery: 20}

// App is the name of the workload's app i.
func (w Workload) App(i int) string { return fmt.Sprintf("app-%d", i%w.Apps) }

// Exchanges is a batch of n traced exchanges of one app, seqs from first
// on, the k-th starting at start + k·gap.
func (w Workload) Exchanges(first uint64, app string, n int, start time.Time, gap time.Duration) api.TelemetryBatch {
	evs := make([]api.Event, n)
	for k := range evs {
		seq := first + uint64(k)
		st := start.Add(time.Duration(k) * gap).UnixMicro()
		route := fmt.Sprintf("route-%d", seq%uint64(w.Routes))
		status := api.StatusCompleted
		if seq%uint64(w.FailEvery) == 0 {
			status = api.StatusFailed
		}
		x := &api.Exchange{ID: fmt.Sprintf("%s-%016x", app, seq), Context: "camel-1", Route: route,
			From: "kafka:orders?brokers=kafka:9092", Correlation: fmt.Sprintf("%s-%016x", app, seq-seq%3),
			Start: st, Duration: int64(w.Nodes) * 150, Status: status, BodySize: 120,
			Body:    `{"order":12345,"customer":"c-778","lines":[{"sku":"A-1","qty":2}]}`,
			Headers: map[string]string{"orderId": fmt.Sprint(seq), "source": "web"}, Nodes: make([]api.NodeRun, w.Nodes)}
		if status == api.StatusFailed {
			x.Error = &api.ExchangeError{Type: "java.net.ConnectException", Message: "Connection refused",
				Stack: "java.net.ConnectException: Connection refused\n\tat sun.nio.ch.Net.connect0(Native Method)"}
		}
		for j := range x.Nodes {
			x.Nodes[j] = api.NodeRun{ID: fmt.Sprintf("%s-n%d", route, j), Type: "to", Route: route, Parent: j - 1,
				Start: st + int64(j*150), Duration: 140, Failed: status == api.StatusFailed && j == w.Nodes-1}
		}
		evs[k] = api.Event{Kind: api.KindExchange, Exchange: x}
	}
	return Batch(first, app, evs...)
}

// Stats is a batch of one Stats event per 10 s window of one app from
// start, n windows, every route with its nodes.
func (w Workload) Stats(first uint64, app string, n int, start time.Time) api.TelemetryBatch {
	evs := make([]api.Event, n)
	for k := range evs {
		s := &api.Stats{Context: "camel-1", Start: start.Add(time.Duration(k) * 10 * time.Second).UnixMicro(), Seconds: 10}
		for r := 0; r < w.Routes; r++ {
			route := fmt.Sprintf("route-%d", r)
			c := api.Count{Count: 100, Failures: 5, Sum: 100 * 3000,
				Buckets: [][2]uint64{{uint64(api.Bucket(2000)), 60}, {uint64(api.Bucket(3000)), 35}, {uint64(api.Bucket(20000)), 5}}}
			rs := api.RouteStats{Route: route, Count: c, Nodes: make([]api.NodeStats, w.Nodes)}
			for j := range rs.Nodes {
				rs.Nodes[j] = api.NodeStats{ID: fmt.Sprintf("%s-n%d", route, j), Count: c}
			}
			s.Routes = append(s.Routes, rs)
		}
		evs[k] = api.Event{Kind: api.KindStats, Stats: s}
	}
	return Batch(first, app, evs...)
}

// BenchIngest ingests batches of 100 exchanges of w.Nodes node runs (and
// a Stats event per app every 10 s of their time) into st, and reports
// node runs per second. Making the batches is not timed.
func BenchIngest(b *testing.B, st telemetry.Store, w Workload) {
	s := telemetry.New(telemetry.Options{Store: st, Now: func() time.Time { return Now }})
	const per = 100
	seq := uint64(1)
	raw, _ := json.Marshal(w.Exchanges(seq, w.App(0), per, Now, time.Millisecond))
	b.SetBytes(int64(len(raw))) // the batch as JSON, before the runner's gzip
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// 100 exchanges of an app every 50 ms: 2,000 a second.
		start := Now.Add(-24 * time.Hour).Add(time.Duration(i) * 50 * time.Millisecond)
		batch := w.Exchanges(seq, w.App(i), per, start, 500*time.Microsecond)
		seq += per
		var extra api.TelemetryBatch
		if i%(10*20) == 0 { // every 10 s of exchange time
			extra = w.Stats(seq, w.App(i), w.Apps, start)
			seq += uint64(w.Apps)
		}
		b.StartTimer()
		for _, bt := range []api.TelemetryBatch{batch, extra} {
			if len(bt.Records) == 0 {
				continue
			}
			if _, err := s.Ingest(context.Background(), "acme", "run1", bt); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*per*w.Nodes)/b.Elapsed().Seconds(), "nodes/s")
}

// Size of the query benchmarks' data set: 500,000 exchanges of 20 node
// runs (10 million node runs) over the 24 hours before Now, and 24 hours
// of statistics (a Stats event every 10 s), of 5 apps.
const (
	DatasetExchanges = 500_000
	datasetBatch     = 1000
)

// BuildDataset ingests the query benchmarks' data set into st and says
// how long it took and how large st became.
func BuildDataset(b *testing.B, st telemetry.Store, w Workload) {
	s := telemetry.New(telemetry.Options{Store: st, Now: func() time.Time { return Now }})
	ingest := func(batch api.TelemetryBatch) {
		if _, err := s.Ingest(context.Background(), "acme", "run1", batch); err != nil {
			b.Fatal(err)
		}
	}
	began := time.Now()
	seq := uint64(1)
	perApp := DatasetExchanges / w.Apps
	gap := 24 * time.Hour / time.Duration(perApp)
	from := Now.Add(-24 * time.Hour)
	for a := 0; a < w.Apps; a++ {
		for k := 0; k < perApp; k += datasetBatch {
			ingest(w.Exchanges(seq, w.App(a), datasetBatch, from.Add(time.Duration(k)*gap), gap))
			seq += datasetBatch
		}
		const windows = 24 * 360 // 10 s windows in 24 h
		for k := 0; k < windows; k += 360 {
			ingest(w.Stats(seq, w.App(a), 360, from.Add(time.Duration(k)*10*time.Second)))
			seq += 360
		}
	}
	size, _ := st.Size(context.Background())
	b.Logf("data set: %d exchanges, %d node runs, built in %s, %d MB on disk", DatasetExchanges,
		DatasetExchanges*w.Nodes, time.Since(began).Round(time.Second), size>>20)
}

// BenchQueries times the queries of docs/benchmarks.md on st, which holds
// the data set of BuildDataset.
func BenchQueries(b *testing.B, st telemetry.Store, w Workload) {
	s := telemetry.New(telemetry.Options{Store: st, Now: func() time.Time { return Now }})
	ctx := context.Background()
	app := w.App(0)
	run := func(name string, fn func() error) {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	run("FailedLastHour", func() error {
		p, err := s.Exchanges(ctx, telemetry.ExchangeQuery{Tenant: "acme", Environment: "dev", App: app,
			Status: api.StatusFailed, From: Now.Add(-time.Hour), Limit: telemetry.MaxLimit})
		if err == nil && len(p.Exchanges) == 0 {
			err = fmt.Errorf("no failed exchange in the last hour")
		}
		return err
	})
	run("RoutesNodes24h", func() error {
		rs, err := s.Routes(ctx, "acme", "dev", app, 24*time.Hour)
		if err == nil && (len(rs) != w.Routes || rs[0].Nodes[0].Stats.Count == 0) {
			err = fmt.Errorf("%d routes, want %d with statistics", len(rs), w.Routes)
		}
		return err
	})
	run("RouteSeries24h", func() error {
		_, err := s.Series(ctx, "acme", "dev", app, "route-3", 24*time.Hour, 5*time.Minute)
		return err
	})
	// Text matches header values, which no index holds: a scan of the
	// app's exchanges in the window (100,000 in 24 h here).
	for name, window := range map[string]time.Duration{"TextLastHour": time.Hour, "Text24h": 24 * time.Hour} {
		run(name, func() error {
			_, err := s.Exchanges(ctx, telemetry.ExchangeQuery{Tenant: "acme", Environment: "dev", App: app,
				Text: "no such value", From: Now.Add(-window)})
			return err
		})
	}
	p, err := s.Exchanges(ctx, telemetry.ExchangeQuery{Tenant: "acme", Environment: "dev", App: app,
		To: Now.Add(-12 * time.Hour), Limit: 1})
	if err != nil || len(p.Exchanges) != 1 {
		b.Fatalf("an exchange 12 h ago: %+v, %v", p, err)
	}
	run("Exchange", func() error {
		_, err := s.Exchange(ctx, "acme", "dev", app, p.Exchanges[0].ID)
		return err
	})
}
