package telemetry

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cameleer/cameleer/api"
)

// metrics are the pipeline's figures since the control plane started.
type metrics struct {
	batches, refusals, records, duplicates, nodeRuns prometheus.Counter
	events                                           *prometheus.CounterVec
	lag, exchangeLag                                 prometheus.Histogram
	drops                                            *drops
	size                                             prometheus.GaugeFunc
}

func newMetrics(store Store) metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	return metrics{
		batches:    counter("cameleer_telemetry_batches_total", "Telemetry batches taken from runners."),
		refusals:   counter("cameleer_telemetry_refused_batches_total", "Telemetry batches refused as malformed."),
		records:    counter("cameleer_telemetry_records_total", "Records in the batches taken, duplicates included."),
		duplicates: counter("cameleer_telemetry_duplicate_records_total", "Records skipped as already stored."),
		nodeRuns:   counter("cameleer_telemetry_node_runs_total", "Node runs of the traced exchanges stored."),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cameleer_telemetry_events_total",
			Help: "Events stored, by kind."}, []string{"kind"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cameleer_telemetry_ingest_lag_seconds",
			Help:    "From when a runner pulled an event to when it was stored.",
			Buckets: lagBuckets}),
		exchangeLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cameleer_telemetry_exchange_lag_seconds",
			Help:    "From when a traced exchange ended in its app to when it was stored, queryable (the app's and the control plane's clocks apart included).",
			Buckets: lagBuckets}),
		drops: &drops{totals: map[[2]string][2]uint64{},
			agent: prometheus.NewDesc("cameleer_telemetry_agent_dropped_total",
				"Events the agents of a runner dropped (their buffer was full), as the runner reports.", []string{"tenant", "runner"}, nil),
			runner: prometheus.NewDesc("cameleer_telemetry_runner_dropped_total",
				"Records a runner's buffer dropped, as it reports.", []string{"tenant", "runner"}, nil)},
		size: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cameleer_telemetry_store_bytes",
			Help: "The telemetry store's size on disk (-1: unknown)."}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, err := store.Size(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}),
	}
}

// lagBuckets are the lag histograms' upper bounds, in seconds.
var lagBuckets = []float64{0.1, 0.25, 0.5, 1, 2, 5, 15, 60, 300, 900, 3600, 6 * 3600, 24 * 3600}

// Collectors are the pipeline's metrics, for a Prometheus registry: the
// batches, records and events taken, duplicates, refused batches, the drops
// each runner reports, the ingest lag and the store's size.
func (s *Service) Collectors() []prometheus.Collector {
	m := &s.metrics
	return []prometheus.Collector{m.batches, m.refusals, m.records, m.duplicates, m.nodeRuns, m.events, m.lag, m.exchangeLag, m.drops, m.size}
}

func (m *metrics) refused() { m.refusals.Inc() }

// ingested counts a batch taken: its records above mark were stored at
// now.
func (m *metrics) ingested(tenant, runner string, b *api.TelemetryBatch, recs []decoded, mark uint64, nodeRuns, dups int, now time.Time) {
	m.batches.Inc()
	m.records.Add(float64(len(recs)))
	m.nodeRuns.Add(float64(nodeRuns))
	m.duplicates.Add(float64(dups))
	m.drops.set(tenant, runner, b.AgentDropped, b.RunnerDropped)
	for _, d := range recs {
		if d.rec.Seq <= mark {
			continue
		}
		m.events.WithLabelValues(d.event.Kind).Inc()
		m.lag.Observe(now.Sub(time.UnixMilli(d.rec.Received)).Seconds())
		if x := d.event.Exchange; x != nil {
			m.exchangeLag.Observe(now.Sub(time.UnixMicro(x.Start + x.Duration)).Seconds())
		}
	}
}

// drops are the running totals each runner reports: counters the runner
// keeps, which the control plane only repeats.
type drops struct {
	agent, runner *prometheus.Desc
	mu            sync.Mutex
	totals        map[[2]string][2]uint64 // tenant, runner -> agent, runner
}

func (d *drops) set(tenant, runner string, agent, own uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.totals[[2]string{tenant, runner}] = [2]uint64{agent, own}
}

func (d *drops) Describe(ch chan<- *prometheus.Desc) { ch <- d.agent; ch <- d.runner }

func (d *drops) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, v := range d.totals {
		ch <- prometheus.MustNewConstMetric(d.agent, prometheus.CounterValue, float64(v[0]), k[0], k[1])
		ch <- prometheus.MustNewConstMetric(d.runner, prometheus.CounterValue, float64(v[1]), k[0], k[1])
	}
}
