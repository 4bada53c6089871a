// Package agent_test runs the Java agent on real Camel apps, each version of
// the matrix built with Maven from test/apps, and reads what the agent serves
// at api.AgentTelemetryPath as the runner does. `go test -short` skips it.
//
// Cold, with an empty ~/.m2, Maven downloads Camel, Spring Boot and its
// plugins once (about 2 minutes here); warm, the whole package takes about
// a minute and a half, most of it waiting for the apps' timers.
package agent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/internal/testkit/camelapps"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

const poll = 200 * time.Millisecond

// The repository's root, from this package's directory.
var root = filepath.Join("..", "..")

var (
	agentOnce sync.Once
	agentJar  string
	agentErr  error
)

// agent builds the agent jar once for the package, as make does.
func agent(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the agent and Camel apps with Maven and runs them")
	}
	agentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cameleer-agent-test")
		if err != nil {
			agentErr = err
			return
		}
		cmd := exec.Command("scripts/build-agent.sh", dir)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			agentErr = fmt.Errorf("build-agent.sh: %v\n%s", err, out)
			return
		}
		agentJar = filepath.Join(dir, "cameleer-agent.jar")
	})
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	return agentJar
}

// running is one app under the agent, its output kept.
type running struct {
	t      *testing.T
	base   string
	stdout *testutil.SyncBuffer
	stderr *testutil.SyncBuffer
	// raw is every byte the agent answered, to look for what it must not let out.
	raw    bytes.Buffer
	boot   string
	last   uint64
	events []api.Event
}

// run starts java with the agent on a free port; args follow the -javaagent.
func run(t *testing.T, env []string, args ...string) *running {
	t.Helper()
	port := testutil.FreePort(t)
	cmd := exec.Command("java", append([]string{"-javaagent:" + agent(t)}, args...)...)
	cmd.Env = append(os.Environ(), append([]string{fmt.Sprintf("CAMELEER_AGENT_PORT=%d", port)}, env...)...)
	r := &running{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}}
	cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", tail(r.stdout.String()), tail(r.stderr.String()))
		}
	})
	testutil.Eventually(t, poll, 30*time.Second, "the agent answers", func() error {
		_, err := r.get("/cameleer/jvm")
		return err
	})
	return r
}

// runMain runs the camel-main app of the newest Camel with env.
func runMain(t *testing.T, env ...string) *running {
	t.Helper()
	agent(t)
	return run(t, env, "-jar", camelapps.Build(t, camelapps.MainNewest))
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

func (r *running) get(path string) ([]byte, error) {
	resp, err := http.Get(r.base + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return b, nil
}

// batch asks for what follows after under boot.
func (r *running) batch(boot string, after uint64, max int) api.AgentBatch {
	r.t.Helper()
	q := fmt.Sprintf("%s?boot=%s&after=%d", api.AgentTelemetryPath, boot, after)
	if max > 0 {
		q += fmt.Sprintf("&max=%d", max)
	}
	b, err := r.get(q)
	if err != nil {
		r.t.Fatal(err)
	}
	r.raw.Write(b)
	var ab api.AgentBatch
	if err := json.Unmarshal(b, &ab); err != nil {
		r.t.Fatalf("%v in %s", err, b)
	}
	return ab
}

// pull reads everything new, acknowledging what it read, as the runner does.
func (r *running) pull() {
	r.t.Helper()
	for {
		ab := r.batch(r.boot, r.last, 0)
		r.boot, r.last = ab.Boot, ab.Last
		for _, raw := range ab.Events {
			var e api.Event
			if err := json.Unmarshal(raw, &e); err != nil {
				r.t.Fatalf("event %s: %v", raw, err)
			}
			r.events = append(r.events, e)
		}
		if len(ab.Events) == 0 {
			return
		}
	}
}

// until pulls until check finds what it wants in everything pulled so far;
// t is the (sub)test that waits.
// printed checks that the app's output has s.
func printed(r *running, s string) func() error {
	return func() error {
		if !strings.Contains(r.stdout.String(), s) {
			return fmt.Errorf("no %q in the app's output", s)
		}
		return nil
	}
}

func (r *running) until(t *testing.T, what string, check func() error) {
	t.Helper()
	testutil.Eventually(t, poll, 60*time.Second, what, func() error {
		r.pull()
		return check()
	})
}

func (r *running) exchanges(route string) []*api.Exchange {
	var out []*api.Exchange
	for _, e := range r.events {
		if e.Kind == api.KindExchange && (route == "" || e.Exchange.Route == route) {
			out = append(out, e.Exchange)
		}
	}
	return out
}

// derived waits for a traced exchange of route from and one of route to
// whose parent it is.
func (r *running) derived(t *testing.T, from, to string) (parent, child *api.Exchange) {
	t.Helper()
	r.until(t, "an exchange of "+from+" and one of "+to+" it led to", func() error {
		byID := map[string]*api.Exchange{}
		for _, x := range r.exchanges(from) {
			byID[x.ID] = x
		}
		var parents []string
		for _, x := range r.exchanges(to) {
			if p := byID[x.Parent]; p != nil {
				parent, child = p, x
				return nil
			}
			parents = append(parents, x.Parent)
		}
		return fmt.Errorf("none yet: %d of %s; the parents of those of %s: %v", len(byID), from, to, parents)
	})
	return parent, child
}

func (r *running) model(route string) *api.RouteGraph {
	for i := len(r.events) - 1; i >= 0; i-- {
		if e := r.events[i]; e.Kind == api.KindRoutes {
			for j := range e.Routes.Routes {
				if e.Routes.Routes[j].ID == route {
					return &e.Routes.Routes[j]
				}
			}
		}
	}
	return nil
}

// statsCount sums a route's stats over the windows of context before the
// last one pulled; end is that last one's start, when they had all ended.
func (r *running) statsCount(context, route string) (n uint64, end int64) {
	for _, e := range r.events {
		if e.Kind == api.KindStats && e.Stats.Context == context {
			end = max(end, e.Stats.Start)
		}
	}
	for _, e := range r.events {
		if e.Kind != api.KindStats || e.Stats.Context != context || e.Stats.Start >= end {
			continue
		}
		for _, rs := range e.Stats.Routes {
			if rs.Route == route {
				n += rs.Count.Count
			}
		}
	}
	return n, end
}

// The agent core's own unit tests (agent/test, JUnit), run with Maven.
func TestAgentUnits(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Maven")
	}
	cmd := exec.Command("mvn", "-q", "-B", "-f", "agent/pom.xml", "test")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mvn test: %v\n%s", err, out)
	}
}

