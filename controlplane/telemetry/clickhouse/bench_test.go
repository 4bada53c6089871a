package clickhouse_test

import (
	"context"
	"testing"

	"github.com/cameleer/cameleer/controlplane/telemetry/clickhouse"
	"github.com/cameleer/cameleer/controlplane/telemetry/storetest"
	"github.com/cameleer/cameleer/internal/testkit/chtest"
)

// go test -run XXX -bench Ingest -benchtime 10s ./controlplane/telemetry/clickhouse
func BenchmarkIngest(b *testing.B) {
	st, err := clickhouse.Open(context.Background(), clickhouse.Options{URL: chtest.Start(b)})
	if err != nil {
		b.Fatal(err)
	}
	storetest.BenchIngest(b, st, storetest.Bench)
}

// The server and its data set are built for each run (about 3 minutes):
// go test -run XXX -bench Query -timeout 1h ./controlplane/telemetry/clickhouse
func BenchmarkQuery(b *testing.B) {
	st, err := clickhouse.Open(context.Background(), clickhouse.Options{URL: chtest.Start(b)})
	if err != nil {
		b.Fatal(err)
	}
	storetest.BuildDataset(b, st, storetest.Bench)
	storetest.BenchQueries(b, st, storetest.Bench)
}
