package embedded_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/cameleer/cameleer/controlplane/telemetry/embedded"
	"github.com/cameleer/cameleer/controlplane/telemetry/storetest"
)

// go test -run XXX -bench Ingest -benchtime 30s ./controlplane/telemetry/embedded
func BenchmarkIngest(b *testing.B) {
	st, err := embedded.Open(b.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	storetest.BenchIngest(b, st, storetest.Bench)
}

// The data set is in $CAMELEER_TELEMETRY_BENCH_DIR when set (built there
// the first time, reused after), in a temporary directory otherwise:
// CAMELEER_TELEMETRY_BENCH_DIR=/var/tmp/tbench go test -run XXX -bench Query -timeout 1h ./controlplane/telemetry/embedded
func BenchmarkQuery(b *testing.B) {
	dir := os.Getenv("CAMELEER_TELEMETRY_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	st, err := embedded.Open(filepath.Join(dir, "store"), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	done := filepath.Join(dir, "dataset-complete")
	if _, err := os.Stat(done); err != nil {
		storetest.BuildDataset(b, st, storetest.Bench)
		if err := os.WriteFile(done, nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	storetest.BenchQueries(b, st, storetest.Bench)
}