// The matrix: each Camel app as users package it, per supported version.
var matrix = []struct {
	name string
	app  camelapps.App
	// classpath runs the app's classes and its dependencies' jars, unpacked.
	classpath, contexts bool
}{
	{"camel-main-4.14", camelapps.MainLTS, false, true},
	{"camel-main-4.22", camelapps.MainNewest, false, true},
	{"classpath-camel-4.22", camelapps.MainNewest, true, true},
	{"spring-boot-3.5-camel-4.17", camelapps.Boot3, false, false},
	{"spring-boot-4.0-camel-4.22", camelapps.Boot4, false, false},
}

func TestCamelApps(t *testing.T) {
	for _, m := range matrix {
		t.Run(m.name, func(t *testing.T) {
			agent(t)
			jar := camelapps.Build(t, m.app)
			args := []string{"-jar", jar}
			if m.classpath {
				args = []string{"-cp", classpath(t, m.app.Kind, m.app.Camel, filepath.Dir(jar)), "io.cameleer.testapp.MainApp"}
			}
			r := run(t, []string{"CAMELEER_SAMPLE=0.5", "CAMELEER_STATS_SECONDS=1"}, args...)
			checkApp(t, r, m.contexts)
		})
	}
}

func classpath(t *testing.T, kind, camel, target string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "cp")
	cmd := exec.Command("mvn", "-q", "-B", "dependency:build-classpath", "-Dcamel.version="+camel, "-Dmdep.outputFile="+out)
	cmd.Dir = filepath.Join(root, "test", "apps", kind)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mvn dependency:build-classpath: %v\n%s", err, b)
	}
	deps, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(target, "classes") + string(os.PathListSeparator) + strings.TrimSpace(string(deps))
}

