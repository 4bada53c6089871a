package collector

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/orchestrator"
	"github.com/cameleer/cameleer/appliance/originals"
	"github.com/cameleer/cameleer/internal/httpjson"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// replayAgent speaks the agent's side of originals and replay: it stands
// in for the Java agent (whose own side test/agent tests against real
// Camel) so that the runner's side is driven here in milliseconds.
type replayAgent struct {
	token string

	mu        sync.Mutex
	originals []api.Original // not yet acknowledged; seq i+1 is originals[i] of all
	acked     int
	replays   []api.ReplayRequest
	refuse    int  // answer replays with this status
	old       bool // an agent from before resends
}

func (a *replayAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		http.Error(w, "who are you", http.StatusUnauthorized)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch r.URL.Path {
	case api.AgentTelemetryPath:
		httpjson.Write(w, http.StatusOK, api.AgentBatch{Boot: "b1"})
	case api.AgentOriginalsPath:
		after, _ := strconv.Atoi(r.URL.Query().Get("after"))
		if r.URL.Query().Get("boot") != "b1" {
			after = 0
		}
		a.acked = max(a.acked, after)
		b := api.AgentBatch{Boot: "b1", Last: uint64(after)}
		for i := after; i < len(a.originals); i++ {
			raw, _ := json.Marshal(api.OriginalEvent{Kind: api.KindOriginal, Original: &a.originals[i]})
			b.Events = append(b.Events, raw)
			b.Last = uint64(i + 1)
		}
		httpjson.Write(w, http.StatusOK, b)
	case api.AgentReplayPath, api.AgentResendPath:
		if a.old && r.URL.Path == api.AgentResendPath {
			http.NotFound(w, r)
			return
		}
		raw, _ := io.ReadAll(r.Body)
		req, err := readReplay(raw, r.URL.Path == api.AgentResendPath)
		if err != nil {
			httpjson.Error(w, http.StatusBadRequest, err.Error())
			return
		}
		if a.refuse != 0 {
			httpjson.Error(w, a.refuse, "no route "+req.Route)
			return
		}
		a.replays = append(a.replays, req)
		httpjson.Write(w, http.StatusOK, api.ReplayResult{Exchange: fmt.Sprintf("R-%d", len(a.replays)), Status: api.StatusCompleted})
	default:
		http.NotFound(w, r)
	}
}

// readReplay reads what api.ReplayRequest.MarshalBinary wrote, as the
// agent does (agent/ReplayRequest.java); withNode: a resend's.
func readReplay(b []byte, withNode bool) (api.ReplayRequest, error) {
	next := func() ([]byte, error) {
		if len(b) < 4 || len(b) < 4+int(binary.BigEndian.Uint32(b)) {
			return nil, errors.New("short")
		}
		n := int(binary.BigEndian.Uint32(b))
		v := b[4 : 4+n]
		b = b[4+n:]
		return v, nil
	}
	var r api.ReplayRequest
	var f [3][]byte
	for i := range f {
		v, err := next()
		if err != nil {
			return r, err
		}
		f[i] = v
	}
	r.Context, r.Route, r.ReplayOf = string(f[0]), string(f[1]), string(f[2])
	if len(b) < 4 {
		return r, errors.New("short")
	}
	n := int(binary.BigEndian.Uint32(b))
	b = b[4:]
	r.Headers = map[string]string{}
	for range n {
		k, err := next()
		if err != nil {
			return r, err
		}
		v, err := next()
		if err != nil {
			return r, err
		}
		r.Headers[string(k)] = string(v)
	}
	body, err := next()
	r.Body = body
	if err == nil && withNode {
		var node []byte
		node, err = next()
		r.Node = string(node)
	}
	if err == nil && len(b) > 0 {
		err = errors.New("data after its end")
	}
	return r, err
}

