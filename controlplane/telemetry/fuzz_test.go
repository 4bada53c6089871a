package telemetry_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/telemetry"
	"github.com/cameleer/cameleer/controlplane/telemetry/embedded"
	"github.com/cameleer/cameleer/controlplane/telemetry/storetest"
)

// writes counts the writes that reach the store.
type writes struct {
	telemetry.Store
	n int
}

func (w *writes) Write(ctx context.Context, wr telemetry.Write) error {
	w.n++
	return w.Store.Write(ctx, wr)
}

// FuzzIngest decodes bytes as a batch and ingests it: no input may panic,
// and a refused batch must write nothing.
func FuzzIngest(f *testing.F) {
	seed := func(b api.TelemetryBatch) {
		raw, err := json.Marshal(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	seed(storetest.Batch(1, "orders", storetest.Ex("a", "r1", api.StatusFailed, time.Minute, 3),
		storetest.Stats("r1", time.Minute, 3, 1, "n0")))
	seed(storetest.Batch(7, "billing", api.Event{Kind: api.KindRoutes, Routes: &api.RouteModel{Context: "c",
		Routes: []api.RouteGraph{{ID: "r", Nodes: []api.RouteNode{{ID: "from", Type: "from"}}, Edges: [][2]string{{"from", "x"}}}}}}))
	f.Add([]byte(`{"records":[{"seq":1,"environment":"dev","app":"a","instance":"i","received":1764849600000,"event":{"kind":"exchange","exchange":{"nodes":[{"parent":-2}]}}}]}`))
	st, err := embedded.Open(f.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	w := &writes{Store: st}
	s := telemetry.New(telemetry.Options{Store: w, Now: func() time.Time { return storetest.Now }})
	f.Fuzz(func(t *testing.T, data []byte) {
		var b api.TelemetryBatch
		if json.Unmarshal(data, &b) != nil {
			return
		}
		before := w.n
		if _, err := s.Ingest(context.Background(), "acme", "run1", b); err != nil && w.n != before {
			t.Fatalf("refused (%v) but written", err)
		}
	})
}