func checkApp(t *testing.T, r *running, contexts bool) {
	var big, failing, dead, guarded *api.Exchange
	r.until(t, "the exchanges of every route", func() error {
		big, failing, dead, guarded = nil, nil, nil, nil
		for _, x := range r.exchanges("") {
			switch {
			case x.Route == "orders" && runOf(x, "log-big") >= 0 && runOf(x, "log-word") >= 0:
				big = x
			case x.Route == "failing":
				failing = x
			case x.Route == "dead":
				dead = x
			case x.Route == "guarded":
				guarded = x
			}
		}
		switch {
		case big == nil || failing == nil || dead == nil || guarded == nil:
			return fmt.Errorf("big %v, failing %v, dead %v, guarded %v", big != nil, failing != nil, dead != nil, guarded != nil)
		case r.model("orders") == nil:
			return fmt.Errorf("no route model yet")
		}
		return nil
	})

	t.Run("nodes in order and nested", func(t *testing.T) {
		if big.Status != api.StatusCompleted || big.From != "timer://orders?period=200" || big.Context == "" {
			t.Errorf("big order: status %q from %q context %q", big.Status, big.From, big.Context)
		}
		want := []string{"make-order", "kind-choice", "to-big", "log-big", "split-words"}
		for i, id := range want {
			if i >= len(big.Nodes) || big.Nodes[i].ID != id {
				t.Fatalf("nodes start %v, want %v", ids(big), want)
			}
		}
		if n := big.Nodes[len(big.Nodes)-1]; n.ID != "to-audit" || n.Parent != -1 {
			t.Errorf("last node %+v, want to-audit at the top", n)
		}
		choice, to, log, split := 1, 2, 3, 4
		if big.Nodes[to].Parent != choice || big.Nodes[log].Parent != to || big.Nodes[log].Route != "big" || big.Nodes[split].Parent != -1 {
			t.Errorf("the direct: call does not nest: %+v", big.Nodes[:5])
		}
		if big.Nodes[to].Type != "to" || big.Nodes[choice].Type != "choice" || big.Nodes[split].Type != "split" {
			t.Errorf("types: %+v", big.Nodes[:5])
		}
		children := map[string]bool{}
		for i, n := range big.Nodes {
			switch n.ID {
			case "filter-o":
				if n.Parent != split || n.Exchange == "" || n.Exchange == big.ID {
					t.Errorf("split child's filter %+v: not under the split with the child's id", n)
				}
				children[n.Exchange] = true
			case "log-word":
				if p := big.Nodes[n.Parent]; p.ID != "filter-o" || p.Exchange != n.Exchange {
					t.Errorf("node %d %+v not under its filter", i, n)
				}
			}
			if n.Start < big.Start || n.Duration < 0 {
				t.Errorf("node %+v: start before its exchange's %d", n, big.Start)
			}
		}
		// "order N of two parts" or the card order: 4 or more words.
		if len(children) < 4 {
			t.Errorf("split children %v", children)
		}
	})

	t.Run("correlation across seda", func(t *testing.T) {
		// At a sample of 0.5 not every order's audit is traced: any pair will do.
		order, audit := r.derived(t, "orders", "audit")
		if audit.Correlation != order.Correlation || order.Correlation != order.ID || audit.ID == order.ID {
			t.Errorf("audit %s corr %s parent %s; order %s corr %s", audit.ID, audit.Correlation, audit.Parent, order.ID, order.Correlation)
		}
		if note := "tab\t \"quoted\" back\\slash \u0001 ü 🐪"; audit.Headers["note"] != note {
			t.Errorf("header note %q, want %q", audit.Headers["note"], note)
		}
		if audit.BodySize <= 0 || audit.Body == "" || audit.Headers["kind"] == "" {
			t.Errorf("audit's message as it entered: %q (%d) %v", audit.Body, audit.BodySize, audit.Headers)
		}
	})

	t.Run("multicast and wire tap", func(t *testing.T) {
		// Sampled at 0.5: any fan-out traced with its tap will do.
		fan, tapped := r.derived(t, "fanout", "tapped")
		if tapped.Correlation != fan.Correlation || tapped.ID == fan.ID || tapped.Status != api.StatusCompleted {
			t.Errorf("tapped %s corr %s parent %s; fan-out %s corr %s", tapped.ID, tapped.Correlation, tapped.Parent, fan.ID, fan.Correlation)
		}
		multicast := runOf(fan, "fan")
		if multicast < 0 || fan.Nodes[multicast].Type != "multicast" || fan.Nodes[multicast].Parent != -1 {
			t.Fatalf("no multicast at the top: %v", ids(fan))
		}
		// Each branch is a copy of its own, under the multicast, and its
		// direct: route nests under the branch's to.
		branches := map[string]string{}
		for _, n := range fan.Nodes {
			switch n.ID {
			case "to-left", "to-right":
				if n.Parent != multicast || n.Exchange == "" || n.Exchange == fan.ID {
					t.Errorf("branch %+v: not under the multicast with its copy's id", n)
				}
				branches[n.ID] = n.Exchange
			case "log-left", "log-right":
				if p := fan.Nodes[n.Parent]; p.ID != "to-"+strings.TrimPrefix(n.ID, "log-") || p.Exchange != n.Exchange {
					t.Errorf("node %+v not under its branch's to", n)
				}
			case "tap", "log-fanned":
				if n.Parent != -1 || n.Exchange != "" {
					t.Errorf("node %+v: not the fan-out's own, at the top", n)
				}
			}
		}
		if len(branches) != 2 || branches["to-left"] == branches["to-right"] {
			t.Errorf("multicast branches %v, want two copies", branches)
		}
		if len(tapped.Nodes) != 1 || tapped.Nodes[0].ID != "log-tapped" || tapped.Nodes[0].Parent != -1 {
			t.Errorf("tapped nodes %+v", tapped.Nodes)
		}
	})

	t.Run("failures", func(t *testing.T) {
		if failing.Status != api.StatusFailed || failing.Error == nil || failing.Error.Type != "java.lang.IllegalArgumentException" ||
			!strings.Contains(failing.Error.Stack, "DemoRoutes") || failing.Redeliveries != 2 {
			t.Errorf("failing: %s %d %+v", failing.Status, failing.Redeliveries, failing.Error)
		}
		if n := countRuns(failing, "thrower"); n != 3 {
			t.Errorf("thrower ran %d times, want 3 (2 redeliveries): %v", n, ids(failing))
		}
		if dead.Status != api.StatusHandled || dead.Redeliveries != 1 || dead.Error == nil || dead.Error.Message != "to the dead letters" {
			t.Errorf("dead letter: %s %d %+v", dead.Status, dead.Redeliveries, dead.Error)
		}
		var letter *api.Exchange
		r.until(t, "a dead letter", func() error {
			for _, x := range r.exchanges("dead-letters") {
				if x.Correlation == x.Parent && x.Parent != x.ID {
					letter = x
					return nil
				}
			}
			return fmt.Errorf("none yet")
		})
		if letter.Status != api.StatusCompleted || letter.Error != nil {
			t.Errorf("the dead letter route took it: %s %+v", letter.Status, letter.Error)
		}
		if guarded.Status != api.StatusHandled || guarded.Error == nil || guarded.Error.Type != "java.lang.IllegalStateException" || runOf(guarded, "log-handled") < 0 {
			t.Errorf("onException: %s %+v %v", guarded.Status, guarded.Error, ids(guarded))
		}
	})

	t.Run("streams", func(t *testing.T) {
		// A stream the agent read would arrive short, failing the check,
		// and failures are always traced.
		var plain, cached *api.Exchange
		r.until(t, "both streams", func() error {
			for _, x := range r.exchanges("plain-stream") {
				if x.Status != api.StatusCompleted {
					return fmt.Errorf("plain stream: %s %+v", x.Status, x.Error)
				}
				plain = x
			}
			for _, x := range r.exchanges("cached-stream") {
				cached = x
			}
			if plain == nil || cached == nil {
				return fmt.Errorf("plain %v, cached %v", plain != nil, cached != nil)
			}
			return nil
		})
		if plain.BodySize != -1 || plain.Body != "" {
			t.Errorf("plain stream: %q (%d)", plain.Body, plain.BodySize)
		}
		if cached.Status != api.StatusCompleted || cached.Body != "a body that comes as a stream" || cached.BodySize != 29 {
			t.Errorf("cached stream: %s %q (%d)", cached.Status, cached.Body, cached.BodySize)
		}
	})

	t.Run("route model", func(t *testing.T) {
		g := r.model("orders")
		if len(g.Nodes) == 0 || g.Nodes[0].Type != "from" || g.From != "timer://orders?period=200" {
			t.Fatalf("orders model: %+v", g)
		}
		parents := map[string]string{}
		for _, n := range g.Nodes {
			parents[n.ID] = n.Parent
		}
		for id, parent := range map[string]string{"make-order": "", "kind-choice": "", "when-big": "kind-choice", "to-big": "when-big", "otherwise-small": "kind-choice", "split-words": "", "filter-o": "split-words", "log-word": "filter-o", "to-audit": ""} {
			if p, ok := parents[id]; !ok || p != parent {
				t.Errorf("node %s: parent %q (present %v), want %q", id, p, ok, parent)
			}
		}
		edges := map[[2]string]bool{}
		for _, e := range g.Edges {
			edges[e] = true
		}
		for _, e := range [][2]string{{g.Nodes[0].ID, "make-order"}, {"make-order", "kind-choice"}, {"kind-choice", "when-big"}, {"kind-choice", "otherwise-small"},
			{"when-big", "to-big"}, {"to-big", "split-words"}, {"log-small", "split-words"}, {"split-words", "filter-o"}, {"filter-o", "log-word"}, {"split-words", "to-audit"}} {
			if !edges[e] {
				t.Errorf("no edge %v in %v", e, g.Edges)
			}
		}
	})

	t.Run("stats count every exchange", func(t *testing.T) {
		var stats uint64
		var end int64
		r.until(t, "a stats window after the traces", func() error {
			stats, end = r.statsCount(big.Context, "orders")
			if end < big.Start+big.Duration {
				return fmt.Errorf("windows end at %d", end)
			}
			return nil
		})
		traced := 0
		for _, x := range r.exchanges("orders") {
			if x.Start+x.Duration <= end {
				traced++
			}
		}
		for _, e := range r.events {
			if e.Kind != api.KindStats {
				continue
			}
			for _, rs := range e.Stats.Routes {
				for _, n := range rs.Nodes {
					if n.Count.Count == 1 && (len(n.Buckets) != 1 || n.Buckets[0] != [2]uint64{uint64(api.Bucket(n.Sum)), 1}) {
						t.Errorf("node %s: one run of %d µs in buckets %v, want %d", n.ID, n.Sum, n.Buckets, api.Bucket(n.Sum))
					}
				}
			}
		}
		// Every failure is traced: as many as were counted, give or take
		// those that straddle the windows' end.
		failures, _ := r.statsCount(big.Context, "failing")
		var ended, begun uint64
		for _, x := range r.exchanges("failing") {
			if x.Start+x.Duration <= end {
				ended++
			}
			if x.Start < end {
				begun++
			}
		}
		if failures == 0 || failures < ended || failures > begun {
			t.Errorf("failing: %d counted, %d to %d traced", failures, ended, begun)
		}
		if traced == 0 || stats < uint64(traced) {
			t.Errorf("orders: %d counted, %d traced", stats, traced)
		}
		t.Logf("orders: %d counted, %d traced at a sample of 0.5", stats, traced)
	})

	if contexts {
		t.Run("every context", func(t *testing.T) {
			r.until(t, "the second context's exchanges", func() error {
				for _, x := range r.exchanges("second-route") {
					if x.Context == "second" && len(x.Nodes) == 1 && x.Nodes[0].ID == "second-log" {
						return nil
					}
				}
				return fmt.Errorf("none")
			})
			if big.Context != "demo" {
				t.Errorf("main context %q", big.Context)
			}
		})

		t.Run("route model follows routes added and removed", func(t *testing.T) {
			r.until(t, "the second context's models: without, with, without the late route", func() error {
				var has []bool
				for _, e := range r.events {
					if e.Kind == api.KindRoutes && e.Routes.Context == "second" {
						late := false
						for _, g := range e.Routes.Routes {
							late = late || g.ID == "late"
						}
						has = append(has, late)
					}
				}
				if fmt.Sprint(has) != "[false true false]" {
					return fmt.Errorf("late route in the models sent: %v", has)
				}
				return nil
			})
		})
	}

	t.Run("redaction", func(t *testing.T) {
		r.until(t, "the card order", func() error {
			for _, x := range r.exchanges("audit") {
				if strings.Contains(x.Body, "order card *** mail ***") && x.Headers["Authorization"] == "***" {
					return nil
				}
			}
			return fmt.Errorf("not yet")
		})
		raw := r.raw.String()
		for _, secret := range []string{"4111 1111 1111 1111", "4111111111111111", "jane.doe@example.com", "abc.def.ghi"} {
			if strings.Contains(raw, secret) {
				t.Errorf("%q left the agent", secret)
			}
		}
		if !strings.Contains(r.stdout.String(), "made order") {
			t.Errorf("the app did not run")
		}
	})

	t.Run("acknowledgement", func(t *testing.T) {
		r.pull()
		ab := r.batch(r.boot, r.last, 0)
		if ab.Last != r.last+uint64(len(ab.Events)) {
			t.Errorf("after %d: last %d with %d events", r.last, ab.Last, len(ab.Events))
		}
		// Another boot: from the oldest held, which is past what was acknowledged.
		other := r.batch("", 0, 1)
		if len(other.Events) > 1 || len(other.Events) == 1 && other.Last <= r.last {
			t.Errorf("after acknowledging %d, the oldest held is %d", r.last, other.Last)
		}
		if other.Boot != r.boot || other.Dropped != 0 {
			t.Errorf("boot %s dropped %d", other.Boot, other.Dropped)
		}
	})
}

