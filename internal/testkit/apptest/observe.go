package apptest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/camelapps"
	"github.com/cameleer/cameleer/internal/testkit/cptest"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// Secrets test/apps puts in every fourth order's body and in every order's
// Authorization header: the agent redacts them in the app's JVM, so no
// byte of the runner's spool, the control plane's store or its answers
// may hold them.
var Secrets = []string{"4111 1111 1111 1111", "4111111111111111", "jane.doe@example.com", "abc.def.ghi"}

// Summary is an exchange as the control plane lists it.
type Summary struct {
	ID, Route, Status, Correlation, Parent, ErrorType string
	Redeliveries, NodeCount                           int
}

// Detail is one exchange's whole trace.
type Detail struct {
	Summary
	Body       string
	Headers    map[string]string
	Nodes      []Node
	Correlated []Summary
}

// Node is one node's run in an exchange's trace.
type Node struct {
	ID, Type, Route, Exchange string
	Parent                    int
}

// RouteView is a route with its figures.
type RouteView struct {
	ID    string
	Stats struct{ Count, Failures int }
	Nodes []RouteNodeView
	Edges [][2]string
}

// RouteNodeView is a node of a route with its figures.
type RouteNodeView struct {
	ID    string
	Stats struct{ Count int }
}

// CamelApp names an app of test/apps in the control plane.
func CamelApp(a camelapps.App) string { return strings.ReplaceAll(a.Name(), ".", "-") }

// DeployCamel builds a, uploads it as the app name and deploys it to env
// with the environment's config, waiting until it runs.
func DeployCamel(t *testing.T, r Runner, a camelapps.App, env, name string) Deployment {
	t.Helper()
	jar, err := os.ReadFile(camelapps.Build(t, a))
	if err != nil {
		t.Fatal(err)
	}
	sha := r.CP.Upload(t, Tenant, name, jar)
	var d Deployment
	r.CP.Must(t, http.StatusAccepted, "POST", Base+"/environments/"+env+"/deployments", map[string]any{"app": name, "artifact": sha}, &d)
	return WaitRunning(t, r, Base+"/environments/"+env+"/deployments/"+d.ID)
}

// Observe deploys real Camel apps to dev, every exchange traced, and
// checks what the control plane's API shows of them, from the agent in
// the app through the runner and the tunnel: the routes' nodes by Camel's
// ids in their order and nesting, correlation across direct:, seda: and
// split children, failures with their exception and redeliveries, dead
// letters and onException as handled, the routes with their figures, the
// series, and no secret of a body or header anywhere. spools are the
// directories (the runner's spool, the control plane's data) whose every
// byte is searched for the secrets.
func Observe(t *testing.T, r Runner, spools []string, apps ...camelapps.App) {
	t.Helper()
	r.CP.Must(t, http.StatusOK, "PUT", Base+"/environments/dev/config", map[string]any{"env": map[string]string{
		"GREETING": "hello-dev", "CAMELEER_SAMPLE": "1"}}, nil)
	// An app's first exchanges wait for the runner to find it; what
	// follows is the steady state.
	var steady Lag
	for _, a := range apps {
		t.Run(a.Name(), func(t *testing.T) {
			DeployCamel(t, r, a, "dev", CamelApp(a))
			from := checkTraces(t, r.CP, Base+"/environments/dev/apps/"+CamelApp(a))
			steady = steady.Add(ReadLag(t, r.CP).Since(from))
		})
	}
	t.Logf("from an exchange's end in its app to its being queryable: %s; once each app ran: %s", ReadLag(t, r.CP), steady)
	for _, dir := range spools {
		for _, s := range Secrets {
			if f := grepDir(t, dir, s); f != "" {
				t.Errorf("%s holds %q, which the agent must have redacted", f, s)
			}
		}
	}
}

