package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cameleer/cameleer/api"
)

// Bounds of what one batch may hold; a batch past any of them is refused
// whole. They are well above what the agent sends (its own bounds cut
// bodies, stacks and node runs first) and keep one batch's cost bounded.
const (
	MaxRecords    = 10000
	MaxNodes      = 5000 // node runs of an exchange, nodes of a route
	MaxRoutes     = 1000 // routes of a context
	MaxBuckets    = 1024 // histogram pairs of one count
	MaxHeaders    = 200
	MaxName       = 256 // ids, contexts, node types, header names, instances
	MaxText       = 4 << 10
	MaxURI        = 4 << 10
	MaxBody       = 256 << 10
	MaxStack      = 64 << 10
	MaxDuration   = 30 * 24 * time.Hour
	maxFuture     = 24 * time.Hour // clocks ahead of ours
	maxStatsSpan  = 3600           // seconds of one Stats window
	maxBucketSeen = 64 * api.BucketsPerDoubling
)

// epoch is the earliest time a record may carry: nothing of ours ran before.
var epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// decoded is one valid record's event.
type decoded struct {
	rec   *api.TelemetryRecord
	event api.Event
}

// validate decodes and checks every record of b; the error names the first
// fault and where it is.
func validate(b *api.TelemetryBatch, now time.Time) ([]decoded, error) {
	if len(b.Records) > MaxRecords {
		return nil, fmt.Errorf("%d records, over %d", len(b.Records), MaxRecords)
	}
	out := make([]decoded, len(b.Records))
	var prev uint64
	for i := range b.Records {
		r := &b.Records[i]
		if err := checkRecord(r, prev, now, &out[i].event); err != nil {
			return nil, fmt.Errorf("record %d (seq %d): %w", i, r.Seq, err)
		}
		out[i].rec = r
		prev = r.Seq
	}
	return out, nil
}

func checkRecord(r *api.TelemetryRecord, prev uint64, now time.Time, ev *api.Event) error {
	switch {
	case r.Seq == 0:
		return errors.New("seq must be above 0")
	case r.Seq <= prev:
		return fmt.Errorf("seq not above the previous record's %d", prev)
	}
	if err := api.ValidName(r.Environment); err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	if err := api.ValidName(r.App); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if err := name("instance", r.Instance); err != nil {
		return err
	}
	if err := instant("received", time.UnixMilli(r.Received), now); err != nil {
		return err
	}
	if len(bytes.TrimSpace(r.Event)) == 0 {
		return errors.New("no event")
	}
	if err := json.Unmarshal(r.Event, ev); err != nil {
		return fmt.Errorf("event: %w", err)
	}
	parts := 0
	for _, p := range []bool{ev.Exchange != nil, ev.Stats != nil, ev.Routes != nil, ev.Kept != nil, ev.Evicted != nil} {
		if p {
			parts++
		}
	}
	switch {
	case ev.Kind != api.KindExchange && ev.Kind != api.KindStats && ev.Kind != api.KindRoutes &&
		ev.Kind != api.KindKept && ev.Kind != api.KindEvicted:
		return fmt.Errorf("unknown event kind %q", ev.Kind)
	case parts != 1 || ev.Kind == api.KindExchange && ev.Exchange == nil ||
		ev.Kind == api.KindStats && ev.Stats == nil || ev.Kind == api.KindRoutes && ev.Routes == nil ||
		ev.Kind == api.KindKept && ev.Kept == nil || ev.Kind == api.KindEvicted && ev.Evicted == nil:
		return fmt.Errorf("event of kind %q must carry its own part and no other", ev.Kind)
	case ev.Exchange != nil:
		return prefix("exchange", checkExchange(ev.Exchange, now))
	case ev.Stats != nil:
		return prefix("stats", checkStats(ev.Stats, now))
	case ev.Kept != nil:
		return prefix("kept", checkKept(ev.Kept, now))
	case ev.Evicted != nil:
		return prefix("evicted", checkEvicted(ev.Evicted))
	}
	return prefix("routes", checkModel(ev.Routes))
}