func ids(x *api.Exchange) []string {
	var out []string
	for _, n := range x.Nodes {
		out = append(out, n.ID)
	}
	return out
}

func runOf(x *api.Exchange, id string) int {
	for i, n := range x.Nodes {
		if n.ID == id {
			return i
		}
	}
	return -1
}

func countRuns(x *api.Exchange, id string) int {
	n := 0
	for _, r := range x.Nodes {
		if r.ID == id {
			n++
		}
	}
	return n
}

// An app without Camel: JVM facts, no events, no complaint.
func TestNoCamel(t *testing.T) {
	agent(t)
	dir := t.TempDir()
	jar := filepath.Join(dir, "app.jar")
	src := `public class Plain {
    public static void main(String[] args) throws Exception {
        System.out.println("plain app up");
        Thread.sleep(600_000);
    }
}
`
	if err := os.WriteFile(jar, testutil.JavaJar(t, "Plain", src), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, []string{"CAMELEER_STATS_SECONDS=1"}, "-jar", jar)
	if b, err := r.get("/cameleer/jvm"); err != nil || !strings.Contains(string(b), "javaVersion") {
		t.Fatalf("jvm facts: %s %v", b, err)
	}
	time.Sleep(2500 * time.Millisecond)
	ab := r.batch("", 0, 0)
	if len(ab.Events) != 0 || ab.Last != 0 || ab.Boot == "" {
		t.Errorf("no Camel, yet %+v", ab)
	}
	if strings.Contains(r.stderr.String(), "cameleer-agent") {
		t.Errorf("stderr: %s", r.stderr.String())
	}
}

