package clickhouse_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/telemetry"
	"github.com/cameleer/cameleer/controlplane/telemetry/clickhouse"
	"github.com/cameleer/cameleer/controlplane/telemetry/storetest"
	"github.com/cameleer/cameleer/internal/testkit/chtest"
)

func TestConformance(t *testing.T) {
	url := chtest.Start(t)
	var n atomic.Int32
	storetest.Run(t, func(t *testing.T) telemetry.Store {
		// A database per test: one server for the suite.
		s, err := clickhouse.Open(context.Background(), clickhouse.Options{URL: url, Database: fmt.Sprintf("t%d", n.Add(1))})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// lostMark is a store whose marks are never read back: every batch is
// written again in full, as after a crash between a write's data and its
// mark.
type lostMark struct{ telemetry.Store }

func (lostMark) Mark(context.Context, string, string) (uint64, error) { return 0, nil }

func TestRowsWrittenTwiceCountOnce(t *testing.T) {
	st, err := clickhouse.Open(context.Background(), clickhouse.Options{URL: chtest.Start(t)})
	if err != nil {
		t.Fatal(err)
	}
	s := telemetry.New(telemetry.Options{Store: lostMark{st}, Now: func() time.Time { return storetest.Now }})
	b := storetest.Batch(1, "orders", storetest.Ex("a", "r1", api.StatusFailed, time.Minute, 2),
		storetest.Stats("r1", time.Minute, 10, 1, "n0"))
	for i := 0; i < 3; i++ {
		if ack, err := s.Ingest(context.Background(), "acme", "run1", b); err != nil || ack.Stored != 2 {
			t.Fatalf("ingest %d: %+v, %v", i, ack, err)
		}
	}
	p, err := s.Exchanges(context.Background(), telemetry.ExchangeQuery{Tenant: "acme", Environment: "dev", App: "orders"})
	if err != nil || len(p.Exchanges) != 1 {
		t.Errorf("exchanges = %+v, %v; want a once", p, err)
	}
	rs, err := s.Routes(context.Background(), "acme", "dev", "orders", time.Hour)
	if err != nil || len(rs) != 1 || rs[0].Stats.Count != 10 || rs[0].Nodes[0].Stats.Count != 10 {
		t.Errorf("routes = %+v, %v; want r1 counted 10 once", rs, err)
	}
}

// A database made before exchanges had failed_nodes gets the column when
// opened, and answers a query by node.
func TestOpenAddsColumnsOfLaterVersions(t *testing.T) {
	url := chtest.Start(t)
	for _, q := range []string{"CREATE DATABASE old", `CREATE TABLE old.exchanges (
			tenant String, environment String, app String, start_us Int64, id String,
			instance String, context String, route String, from_uri String, correlation String, parent String,
			duration_us Int64, status String, redeliveries UInt32, error_type String, error_message String,
			node_count UInt32, header_values Array(String), trace String, runner String, seq UInt64
		) ENGINE = ReplacingMergeTree()
		PARTITION BY toYYYYMMDD(toDateTime(intDiv(start_us, 1000000)))
		ORDER BY (tenant, environment, app, start_us, id)`} {
		resp, err := http.Post(url, "text/plain", strings.NewReader(q))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", q, resp.Status)
		}
	}
	for i := 0; i < 2; i++ { // and again, the column there
		if _, err := clickhouse.Open(context.Background(), clickhouse.Options{URL: url, Database: "old"}); err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
	st, _ := clickhouse.Open(context.Background(), clickhouse.Options{URL: url, Database: "old"})
	s := telemetry.New(telemetry.Options{Store: st, Now: func() time.Time { return storetest.Now }})
	if _, err := s.Ingest(context.Background(), "acme", "run1", storetest.Batch(1, "orders", storetest.Ex("a", "r1", api.StatusFailed, time.Minute, 2))); err != nil {
		t.Fatal(err)
	}
	p, err := s.Exchanges(context.Background(), telemetry.ExchangeQuery{Tenant: "acme", Environment: "dev", App: "orders", Node: "n1"})
	if err != nil || len(p.Exchanges) != 1 {
		t.Errorf("failed at n1: %+v, %v; want a", p, err)
	}
}
