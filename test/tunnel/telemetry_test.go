package tunnel_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/internal/testkit/chtest"
)

// telemetryEvents are what an agent saw of one failed exchange: its trace,
// the stats of its window and the route model.
func telemetryEvents(id string, start time.Time) []json.RawMessage {
	us := start.UnixMicro()
	evs := []api.Event{
		{Kind: api.KindExchange, Exchange: &api.Exchange{ID: id, Context: "camel-1", Route: "orders", From: "timer://tick",
			Correlation: id, Start: us, Duration: 1500, Status: api.StatusFailed, Redeliveries: 2,
			Error: &api.ExchangeError{Type: "java.lang.IllegalStateException", Message: "no stock"},
			Body:  `{"order":1}`, BodySize: 11, Headers: map[string]string{"orderId": "o-1"},
			Nodes: []api.NodeRun{
				{ID: "check", Type: "choice", Route: "orders", Parent: -1, Start: us + 10, Duration: 1400, Failed: true},
				{ID: "reserve", Type: "process", Route: "orders", Parent: 0, Start: us + 20, Duration: 1300, Failed: true},
			}}},
		{Kind: api.KindStats, Stats: &api.Stats{Context: "camel-1", Start: us - us%10_000_000, Seconds: 10, Routes: []api.RouteStats{
			{Route: "orders", Count: api.Count{Count: 1, Failures: 1, Sum: 1500, Buckets: [][2]uint64{{uint64(api.Bucket(1500)), 1}}},
				Nodes: []api.NodeStats{{ID: "check", Count: api.Count{Count: 1, Failures: 1, Sum: 1400, Buckets: [][2]uint64{{uint64(api.Bucket(1400)), 1}}}}}}}}},
		{Kind: api.KindRoutes, Routes: &api.RouteModel{Context: "camel-1", Routes: []api.RouteGraph{{ID: "orders", From: "timer://tick",
			Nodes: []api.RouteNode{{ID: "from1", Type: "from"}, {ID: "check", Type: "choice", Order: 1}, {ID: "reserve", Type: "process", Parent: "check", Order: 2}},
			Edges: [][2]string{{"from1", "check"}, {"check", "reserve"}}}}}},
	}
	out := make([]json.RawMessage, len(evs))
	for i, ev := range evs {
		out[i], _ = json.Marshal(ev)
	}
	return out
}

// postTelemetry sends body (a batch, gzipped here) as runner h would.
func postTelemetry(t *testing.T, h *hostile, body []byte) (int, string) {
	t.Helper()
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(body)
	zw.Close()
	req, _ := http.NewRequest(http.MethodPost, "http://cp"+api.RunnerTelemetryPath, &zipped)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := h.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func batchOf(seq uint64, env string, events []json.RawMessage) []byte {
	b := api.TelemetryBatch{AgentDropped: 3}
	for i, ev := range events {
		b.Records = append(b.Records, api.TelemetryRecord{Seq: seq + uint64(i), Environment: env, App: "orders",
			Instance: "orders-0", Received: time.Now().UnixMilli(), Event: ev})
	}
	out, _ := json.Marshal(b)
	return out
}

// TestTelemetryThroughTheTunnel: what a runner forwards is stored once in
// its own tenant and answered by the API; a malformed batch is refused
// whole with one line; no runner writes into another tenant. Both stores:
// the embedded one, and a real ClickHouse server.
func TestTelemetryThroughTheTunnel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the control plane")
	}
	t.Run("embedded", func(t *testing.T) { telemetryThroughTheTunnel(t, nil) })
	t.Run("clickhouse", func(t *testing.T) {
		telemetryThroughTheTunnel(t, []string{"--telemetry-clickhouse", chtest.Start(t) + "/tunneltest"})
	})
}