// A failure inside the agent's hooks turns its Camel part off with one
// line on stderr; the app runs on, and the agent still answers. So does a
// redaction rule the agent cannot compile: nothing is captured without it.
func TestHooksFailing(t *testing.T) {
	for name, env := range map[string]string{
		"hooks throw":     "CAMELEER_TEST_FAIL=hooks",
		"bad redact rule": "CAMELEER_REDACT=card (",
	} {
		t.Run(name, func(t *testing.T) {
			r := runMain(t, env, "CAMELEER_STATS_SECONDS=1")
			testutil.Eventually(t, poll, 30*time.Second, "the hooks disable themselves", func() error {
				if !strings.Contains(r.stderr.String(), "Camel tracing disabled") {
					return fmt.Errorf("not yet")
				}
				return nil
			})
			orders := strings.Count(r.stdout.String(), "made order")
			testutil.Eventually(t, poll, 30*time.Second, "the app runs on", func() error {
				if n := strings.Count(r.stdout.String(), "made order"); n < orders+5 {
					return fmt.Errorf("%d orders", n)
				}
				return nil
			})
			if n := strings.Count(r.stderr.String(), "cameleer-agent:"); n != 1 {
				t.Errorf("%d lines from the agent on stderr:\n%s", n, r.stderr.String())
			}
			r.pull()
			if x := r.exchanges(""); len(x) != 0 {
				t.Errorf("%d exchanges traced after the failure", len(x))
			}
		})
	}
}