// TestOriginalsKeptAndReplayed: the runner takes an agent's originals into
// its store, tells the control plane it keeps them, and replays one
// through the agent as it was or edited; after a restart too.
func TestOriginalsKeptAndReplayed(t *testing.T) {
	dir := t.TempDir()
	tokens, err := LoadTokens(filepath.Join(dir, "agent.key"))
	if err != nil {
		t.Fatal(err)
	}
	a := &replayAgent{token: tokens.For("dev", "orders")}
	for i := range 5 {
		a.originals = append(a.originals, api.Original{Exchange: fmt.Sprintf("X-%d", i), Context: "camel-1", Route: "orders",
			Start: time.Now().UnixMicro(), Status: api.StatusFailed, Body: []byte(fmt.Sprintf(`{"order":%d}`, i)),
			Headers: map[string]string{"orderId": strconv.Itoa(i)}})
	}
	// X-1 failed at a node that sends to an endpoint.
	a.originals[1].At = &api.OriginalAt{NodeRef: api.NodeRef{Node: "post", Route: "post-order"}, Body: []byte("mapped 1"), Headers: map[string]string{"qty": "1"}}
	as := httptest.NewServer(a)
	defer as.Close()
	cp := &controlPlane{events: map[string]int{}}
	cps := httptest.NewServer(cp)
	defer cps.Close()
	host, port, _ := net.SplitHostPort(as.Listener.Addr().String())
	agentPort, _ := strconv.Atoi(port)
	var present sync.Map // instances listed
	present.Store("on", true)

	start := func() (*Collector, func()) {
		spool, err := OpenSpool(filepath.Join(dir, "spool"), 1<<20, quiet())
		if err != nil {
			t.Fatal(err)
		}
		store, err := originals.Open(filepath.Join(dir, "originals"), filepath.Join(dir, "originals.key"),
			func(string) originals.Bounds { return originals.Bounds{MaxBytes: 1 << 20, MaxAge: time.Hour} })
		if err != nil {
			t.Fatal(err)
		}
		c := New(Options{Spool: spool, ControlPlane: &http.Client{Transport: rewrite(cps.URL)}, AgentPort: agentPort,
			Pull: 20 * time.Millisecond, Log: quiet(), Tokens: tokens, Originals: store,
			Instances: func(context.Context) ([]orchestrator.Instance, error) {
				if _, ok := present.Load("on"); !ok {
					return nil, nil
				}
				return []orchestrator.Instance{{Environment: "dev", App: "orders", Name: "orders-0", Address: host}}, nil
			}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { c.Run(ctx); close(done) }()
		return c, func() { cancel(); <-done; spool.Close() }
	}
	c, stop := start()
	testutil.Eventually(t, 20*time.Millisecond, 10*time.Second, "the originals kept and said", func() error {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		a.mu.Lock()
		defer a.mu.Unlock()
		if len(cp.kept) != 5 || a.acked != 5 {
			return fmt.Errorf("%d kept notes at the control plane, %d acknowledged to the agent", len(cp.kept), a.acked)
		}
		return nil
	})
	cp.mu.Lock()
	for i, k := range cp.kept {
		if k.Exchange != fmt.Sprintf("X-%d", i) || k.Route != "orders" || k.Start != a.originals[i].Start ||
			time.Until(time.UnixMilli(k.Until)) < 55*time.Minute || (k.At != nil) != (i == 1) {
			t.Errorf("kept note %d: %+v", i, k)
		}
	}
	if at := cp.kept[1].At; at == nil || *at != (api.NodeRef{Node: "post", Route: "post-order"}) {
		t.Errorf("X-1's note says it failed at %+v", at)
	}
	cp.mu.Unlock()

	ctx := context.Background()
	res, err := c.Replay(ctx, "dev", "orders", api.RunnerReplay{Exchange: "X-1"})
	if err != nil || res.Status != api.StatusCompleted || res.Exchange != "R-1" || res.Instance != "orders-0" {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	want := api.ReplayRequest{Context: "camel-1", Route: "orders", ReplayOf: "X-1", Headers: map[string]string{"orderId": "1"}, Body: []byte(`{"order":1}`)}
	if !reflect.DeepEqual(a.replays[0], want) {
		t.Errorf("the agent was handed %+v, want %+v", a.replays[0], want)
	}
	// An edit is applied here, to the stored original.
	if _, err := c.Replay(ctx, "dev", "orders", api.RunnerReplay{Exchange: "X-2", Edit: &api.ReplayEdit{Body: []byte("fixed")}}); err != nil {
		t.Fatal(err)
	}
	if got := a.replays[1]; string(got.Body) != "fixed" || got.Headers["orderId"] != "2" || got.ReplayOf != "X-2" {
		t.Errorf("edited replay handed %+v", got)
	}
	if _, err := c.Replay(ctx, "dev", "orders", api.RunnerReplay{Exchange: "X-3", Edit: &api.ReplayEdit{Body: []byte("b"), Headers: map[string]string{"x": "y"}}}); err != nil {
		t.Fatal(err)
	}
	if got := a.replays[2]; !reflect.DeepEqual(got.Headers, map[string]string{"x": "y"}) {
		t.Errorf("edited headers: %+v", got.Headers)
	}
	status := func(err error) int {
		var se *httpjson.StatusError
		if errors.As(err, &se) {
			return se.Status
		}
		return 0
	}
	if _, err := c.Replay(ctx, "dev", "orders", api.RunnerReplay{Exchange: "X-9"}); status(err) != http.StatusNotFound {
		t.Errorf("an original never kept: %v", err)
	}
	if _, err := c.Replay(ctx, "dev", "billing", api.RunnerReplay{Exchange: "X-1"}); status(err) != http.StatusNotFound {
		t.Errorf("another app's exchange: %v", err)
	}
	a.mu.Lock()
	a.refuse = http.StatusNotFound
	a.mu.Unlock()
	if _, err := c.Replay(ctx, "dev", "orders", api.RunnerReplay{Exchange: "X-1"}); status(err) != http.StatusConflict {
		t.Errorf("an agent without the route: %v", err)
	}
	a.mu.Lock()
	a.refuse = 0
	a.mu.Unlock()

	// At the node where it failed: that node's message, to its endpoint; edited there too.
	if _, err := c.Replay(ctx, "dev", "orders", api.RunnerReplay{Exchange: "X-1", At: api.ReplayAtNode}); err != nil {
		t.Fatal(err)
	}
	want = api.ReplayRequest{Context: "camel-1", Route: "post-order", Node: "post", ReplayOf: "X-1", Headers: map[string]string{"qty": "1"}, Body: []byte("mapped 1")}
	if got := a.replays[len(a.replays)-1]; !reflect.DeepEqual(got, want) {
		t.Errorf("at the node the agent was handed %+v, want %+v", got, want)
	}
	if _, err := c.Replay(ctx, "dev", "orders", api.RunnerReplay{Exchange: "X-1", At: api.ReplayAtNode, Edit: &api.ReplayEdit{Body: []byte("mapped again")}}); err != nil {
		t.Fatal(err)
	}
	if got := a.replays[len(a.replays)-1]; string(got.Body) != "mapped again" || got.Node != "post" || got.Headers["qty"] != "1" {
		t.Errorf("an edit at the node handed %+v", got)
	}
	n := len(a.replays)
	if _, err := c.Replay(ctx, "dev", "orders", api.RunnerReplay{Exchange: "X-2", At: api.ReplayAtNode}); status(err) != http.StatusConflict || !strings.Contains(err.Error(), "route's start") {
		t.Errorf("at the node of an exchange that failed at none: %v", err)
	}
	if _, err := c.Replay(ctx, "dev", "orders", api.RunnerReplay{Exchange: "X-1", At: "middle"}); status(err) != http.StatusBadRequest {
		t.Errorf("at the middle: %v", err)
	}
	a.mu.Lock()
	a.old = true
	a.mu.Unlock()
	if _, err := c.Replay(ctx, "dev", "orders", api.RunnerReplay{Exchange: "X-1", At: api.ReplayAtNode}); status(err) != http.StatusConflict || !strings.Contains(err.Error(), "deploy the app again") {
		t.Errorf("at the node, through an agent from before: %v", err)
	}
	a.mu.Lock()
	a.old = false
	a.mu.Unlock()
	if len(a.replays) != n {
		t.Errorf("refused replays reached the agent: %+v", a.replays[n:])
	}

	// After a restart the originals are still there; without an instance there is nothing to replay into.
	stop()
	present.Delete("on")
	c, stop = start()
	defer stop()
	if _, err := c.Replay(ctx, "dev", "orders", api.RunnerReplay{Exchange: "X-4"}); status(err) != http.StatusServiceUnavailable {
		t.Errorf("no instance: %v", err)
	}
	present.Store("on", true)
	if res, err := c.Replay(ctx, "dev", "orders", api.RunnerReplay{Exchange: "X-4"}); err != nil || res.Status != api.StatusCompleted {
		t.Fatalf("replay after a restart: %+v, %v", res, err)
	}
	if got := a.replays[len(a.replays)-1]; string(got.Body) != `{"order":4}` {
		t.Errorf("after a restart the agent was handed %q", got.Body)
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if len(cp.kept) != 5 {
		t.Errorf("%d kept notes after a restart, want the 5 once each", len(cp.kept))
	}
}

// TestEvictionsTold: originals evicted to make room are said to the
// control plane, after the note that they were kept.
func TestEvictionsTold(t *testing.T) {
	dir := t.TempDir()
	tokens, err := LoadTokens(filepath.Join(dir, "agent.key"))
	if err != nil {
		t.Fatal(err)
	}
	a := &replayAgent{token: tokens.For("dev", "orders")}
	for i := range 3 {
		a.originals = append(a.originals, api.Original{Exchange: fmt.Sprintf("X-%d", i), Context: "camel-1", Route: "orders",
			Start: time.Now().UnixMicro(), Status: api.StatusFailed, Body: make([]byte, 600)})
	}
	as := httptest.NewServer(a)
	defer as.Close()
	cp := &controlPlane{events: map[string]int{}}
	cps := httptest.NewServer(cp)
	defer cps.Close()
	host, port, _ := net.SplitHostPort(as.Listener.Addr().String())
	agentPort, _ := strconv.Atoi(port)
	spool, err := OpenSpool(filepath.Join(dir, "spool"), 1<<20, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	// Room for one original and a half.
	store, err := originals.Open(filepath.Join(dir, "originals"), filepath.Join(dir, "originals.key"),
		func(string) originals.Bounds { return originals.Bounds{MaxBytes: 1500, MaxAge: time.Hour} })
	if err != nil {
		t.Fatal(err)
	}
	c := New(Options{Spool: spool, ControlPlane: &http.Client{Transport: rewrite(cps.URL)}, AgentPort: agentPort,
		Pull: 20 * time.Millisecond, Log: quiet(), Tokens: tokens, Originals: store,
		Instances: func(context.Context) ([]orchestrator.Instance, error) {
			return []orchestrator.Instance{{Environment: "dev", App: "orders", Name: "orders-0", Address: host}}, nil
		}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	testutil.Eventually(t, 20*time.Millisecond, 10*time.Second, "the evictions said", func() error {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		if len(cp.kept) != 3 || len(cp.evicted) != 2 {
			return fmt.Errorf("%d kept, %d evicted", len(cp.kept), len(cp.evicted))
		}
		return nil
	})
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for i, e := range cp.evicted {
		if e.Exchange != fmt.Sprintf("X-%d", i) || e.Reason != api.EvictedBytes {
			t.Errorf("eviction %d: %+v", i, e)
		}
	}
	if n, _ := store.Usage("dev"); n != 1 {
		t.Errorf("%d originals kept, want the newest", n)
	}
	cp.mu.Unlock()
	// The app deleted: its last original goes, and the control plane is told.
	if err := c.ForgetApp("dev", "orders"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Millisecond, 10*time.Second, "the deletion said", func() error {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		if len(cp.evicted) != 3 {
			return fmt.Errorf("%d evicted", len(cp.evicted))
		}
		if e := cp.evicted[2]; e.Exchange != "X-2" || e.Reason != api.EvictedDeleted {
			t.Fatalf("the deleted app's original: %+v", e)
		}
		return nil
	})
	if n, _ := store.Usage("dev"); n != 0 {
		t.Errorf("%d originals kept of a deleted app", n)
	}
	cp.mu.Lock()
}