// checkTraces reads an app's telemetry from the control plane, and
// answers the lag histogram as it was once the first traces were there.
func checkTraces(t *testing.T, cp *cptest.ControlPlane, app string) Lag {
	var orders []Summary
	testutil.Eventually(t, poll, 3*time.Minute, "traced orders at the control plane", func() error {
		var page struct{ Exchanges []Summary }
		if _, err := cp.Call("GET", app+"/exchanges?route=orders&limit=40", nil, &page); err != nil {
			return err
		}
		if orders = page.Exchanges; len(orders) < 8 {
			return fmt.Errorf("%d orders traced", len(orders))
		}
		return nil
	})
	from := ReadLag(t, cp)
	var big, small bool
	for _, o := range orders {
		// The order's seda:audit exchange ends after it, and may come in
		// a later pull than the order itself.
		var d Detail
		testutil.Eventually(t, poll, time.Minute, "order "+o.ID+" with its seda:audit exchange", func() error {
			d = Detail{}
			cp.Must(t, http.StatusOK, "GET", app+"/exchanges/"+url.PathEscape(o.ID), nil, &d)
			if !slices.ContainsFunc(d.Correlated, func(s Summary) bool { return s.Route == "audit" }) {
				return fmt.Errorf("correlated %+v", d.Correlated)
			}
			return nil
		})
		checkOrder(t, d)
		big = big || slices.ContainsFunc(d.Nodes, func(n Node) bool { return n.ID == "log-big" })
		small = small || slices.ContainsFunc(d.Nodes, func(n Node) bool { return n.ID == "log-small" })
	}
	if !big || !small {
		t.Errorf("of %d orders: a big one %v, a small one %v; want each", len(orders), big, small)
	}
	// The audit route takes each order over seda: with its body and
	// headers, as they entered it: what the agent captures.
	var audits struct{ Exchanges []Summary }
	cp.Must(t, http.StatusOK, "GET", app+"/exchanges?route=audit&limit=40", nil, &audits)
	secret := false
	for _, a := range audits.Exchanges {
		var d Detail
		cp.Must(t, http.StatusOK, "GET", app+"/exchanges/"+url.PathEscape(a.ID), nil, &d)
		secret = secret || strings.Contains(d.Body, "card")
		if !strings.HasPrefix(d.Body, "order") {
			t.Errorf("audit exchange %s: body %q, want the order as it entered the route", d.ID, d.Body)
		}
		if v := d.Headers["Authorization"]; v == "" || strings.Contains(v, "abc") {
			t.Errorf("audit exchange %s: Authorization header %q, want it there, redacted", d.ID, v)
		}
		for _, s := range Secrets {
			if strings.Contains(d.Body, s) || slices.ContainsFunc(slices.Collect(maps.Values(d.Headers)), func(v string) bool { return strings.Contains(v, s) }) {
				t.Errorf("exchange %s shows %q: body %q headers %v", d.ID, s, d.Body, d.Headers)
			}
		}
	}
	if !secret {
		t.Errorf("none of %d audit exchanges had a card number (redacted) in its body", len(audits.Exchanges))
	}
	checkOutcome(t, cp, app, "failing", "failed", "java.lang.IllegalArgumentException", 2)
	checkOutcome(t, cp, app, "dead", "handled", "java.lang.IllegalArgumentException", 1)
	checkOutcome(t, cp, app, "guarded", "handled", "java.lang.IllegalStateException", 0)

	// Figures come with the agent's windows of 10 s.
	testutil.Eventually(t, poll, time.Minute, "the routes' figures", func() error {
		var routes []RouteView
		if _, err := cp.Call("GET", app+"/routes?window=1h", nil, &routes); err != nil {
			return err
		}
		for _, id := range []string{"orders", "big", "audit", "failing", "dead", "guarded"} {
			i := slices.IndexFunc(routes, func(r RouteView) bool { return r.ID == id })
			if i < 0 {
				return fmt.Errorf("no route %s among the app's routes", id)
			}
			r := routes[i]
			if r.Stats.Count == 0 || len(r.Nodes) < 2 || len(r.Edges) == 0 || slices.IndexFunc(r.Nodes, func(n RouteNodeView) bool { return n.Stats.Count > 0 }) < 0 {
				return fmt.Errorf("route %s: %+v, want figures, nodes with figures and edges", id, r)
			}
			if id == "failing" && r.Stats.Failures == 0 {
				return fmt.Errorf("route failing: %+v, want failures counted", r.Stats)
			}
		}
		var series []struct{ Count int }
		if _, err := cp.Call("GET", app+"/series?route=orders&window=1h&step=1m", nil, &series); err != nil {
			return err
		}
		if !slices.ContainsFunc(series, func(p struct{ Count int }) bool { return p.Count > 0 }) {
			return fmt.Errorf("the orders route's series over the last hour: %+v", series)
		}
		return nil
	})
	return from
}