// The answer is bounded: max=1 byte still carries one event, never more.
// The app's own redaction rules apply beside the defaults.
func TestBoundedAnswer(t *testing.T) {
	r := runMain(t, "CAMELEER_SAMPLE=1", "CAMELEER_REDACT=of two parts\n[a-z]+ \\$\\{body\\}")
	testutil.Eventually(t, poll, 30*time.Second, "events", func() error {
		ab := r.batch("", 0, 1)
		if len(ab.Events) != 1 {
			return fmt.Errorf("%d events", len(ab.Events))
		}
		next := r.batch(ab.Boot, ab.Last, 1)
		if len(next.Events) != 1 || next.Last != ab.Last+1 {
			return fmt.Errorf("after %d: %d events to %d", ab.Last, len(next.Events), next.Last)
		}
		return nil
	})
	r.until(t, "an order's audit", func() error {
		if len(r.exchanges("audit")) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	raw := r.raw.String()
	if strings.Contains(raw, "of two parts") || strings.Contains(raw, "audit ${body}") || !strings.Contains(raw, "order 1 ***") {
		t.Errorf("the app's rules did not apply: %s", tail(raw))
	}
}

// The buffer keeps within its bound, dropping the oldest and counting them.
func TestBufferBound(t *testing.T) {
	r := runMain(t, "CAMELEER_SAMPLE=1", "CAMELEER_BUFFER_BYTES=8192")
	testutil.Eventually(t, poll, 30*time.Second, "drops", func() error {
		ab := r.batch("", 0, 0)
		size := 0
		for _, e := range ab.Events {
			size += len(e)
		}
		if size > 8192 {
			t.Fatalf("%d bytes of events held", size)
		}
		if ab.Dropped == 0 || ab.Last-uint64(len(ab.Events)) < ab.Dropped {
			return fmt.Errorf("dropped %d, held to %d", ab.Dropped, ab.Last)
		}
		return nil
	})
}

// TestToken: with CAMELEER_AGENT_TOKEN set (the runner sets it), only who
// shows it takes the telemetry: another app of the environment, which
// reaches the agent's port too, gets a 401 and acknowledges nothing.
func TestToken(t *testing.T) {
	const token = "tok-3f9c0a"
	r := runMain(t, "CAMELEER_AGENT_TOKEN="+token)
	ask := func(method, path, auth string) int {
		req, _ := http.NewRequest(method, r.base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Telemetry, the unredacted originals and replays are the runner's alone.
	for _, p := range []struct{ method, path string }{{"GET", api.AgentTelemetryPath + "?after=0"}, {"GET", api.AgentOriginalsPath + "?after=0"}, {"POST", api.AgentReplayPath}} {
		for _, auth := range []string{"", "Bearer nope", "Bearer " + token + "x", token} {
			if code := ask(p.method, p.path, auth); code != http.StatusUnauthorized {
				t.Errorf("%s %s with %q: %d, want 401", p.method, p.path, auth, code)
			}
		}
	}
	if code := ask("GET", api.AgentTelemetryPath+"?after=0", "Bearer "+token); code != http.StatusOK {
		t.Errorf("telemetry asked with the token: %d, want 200", code)
	}
	if code := ask("GET", api.AgentOriginalsPath+"?after=0", "Bearer "+token); code != http.StatusOK {
		t.Errorf("originals asked with the token: %d, want 200", code)
	}
	if _, err := r.get("/cameleer/jvm"); err != nil {
		t.Errorf("the JVM's facts need no token: %v", err)
	}
}

// TestReplay: a route fails while its downstream is down; the agent keeps
// each failed exchange's message, unredacted, for the runner alone, with
// the node it failed at and what that node sent; once the downstream is
// back, the message replayed through the agent reaches the route's
// processor with its original body and headers, as a new exchange traced
// as a replay of the first; resent at the node, it reaches the node's
// endpoint alone.
func TestReplay(t *testing.T) {
	down := filepath.Join(t.TempDir(), "down")
	if err := os.WriteFile(down, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runMain(t, "FLAKY_DOWN="+down, "CAMELEER_SAMPLE=0")
	var failed *api.Exchange
	r.until(t, "a failed, replayable exchange of flaky", func() error {
		for _, x := range r.exchanges("flaky") {
			if x.Status == api.StatusFailed && x.Replayable {
				failed = x
				return nil
			}
		}
		return fmt.Errorf("none yet")
	})
	// Its original, and only failed exchanges' (completed ones are not kept).
	var orig *api.Original
	testutil.Eventually(t, poll, 30*time.Second, "its original", func() error {
		b, err := r.get(api.AgentOriginalsPath + "?after=0")
		if err != nil {
			return err
		}
		var batch struct{ Events []api.OriginalEvent }
		if err := json.Unmarshal(b, &batch); err != nil {
			return fmt.Errorf("%v in %s", err, b)
		}
		for _, e := range batch.Events {
			if e.Kind != api.KindOriginal || e.Original == nil || e.Original.Status == api.StatusCompleted {
				t.Fatalf("an original that is no failed exchange's: %+v", e)
			}
			if e.Original.Exchange == failed.ID {
				orig = e.Original
			}
		}
		if orig == nil {
			return fmt.Errorf("not among %d", len(batch.Events))
		}
		return nil
	})
	if !strings.HasPrefix(string(orig.Body), "flaky message ") || orig.Headers["attempt"] != "first" || orig.Route != "flaky" || orig.Context == "" {
		t.Fatalf("original %+v (body %q)", orig, orig.Body)
	}
	// It failed at a node that sends to an endpoint: that node, and the message it sent, mapped.
	if at := orig.At; at == nil || at.Node != "call-flaky" || at.Route != "flaky" || !bytes.Equal(at.Body, orig.Body) ||
		at.Headers["mapped"] != strconv.Itoa(len(orig.Body)) || at.Headers["attempt"] != "first" {
		t.Fatalf("where the original failed: %+v", orig.At)
	}

	if err := os.Remove(down); err != nil {
		t.Fatal(err)
	}
	var res api.ReplayResult
	if code := replay(t, r, api.ReplayRequest{Context: orig.Context, Route: orig.Route, ReplayOf: orig.Exchange, Headers: orig.Headers, Body: orig.Body}, &res); code != http.StatusOK ||
		res.Status != api.StatusCompleted || res.Exchange == "" || res.Exchange == orig.Exchange {
		t.Fatalf("replay: %d %+v", code, res)
	}
	// The app's output is read as it comes: it may trail the answer.
	r.until(t, "the route's processor took the original", printed(r, "flaky took "+string(orig.Body)+" attempt first"))
	r.until(t, "the replay's trace", func() error {
		for _, x := range r.exchanges("flaky") {
			if x.ID == res.Exchange {
				if x.ReplayOf != orig.Exchange || x.Status != api.StatusCompleted {
					t.Errorf("the replay's trace: replayOf %q status %s", x.ReplayOf, x.Status)
				}
				return nil
			}
		}
		return fmt.Errorf("none yet")
	})

	// At the node it failed at: that node alone sends the message on (its
	// route's mapping does not run again), traced as a replay.
	res = api.ReplayResult{}
	at := api.ReplayRequest{Context: orig.Context, Route: orig.At.Route, Node: orig.At.Node, ReplayOf: orig.Exchange, Headers: orig.At.Headers, Body: []byte("resent " + string(orig.At.Body))}
	if code := replay(t, r, at, &res); code != http.StatusOK || res.Status != api.StatusCompleted || res.Exchange == "" {
		t.Fatalf("resend: %d %+v", code, res)
	}
	r.until(t, "the node's endpoint took the message", printed(r, "flaky took resent "+string(orig.Body)+" attempt first mapped "+orig.At.Headers["mapped"]))
	r.until(t, "the resend's trace", func() error {
		for _, x := range r.exchanges("flaky") {
			if x.ID == res.Exchange {
				if x.ReplayOf != orig.Exchange || x.Status != api.StatusCompleted || len(x.Nodes) == 0 || x.Nodes[0].ID != "call-flaky" ||
					runOf(x, "map-flaky") >= 0 || runOf(x, "flaky-println") < 0 || !strings.Contains(x.From, "flaky-downstream") {
					t.Errorf("the resend's trace: %+v", x)
				}
				return nil
			}
		}
		return fmt.Errorf("none yet")
	})
	for node, want := range map[string]string{"map-flaky": "no node map-flaky sending to an endpoint", "nope": "no node nope"} {
		var bad struct{ Error string }
		at.Node = node
		if code := replay(t, r, at, &bad); code != http.StatusNotFound || !strings.Contains(bad.Error, want) {
			t.Errorf("a resend at %s: %d %q", node, code, bad.Error)
		}
	}

	// What cannot be replayed says why in one line, and runs nothing.
	var bad struct{ Error string }
	if code := replay(t, r, api.ReplayRequest{Context: orig.Context, Route: "no-such-route", ReplayOf: orig.Exchange}, &bad); code != http.StatusNotFound || !strings.Contains(bad.Error, "no route no-such-route") {
		t.Errorf("an unknown route: %d %q", code, bad.Error)
	}
	if code := replay(t, r, api.ReplayRequest{Context: "nope", Route: "flaky", ReplayOf: orig.Exchange}, &bad); code != http.StatusNotFound || !strings.Contains(bad.Error, "no CamelContext nope") {
		t.Errorf("an unknown context: %d %q", code, bad.Error)
	}
	whole, _ := api.ReplayRequest{Route: "flaky", ReplayOf: orig.Exchange, Body: []byte("cut")}.MarshalBinary()
	resp, err := http.Post(r.base+api.AgentReplayPath, "application/octet-stream", bytes.NewReader(whole[:len(whole)-1]))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a request cut short: %d, want 400", resp.StatusCode)
	}
}

// replay POSTs req to the agent and decodes its answer into out.
func replay(t *testing.T, r *running, req api.ReplayRequest, out any) int {
	t.Helper()
	b, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	path := api.AgentReplayPath
	if req.Node != "" {
		path = api.AgentResendPath
	}
	resp, err := http.Post(r.base+path, "application/octet-stream", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("replay answer: %v", err)
	}
	return resp.StatusCode
}