func checkKept(k *api.Kept, now time.Time) error {
	if err := name("exchange", k.Exchange); err != nil {
		return err
	}
	if err := name("route", k.Route); err != nil {
		return err
	}
	if k.At != nil {
		if err := name("at node", k.At.Node); err != nil {
			return err
		}
		if err := name("at route", k.At.Route); err != nil {
			return err
		}
	}
	// Until is ahead of now by the runner's bound in age: a year at most.
	if u := time.UnixMilli(k.Until); u.Before(epoch) || u.After(now.Add(366*24*time.Hour)) {
		return fmt.Errorf("until %d is not a time a runner keeps an original until", k.Until)
	}
	return nil
}

func checkEvicted(e *api.Evicted) error {
	switch e.Reason {
	case api.EvictedAge, api.EvictedBytes, api.EvictedDeleted:
	default:
		return fmt.Errorf("unknown reason %q", e.Reason)
	}
	return name("exchange", e.Exchange)
}

func prefix(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func checkExchange(x *api.Exchange, now time.Time) error {
	for _, f := range []struct{ what, v string }{{"id", x.ID}, {"context", x.Context}, {"route", x.Route}} {
		if err := name(f.what, f.v); err != nil {
			return err
		}
	}
	if x.Correlation == "" {
		x.Correlation = x.ID
	}
	for _, f := range []struct {
		what, v string
		max     int
	}{{"correlation", x.Correlation, MaxName}, {"parent", x.Parent, MaxName}, {"from", x.From, MaxURI},
		{"body", x.Body, MaxBody}} {
		if len(f.v) > f.max {
			return fmt.Errorf("%s over %d bytes", f.what, f.max)
		}
	}
	if err := span(x.Start, x.Duration, now); err != nil {
		return err
	}
	switch x.Status {
	case api.StatusCompleted, api.StatusFailed, api.StatusHandled:
	default:
		return fmt.Errorf("unknown status %q", x.Status)
	}
	if x.Redeliveries < 0 || x.NodesDropped < 0 || x.BodySize < -1 {
		return errors.New("negative redeliveries, nodesDropped or bodySize")
	}
	if e := x.Error; e != nil {
		if len(e.Type) > MaxName || len(e.Message) > MaxText || len(e.Stack) > MaxStack {
			return fmt.Errorf("error type, message or stack over %d, %d or %d bytes", MaxName, MaxText, MaxStack)
		}
	}
	if len(x.Headers) > MaxHeaders {
		return fmt.Errorf("%d headers, over %d", len(x.Headers), MaxHeaders)
	}
	for k, v := range x.Headers {
		if k == "" || len(k) > MaxName || len(v) > MaxText {
			return fmt.Errorf("header %.40q: name empty or over %d bytes, or value over %d", k, MaxName, MaxText)
		}
	}
	if len(x.Nodes) > MaxNodes {
		return fmt.Errorf("%d nodes, over %d", len(x.Nodes), MaxNodes)
	}
	for i := range x.Nodes {
		if err := checkRun(&x.Nodes[i], i, now); err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
	}
	return nil
}

func checkRun(n *api.NodeRun, i int, now time.Time) error {
	if err := name("id", n.ID); err != nil {
		return err
	}
	if err := name("route", n.Route); err != nil {
		return err
	}
	if len(n.Type) > MaxName || len(n.Label) > MaxText || len(n.Exchange) > MaxName {
		return errors.New("type, label or exchange over bounds")
	}
	if n.Parent < -1 || n.Parent >= i {
		return fmt.Errorf("parent %d is not an earlier node", n.Parent)
	}
	return span(n.Start, n.Duration, now)
}

func checkStats(s *api.Stats, now time.Time) error {
	if err := name("context", s.Context); err != nil {
		return err
	}
	if err := instant("start", time.UnixMicro(s.Start), now); err != nil {
		return err
	}
	if s.Seconds <= 0 || s.Seconds > maxStatsSpan {
		return fmt.Errorf("seconds %d not in 1..%d", s.Seconds, maxStatsSpan)
	}
	if len(s.Routes) > MaxRoutes {
		return fmt.Errorf("%d routes, over %d", len(s.Routes), MaxRoutes)
	}
	// A row is one route's or node's in a record: a store that has to
	// tell rows written twice apart keys them so.
	seen := map[string]bool{}
	for i, r := range s.Routes {
		if err := name("route", r.Route); err != nil {
			return fmt.Errorf("route %d: %w", i, err)
		}
		if seen[r.Route] {
			return fmt.Errorf("route %s twice", r.Route)
		}
		seen[r.Route] = true
		if err := checkCount(r.Count); err != nil {
			return fmt.Errorf("route %s: %w", r.Route, err)
		}
		if len(r.Nodes) > MaxNodes {
			return fmt.Errorf("route %s: %d nodes, over %d", r.Route, len(r.Nodes), MaxNodes)
		}
		nodes := map[string]bool{}
		for _, n := range r.Nodes {
			if err := name("node id", n.ID); err != nil {
				return fmt.Errorf("route %s: %w", r.Route, err)
			}
			if nodes[n.ID] {
				return fmt.Errorf("route %s: node %s twice", r.Route, n.ID)
			}
			nodes[n.ID] = true
			if err := checkCount(n.Count); err != nil {
				return fmt.Errorf("route %s node %s: %w", r.Route, n.ID, err)
			}
		}
	}
	return nil
}

func checkCount(c api.Count) error {
	if c.Failures > c.Count || c.Sum < 0 {
		return errors.New("failures above count, or a negative sum")
	}
	if len(c.Buckets) > MaxBuckets {
		return fmt.Errorf("%d buckets, over %d", len(c.Buckets), MaxBuckets)
	}
	for _, b := range c.Buckets {
		if b[0] > maxBucketSeen {
			return fmt.Errorf("bucket %d past %d", b[0], maxBucketSeen)
		}
	}
	return nil
}

func checkModel(m *api.RouteModel) error {
	if err := name("context", m.Context); err != nil {
		return err
	}
	if len(m.Routes) > MaxRoutes {
		return fmt.Errorf("%d routes, over %d", len(m.Routes), MaxRoutes)
	}
	for i, r := range m.Routes {
		if err := name("id", r.ID); err != nil {
			return fmt.Errorf("route %d: %w", i, err)
		}
		if len(r.From) > MaxURI || len(r.Description) > MaxText {
			return fmt.Errorf("route %s: from or description over bounds", r.ID)
		}
		if len(r.Nodes) > MaxNodes || len(r.Edges) > 4*MaxNodes {
			return fmt.Errorf("route %s: over %d nodes or %d edges", r.ID, MaxNodes, 4*MaxNodes)
		}
		for _, n := range r.Nodes {
			if err := name("node id", n.ID); err != nil {
				return fmt.Errorf("route %s: %w", r.ID, err)
			}
			if len(n.Type) > MaxName || len(n.Label) > MaxText || len(n.Parent) > MaxName {
				return fmt.Errorf("route %s node %s: type, label or parent over bounds", r.ID, n.ID)
			}
		}
		for _, e := range r.Edges {
			if len(e[0]) > MaxName || len(e[1]) > MaxName {
				return fmt.Errorf("route %s: edge over bounds", r.ID)
			}
		}
	}
	return nil
}

func name(what, v string) error {
	if v == "" || len(v) > MaxName {
		return fmt.Errorf("%s empty or over %d bytes", what, MaxName)
	}
	return nil
}

// span checks a start (µs since the epoch) and a duration (µs).
func span(start, dur int64, now time.Time) error {
	if err := instant("start", time.UnixMicro(start), now); err != nil {
		return err
	}
	if dur < 0 || dur > MaxDuration.Microseconds() {
		return fmt.Errorf("duration %dµs not in 0..%s", dur, MaxDuration)
	}
	return nil
}

func instant(what string, t, now time.Time) error {
	if t.Before(epoch) || t.After(now.Add(maxFuture)) {
		return fmt.Errorf("%s %s is before %s or over %s ahead", what, t.UTC().Format(time.RFC3339), epoch.Format("2006"), maxFuture)
	}
	return nil
}

// headerValues are what Text matches of an exchange's headers.
func headerValues(h map[string]string) []string {
	vs := make([]string, 0, len(h))
	for _, v := range h {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	return vs
}
