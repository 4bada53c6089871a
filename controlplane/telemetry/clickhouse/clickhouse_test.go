package clickhouse_test

import (
	"context"
	"fmt"
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