// checkOrder checks one orders exchange's trace: Camel's node ids in the
// order they ran, direct:big nested under the to that called it, the split
// children's nodes under the split, the seda: hand-off correlated.
func checkOrder(t *testing.T, d Detail) {
	t.Helper()
	at := func(id string) int {
		return slices.IndexFunc(d.Nodes, func(n Node) bool { return n.ID == id })
	}
	order := []string{"make-order", "kind-choice", "split-words", "to-audit"}
	for i := 1; i < len(order); i++ {
		if a, b := at(order[i-1]), at(order[i]); a < 0 || b < a {
			t.Errorf("exchange %s: %s at %d, %s at %d, want both in that order", d.ID, order[i-1], a, order[i], b)
		}
	}
	if i := at("log-big"); i >= 0 {
		if p := d.Nodes[i].Parent; p < 0 || d.Nodes[p].ID != "to-big" || d.Nodes[i].Route != "big" {
			t.Errorf("exchange %s: log-big (route %s) under node %d, want under to-big in route big", d.ID, d.Nodes[i].Route, p)
		}
	}
	split, filters := at("split-words"), 0
	for _, n := range d.Nodes {
		if n.ID == "filter-o" {
			filters++
			if n.Exchange == "" || n.Exchange == d.ID || n.Parent < 0 || d.Nodes[n.Parent].ID != "split-words" {
				t.Errorf("exchange %s: a split child's filter-o %+v, want its own exchange under split-words (%d)", d.ID, n, split)
			}
		}
	}
	if filters < 2 {
		t.Errorf("exchange %s: %d split children, want one per word", d.ID, filters)
	}
	if d.Correlation != d.ID {
		t.Errorf("exchange %s begins its chain but is correlated to %s", d.ID, d.Correlation)
	}
	audit := slices.IndexFunc(d.Correlated, func(s Summary) bool { return s.Route == "audit" })
	if audit < 0 || d.Correlated[audit].Parent != d.ID {
		t.Errorf("exchange %s: correlated %+v, want the seda:audit exchange with it as parent", d.ID, d.Correlated)
	}
}

// checkOutcome finds an exchange of route with status and checks its
// exception and redeliveries.
func checkOutcome(t *testing.T, cp *cptest.ControlPlane, app, route, status, errType string, redeliveries int) {
	t.Helper()
	var page struct{ Exchanges []Summary }
	testutil.Eventually(t, poll, time.Minute, "a "+status+" exchange of "+route, func() error {
		if _, err := cp.Call("GET", app+"/exchanges?route="+route+"&status="+status+"&limit=1", nil, &page); err != nil {
			return err
		}
		if len(page.Exchanges) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	if x := page.Exchanges[0]; x.ErrorType != errType || x.Redeliveries != redeliveries {
		t.Errorf("route %s: %+v, want %s with %d redeliveries", route, x, errType, redeliveries)
	}
}

// Lag is the control plane's histogram of how long traced exchanges took
// from their end in the app to being stored: cumulative counts per upper
// bound.
type Lag struct {
	les    []string
	counts []float64
}

// ReadLag reads the histogram now.
func ReadLag(t *testing.T, cp *cptest.ControlPlane) Lag {
	t.Helper()
	resp, err := cp.Request(context.Background(), "GET", "/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	const name = "cameleer_telemetry_exchange_lag_seconds_bucket{le=\""
	var l Lag
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			le, n, _ := strings.Cut(rest, "\"} ")
			v, _ := strconv.ParseFloat(n, 64)
			l.les, l.counts = append(l.les, le), append(l.counts, v)
		}
	}
	return l
}

// Since is what was measured after before.
func (l Lag) Since(before Lag) Lag {
	out := Lag{les: l.les, counts: slices.Clone(l.counts)}
	for i := range out.counts {
		if i < len(before.counts) {
			out.counts[i] -= before.counts[i]
		}
	}
	return out
}

// Add sums two stretches of measuring.
func (l Lag) Add(o Lag) Lag {
	if len(l.counts) == 0 {
		return o
	}
	out := Lag{les: l.les, counts: slices.Clone(l.counts)}
	for i := range out.counts {
		if i < len(o.counts) {
			out.counts[i] += o.counts[i]
		}
	}
	return out
}

// String says the count and the bucket bounds of the median and the 99th
// percentile.
func (l Lag) String() string {
	if len(l.counts) == 0 || l.counts[len(l.counts)-1] == 0 {
		return "no exchanges measured"
	}
	total := l.counts[len(l.counts)-1]
	at := func(q float64) string {
		i := slices.IndexFunc(l.counts, func(c float64) bool { return c >= q*total })
		return "≤ " + l.les[i] + " s"
	}
	return fmt.Sprintf("%.0f exchanges, p50 %s, p99 %s", total, at(0.5), at(0.99))
}

// grepDir answers the first file under dir that holds s, "" if none.
func grepDir(t *testing.T, dir, s string) string {
	t.Helper()
	var found string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), s) {
			found = path
		}
		return nil
	})
	if err != nil {
		t.Errorf("search %s: %v", dir, err)
	}
	return found
}