func telemetryThroughTheTunnel(t *testing.T, cpArgs []string) {
	e := newEnvArgs(t, freeAddr(t), nil, cpArgs)
	for _, tenant := range []string{"acme", "globex"} {
		e.tenant(tenant, "mid")
		if code := e.call("POST", "/api/v1/tenants/"+tenant+"/environments", e.admin, map[string]string{"name": "dev"}, nil); code != http.StatusCreated {
			t.Fatalf("environment: %d", code)
		}
		e.register(tenant, tenant+"-honest", filepath.Join(e.dir, tenant+"-honest"))
		code, sha := e.upload("/api/v1/tenants/"+tenant+"/apps/orders/artifacts", e.admin, smallJar(t), "")
		if code != http.StatusCreated {
			t.Fatalf("upload: %d %s", code, sha)
		}
		if code := e.call("POST", "/api/v1/tenants/"+tenant+"/environments/dev/deployments", e.admin, map[string]any{"app": "orders", "artifact": sha}, nil); code != http.StatusAccepted {
			t.Fatalf("deployment: %d", code)
		}
	}
	h := e.hostileRunner("acme", "collector", nil)
	batch := batchOf(1, "dev", telemetryEvents("ex-1", time.Now().Add(-time.Minute)))
	for i, want := range []string{`"stored":3`, `"duplicates":3`} {
		if code, body := postTelemetry(t, h, batch); code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("batch, sent %d times: %d %s, want %s", i+1, code, body, want)
		}
	}

	app := "/api/v1/tenants/acme/environments/dev/apps/orders"
	var page struct {
		Exchanges []struct{ ID, Status, Route, ErrorType string }
	}
	if code := e.call("GET", app+"/exchanges?status=failed", e.admin, nil, &page); code != http.StatusOK || len(page.Exchanges) != 1 {
		t.Fatalf("acme's failed exchanges: %d %+v, want ex-1 once", code, page)
	}
	if x := page.Exchanges[0]; x.ID != "ex-1" || x.Route != "orders" || x.ErrorType != "java.lang.IllegalStateException" {
		t.Errorf("exchange: %+v", x)
	}
	var detail struct {
		Nodes []struct {
			ID     string
			Parent int
		}
		Headers map[string]string
	}
	if code := e.call("GET", app+"/exchanges/ex-1", e.admin, nil, &detail); code != http.StatusOK || len(detail.Nodes) != 2 || detail.Nodes[1].Parent != 0 || detail.Headers["orderId"] != "o-1" {
		t.Errorf("exchange ex-1: %d %+v", code, detail)
	}
	var routes []struct {
		ID    string
		Stats struct{ Count, Failures int }
		Nodes []struct{ ID string }
		Edges [][2]string
	}
	if code := e.call("GET", app+"/routes?window=1h", e.admin, nil, &routes); code != http.StatusOK || len(routes) != 1 || routes[0].Stats.Count != 1 || len(routes[0].Nodes) != 3 || len(routes[0].Edges) != 2 {
		t.Errorf("routes: %d %+v", code, routes)
	}
	var series []struct{ Count, Failures int }
	e.call("GET", app+"/series?window=1h&step=5m", e.admin, nil, &series)
	total := 0
	for _, p := range series {
		total += p.Count
	}
	if total != 1 {
		t.Errorf("series over the last hour: %+v, want one exchange", series)
	}

	// A runner names no tenant: acme's runner naming globex's environment
	// wrote into acme's, and globex sees nothing.
	var theirs struct{ Exchanges []any }
	if e.call("GET", "/api/v1/tenants/globex/environments/dev/apps/orders/exchanges", e.admin, nil, &theirs); len(theirs.Exchanges) != 0 {
		t.Errorf("globex sees acme's runner's telemetry: %+v", theirs)
	}

	// Malformed: refused whole, with one line, and nothing of it stored.
	bad := batchOf(10, "dev", append(telemetryEvents("ex-2", time.Now()), json.RawMessage(`{"kind":"gossip"}`)))
	for _, body := range [][]byte{bad, []byte(`{"records":[{"seq":`)} {
		code, msg := postTelemetry(t, h, body)
		if code != http.StatusBadRequest || strings.Count(strings.TrimSpace(msg), "\n") > 0 {
			t.Errorf("malformed batch: %d %s, want 400 with one line", code, msg)
		}
	}
	if code := e.call("GET", app+"/exchanges/ex-2", e.admin, nil, nil); code != http.StatusNotFound {
		t.Errorf("an exchange of a refused batch: %d, want 404", code)
	}

	// The pipeline's own figures.
	req, _ := http.NewRequest(http.MethodGet, "https://"+e.addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"cameleer_telemetry_batches_total 2", "cameleer_telemetry_duplicate_records_total 3", "cameleer_telemetry_refused_batches_total 2",
		fmt.Sprintf(`cameleer_telemetry_agent_dropped_total{runner=%q,tenant="acme"} 3`, h.id)} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Retention is the tenant's: with one day, an exchange of two days ago
	// goes at the next pass (one runs at start), yesterday's minute stays.
	if code, body := postTelemetry(t, h, batchOf(20, "dev", telemetryEvents("ex-old", time.Now().Add(-48*time.Hour))[:1])); code != http.StatusOK {
		t.Fatalf("an old exchange: %d %s", code, body)
	}
	if code := e.call("GET", app+"/exchanges/ex-old", e.admin, nil, nil); code != http.StatusOK {
		t.Fatalf("an exchange of two days ago, before its retention was set: %d", code)
	}
	var own struct{ Token string }
	e.call("POST", "/api/v1/tenants/acme/api-tokens", e.admin, nil, &own)
	var tenant struct{ RetentionDays int }
	for _, c := range []struct {
		token string
		days  int
		want  int
	}{{own.Token, 1, http.StatusForbidden}, {e.admin, -1, http.StatusBadRequest}, {e.admin, 1, http.StatusOK}} {
		if code := e.call("PUT", "/api/v1/tenants/acme/retention", c.token, map[string]int{"days": c.days}, &tenant); code != c.want {
			t.Errorf("retention of %d days: %d, want %d", c.days, code, c.want)
		}
	}
	if tenant.RetentionDays != 1 {
		t.Errorf("tenant after setting its retention: %+v", tenant)
	}
	e.stopCP()
	e.startCP()
	if code := e.call("GET", app+"/exchanges/ex-old", e.admin, nil, nil); code != http.StatusNotFound {
		t.Errorf("an exchange past the tenant's retention: %d, want 404", code)
	}
	if code := e.call("GET", app+"/exchanges/ex-1", e.admin, nil, nil); code != http.StatusOK {
		t.Errorf("an exchange within the tenant's retention: %d, want 200", code)
	}
	h = e.hostileRunner("acme", "collector-2", nil)
	if code, body := postTelemetry(t, h, batch); code != http.StatusOK || !strings.Contains(body, `"stored":3`) {
		t.Errorf("a batch from another runner of the tenant: %d %s, want it stored (marks are per runner)", code, body)
	}
}
