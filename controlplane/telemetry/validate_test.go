package telemetry

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
)

var now = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func goodExchange() *api.Exchange {
	start := now.Add(-time.Minute).UnixMicro()
	return &api.Exchange{ID: "x1", Context: "ctx", Route: "r1", Correlation: "x1", Start: start, Duration: 10,
		Status: api.StatusCompleted, Headers: map[string]string{"k": "v"},
		Nodes: []api.NodeRun{{ID: "n0", Route: "r1", Parent: -1, Start: start, Duration: 5},
			{ID: "n1", Route: "r1", Parent: 0, Start: start + 1, Duration: 3}}}
}

func record(t *testing.T, ev any) api.TelemetryRecord {
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return api.TelemetryRecord{Seq: 1, Environment: "dev", App: "orders", Instance: "orders-0",
		Received: now.UnixMilli(), Event: raw}
}

func TestValidate(t *testing.T) {
	exchange := func(f func(x *api.Exchange)) func(*testing.T) api.TelemetryRecord {
		return func(t *testing.T) api.TelemetryRecord {
			x := goodExchange()
			f(x)
			return record(t, api.Event{Kind: api.KindExchange, Exchange: x})
		}
	}
	stats := func(f func(s *api.Stats)) func(*testing.T) api.TelemetryRecord {
		return func(t *testing.T) api.TelemetryRecord {
			s := &api.Stats{Context: "ctx", Start: now.UnixMicro(), Seconds: 10,
				Routes: []api.RouteStats{{Route: "r1", Count: api.Count{Count: 2, Failures: 1, Sum: 5}}}}
			f(s)
			return record(t, api.Event{Kind: api.KindStats, Stats: s})
		}
	}
	kept := func(f func(k *api.Kept)) func(*testing.T) api.TelemetryRecord {
		return func(t *testing.T) api.TelemetryRecord {
			k := &api.Kept{Exchange: "x1", Route: "r1", Start: now.UnixMicro(), Until: now.Add(7 * 24 * time.Hour).UnixMilli()}
			f(k)
			return record(t, api.Event{Kind: api.KindKept, Kept: k})
		}
	}
	evicted := func(reason string) func(*testing.T) api.TelemetryRecord {
		return func(t *testing.T) api.TelemetryRecord {
			return record(t, api.Event{Kind: api.KindEvicted, Evicted: &api.Evicted{Exchange: "x1", Reason: reason}})
		}
	}
	rec := func(f func(r *api.TelemetryRecord)) func(*testing.T) api.TelemetryRecord {
		return func(t *testing.T) api.TelemetryRecord {
			r := exchange(func(*api.Exchange) {})(t)
			f(&r)
			return r
		}
	}
	for _, c := range []struct {
		name string
		rec  func(*testing.T) api.TelemetryRecord
		want string // "" valid
	}{
		{"valid exchange", exchange(func(*api.Exchange) {}), ""},
		{"valid stats", stats(func(*api.Stats) {}), ""},
		{"no correlation is its own", exchange(func(x *api.Exchange) { x.Correlation = "" }), ""},
		{"bad JSON", rec(func(r *api.TelemetryRecord) { r.Event = json.RawMessage(`{"kind":`) }), "event: unexpected end"},
		{"no event", rec(func(r *api.TelemetryRecord) { r.Event = nil }), "no event"},
		{"unknown kind", rec(func(r *api.TelemetryRecord) { r.Event = json.RawMessage(`{"kind":"log"}`) }), `unknown event kind "log"`},
		{"kind without its part", rec(func(r *api.TelemetryRecord) { r.Event = json.RawMessage(`{"kind":"stats"}`) }), "must carry its own part"},
		{"two parts", rec(func(r *api.TelemetryRecord) {
			r.Event = json.RawMessage(`{"kind":"routes","routes":{"context":"c"},"stats":{"context":"c"}}`)
		}), "must carry its own part"},
		{"empty env", rec(func(r *api.TelemetryRecord) { r.Environment = "" }), "environment: name"},
		{"invalid app", rec(func(r *api.TelemetryRecord) { r.App = "Orders!" }), "app: name"},
		{"seq 0", rec(func(r *api.TelemetryRecord) { r.Seq = 0 }), "seq must be above 0"},
		{"received in 1970", rec(func(r *api.TelemetryRecord) { r.Received = 0 }), "received 1970"},
		{"start next year", exchange(func(x *api.Exchange) { x.Start = now.AddDate(1, 0, 0).UnixMicro() }), "start 2027"},
		{"negative duration", exchange(func(x *api.Exchange) { x.Duration = -1 }), "duration -1"},
		{"empty id", exchange(func(x *api.Exchange) { x.ID = "" }), "exchange: id empty"},
		{"long route", exchange(func(x *api.Exchange) { x.Route = strings.Repeat("r", MaxName+1) }), "route empty or over 256"},
		{"big body", exchange(func(x *api.Exchange) { x.Body = strings.Repeat("b", MaxBody+1) }), "body over"},
		{"unknown status", exchange(func(x *api.Exchange) { x.Status = "ok" }), `unknown status "ok"`},
		{"too many nodes", exchange(func(x *api.Exchange) {
			x.Nodes = make([]api.NodeRun, MaxNodes+1)
		}), "nodes, over"},
		{"node parent ahead", exchange(func(x *api.Exchange) { x.Nodes[0].Parent = 1 }), "node 0: parent 1"},
		{"node without id", exchange(func(x *api.Exchange) { x.Nodes[1].ID = "" }), "node 1: id empty"},
		{"empty header name", exchange(func(x *api.Exchange) { x.Headers[""] = "v" }), "header"},
		{"failures above count", stats(func(s *api.Stats) { s.Routes[0].Failures = 3 }), "route r1: failures above count"},
		{"route twice", stats(func(s *api.Stats) { s.Routes = append(s.Routes, s.Routes[0]) }), "route r1 twice"},
		{"zero seconds", stats(func(s *api.Stats) { s.Seconds = 0 }), "seconds 0"},
		{"absurd bucket", stats(func(s *api.Stats) { s.Routes[0].Buckets = [][2]uint64{{1 << 40, 1}} }), "bucket"},
		{"kept", kept(func(*api.Kept) {}), ""},
		{"kept without route", kept(func(k *api.Kept) { k.Route = "" }), "kept: route empty"},
		{"kept until 1970", kept(func(k *api.Kept) { k.Until = 0 }), "kept: until 0"},
		{"kept for years", kept(func(k *api.Kept) { k.Until = now.AddDate(3, 0, 0).UnixMilli() }), "kept: until"},
		{"kept, failed at a node", kept(func(k *api.Kept) { k.At = &api.NodeRef{Node: "post", Route: "r2"} }), ""},
		{"kept, failed at a node of no route", kept(func(k *api.Kept) { k.At = &api.NodeRef{Node: "post"} }), "kept: at route empty"},
		{"evicted", evicted(api.EvictedAge), ""},
		{"evicted with its app", evicted(api.EvictedDeleted), ""},
		{"evicted for no reason", evicted("whim"), `evicted: unknown reason "whim"`},
		{"kept with an exchange", rec(func(r *api.TelemetryRecord) {
			r.Event = json.RawMessage(`{"kind":"kept","kept":{"exchange":"x","route":"r","until":1},"exchange":{"id":"x"}}`)
		}), "must carry its own part"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := api.TelemetryBatch{Records: []api.TelemetryRecord{c.rec(t)}}
			_, err := validate(&b, now)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("taken, want refused for %q", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q does not say %q", err, c.want)
			case err != nil && (strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "record 0 (seq ")):
				t.Fatalf("error %q: want one line that says where", err)
			}
		})
	}
}

func TestValidateSeqsIncrease(t *testing.T) {
	r := record(t, api.Event{Kind: api.KindExchange, Exchange: goodExchange()})
	b := api.TelemetryBatch{Records: []api.TelemetryRecord{r, r}}
	b.Records[0].Seq, b.Records[1].Seq = 5, 5
	if _, err := validate(&b, now); err == nil || !strings.Contains(err.Error(), "record 1 (seq 5): seq not above the previous record's 5") {
		t.Errorf("equal seqs: %v", err)
	}
	b.Records = make([]api.TelemetryRecord, MaxRecords+1)
	if _, err := validate(&b, now); err == nil || !strings.Contains(err.Error(), "records, over") {
		t.Errorf("too many records: %v", err)
	}
}
