package collector

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/orchestrator"
	"github.com/cameleer/cameleer/internal/httpjson"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// agent speaks the agent's side of the pull protocol. It stands in for the
// Java agent (tested against real Camel in test/agent) so that the
// runner's loss cases can be driven here in milliseconds.
type agent struct {
	mu      sync.Mutex
	boot    string
	next    uint64   // seq of the next event
	held    []uint64 // seqs not acknowledged, oldest first
	cap     int
	dropped uint64
	// stall, when set, holds the next request that acknowledges events
	// before it does, and says so on stalled.
	stall   chan struct{}
	stalled chan struct{}
	// token, when set, is what a request must show, as the agent wants
	// when the runner gave it one.
	token string
}

func (a *agent) emit(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for range n {
		a.next++
		if len(a.held) == a.cap {
			a.held = a.held[1:]
			a.dropped++
		}
		a.held = append(a.held, a.next)
	}
}

func (a *agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" && r.Header.Get("Authorization") != "Bearer "+a.token {
		http.Error(w, "who are you", http.StatusUnauthorized)
		return
	}
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	if r.URL.Query().Get("boot") != a.boot {
		after = 0
	}
	if a.stall != nil && len(a.held) > 0 && after >= a.held[0] {
		a.stalled <- struct{}{}
		a.mu.Unlock()
		select {
		case <-a.stall:
		case <-r.Context().Done():
		}
		a.mu.Lock()
		a.stall = nil
		httpjson.Error(w, http.StatusServiceUnavailable, "stalled")
		return
	}
	for len(a.held) > 0 && a.held[0] <= after {
		a.held = a.held[1:]
	}
	b := api.AgentBatch{Boot: a.boot, Last: after, Dropped: a.dropped}
	for _, seq := range a.held[:min(len(a.held), 100)] {
		b.Events = append(b.Events, json.RawMessage(fmt.Sprintf(`{"kind":"exchange","exchange":{"id":"%s-%d"}}`, a.boot, seq)))
		b.Last = seq
	}
	httpjson.Write(w, http.StatusOK, b)
}

// controlPlane stores each record once, as the real one does, and can be
// made to fail.
type controlPlane struct {
	mu      sync.Mutex
	last    uint64
	events  map[string]int
	dropped [2]uint64
	down    atomic.Bool
	// kept and evicted are the runner's notes of the originals it keeps.
	kept    []api.Kept
	evicted []api.Evicted
}

func (cp *controlPlane) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if cp.down.Load() {
		httpjson.Error(w, http.StatusServiceUnavailable, "down for the test")
		return
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	var b api.TelemetryBatch
	if err := json.NewDecoder(zr).Decode(&b); err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var ack api.TelemetryAck
	for _, rec := range b.Records {
		if rec.Seq <= cp.last {
			ack.Duplicates++
			continue
		}
		var ev api.Event
		json.Unmarshal(rec.Event, &ev)
		switch {
		case ev.Exchange != nil:
			cp.events[ev.Exchange.ID]++
		case ev.Kept != nil:
			cp.kept = append(cp.kept, *ev.Kept)
		case ev.Evicted != nil:
			cp.evicted = append(cp.evicted, *ev.Evicted)
		}
		cp.last = rec.Seq
		ack.Stored++
	}
	cp.dropped = [2]uint64{b.AgentDropped, b.RunnerDropped}
	ack.Last = cp.last
	httpjson.Write(w, http.StatusOK, ack)
}

func (cp *controlPlane) count() (int, []string) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var twice []string
	for id, n := range cp.events {
		if n > 1 {
			twice = append(twice, id)
		}
	}
	return len(cp.events), twice
}

// pair is an agent and a control plane on loopback, and a runner's
// collector between them that can be started and stopped.
type pair struct {
	tokens Tokens
	cp     *controlPlane
	host   string
	port   int
	client *http.Client
	dir    string
}

func newPair(t *testing.T, a *agent) *pair {
	as := httptest.NewServer(a)
	t.Cleanup(as.Close)
	cp := &controlPlane{events: map[string]int{}}
	cps := httptest.NewServer(cp)
	t.Cleanup(cps.Close)
	host, port, _ := net.SplitHostPort(as.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	dir := t.TempDir()
	tokens, err := LoadTokens(filepath.Join(dir, "agent.key"))
	if err != nil {
		t.Fatal(err)
	}
	a.token = tokens.For("dev", "orders")
	return &pair{tokens: tokens, cp: cp, host: host, port: p, client: &http.Client{Transport: rewrite(cps.URL)}, dir: dir}
}

func (p *pair) start(t *testing.T) (stop func()) {
	t.Helper()
	s, err := OpenSpool(p.dir, 1<<20, quiet())
	if err != nil {
		t.Fatal(err)
	}
	in := orchestrator.Instance{Environment: "dev", App: "orders", Name: "orders-0", Address: p.host}
	c := New(Options{Spool: s, ControlPlane: p.client, AgentPort: p.port, Pull: 20 * time.Millisecond, Log: quiet(), Tokens: p.tokens,
		Instances: func(context.Context) ([]orchestrator.Instance, error) { return []orchestrator.Instance{in}, nil }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	return func() { cancel(); <-done; s.Close() }
}

// TestExactlyOnce: events arrive once each through a control plane that is
// away for a while and a runner that restarts.
func TestExactlyOnce(t *testing.T) {
	a := &agent{boot: "b1", cap: 100000}
	p := newPair(t, a)
	cp := p.cp
	stop := p.start(t)
	const total = 6000
	for i := range total / 100 {
		a.emit(100)
		time.Sleep(2 * time.Millisecond)
		switch i {
		case 10:
			cp.down.Store(true)
		case 30:
			// The runner goes down with the control plane away, after it
			// spooled a pull and before the agent heard so: the agent
			// still holds those events, and the runner must not take them
			// twice.
			a.mu.Lock()
			a.stall, a.stalled = make(chan struct{}), make(chan struct{}, 1)
			stall := a.stall
			a.mu.Unlock()
			a.emit(100)
			<-a.stalled
			stop()
			close(stall)
		case 35:
			stop = p.start(t)
		case 45:
			cp.down.Store(false)
		}
	}
	a.mu.Lock()
	emitted := int(a.next)
	a.mu.Unlock()
	testutil.Eventually(t, 20*time.Millisecond, 30*time.Second, "every event at the control plane", func() error {
		if n, twice := cp.count(); n != emitted || len(twice) > 0 {
			return fmt.Errorf("%d of %d events, %d twice", n, emitted, len(twice))
		}
		return nil
	})
	stop()
}

// TestDropsCounted: an agent whose buffer overflowed while nobody pulled
// says so, and the control plane hears the count.
func TestDropsCounted(t *testing.T) {
	a := &agent{boot: "b1", cap: 50}
	a.emit(80)
	p := newPair(t, a)
	cp := p.cp
	defer p.start(t)()
	testutil.Eventually(t, 20*time.Millisecond, 10*time.Second, "the drops at the control plane", func() error {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		if len(cp.events) != 50 || cp.dropped[0] != 30 {
			return fmt.Errorf("%d events, %d dropped by the agent", len(cp.events), cp.dropped[0])
		}
		return nil
	})
}

// rewrite sends every request to base, as the tunnel's client sends every
// request to the control plane.
func rewrite(base string) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		u := *r.URL
		u.Scheme, u.Host = "http", base[len("http://"):]
		r.URL, r.Host = &u, u.Host
		return http.DefaultTransport.RoundTrip(r)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestRefresh: an app deployed between two listings is pulled once the
// collector is told, not at the next listing.
func TestRefresh(t *testing.T) {
	a := &agent{boot: "b1", cap: 100}
	a.emit(10)
	p := newPair(t, a)
	s, err := OpenSpool(p.dir, 1<<20, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var deployed atomic.Bool
	listed := make(chan struct{}, 1)
	c := New(Options{Spool: s, ControlPlane: p.client, AgentPort: p.port, Pull: 20 * time.Millisecond, Refresh: time.Hour, Log: quiet(), Tokens: p.tokens,
		Instances: func(context.Context) ([]orchestrator.Instance, error) {
			if !deployed.Load() {
				listed <- struct{}{}
				return nil, nil
			}
			return []orchestrator.Instance{{Environment: "dev", App: "orders", Name: "orders-0", Address: p.host}}, nil
		}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	<-listed // the first listing, before the app
	deployed.Store(true)
	c.Refresh()
	testutil.Eventually(t, 20*time.Millisecond, 10*time.Second, "the new app's events at the control plane", func() error {
		if n, _ := p.cp.count(); n != 10 {
			return fmt.Errorf("%d of 10 events", n)
		}
		return nil
	})
}

// TestTokens: each app's token is its own, the same after a restart, and a
// damaged key is said, not replaced.
func TestTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.key")
	a, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	if a.For("dev", "orders") != b.For("dev", "orders") || a.For("dev", "orders") == a.For("dev", "invoices") || a.For("dev", "orders") == a.For("prod", "orders") {
		t.Error("tokens are not one per app and stable")
	}
	if (Tokens{}).For("dev", "orders") != "" {
		t.Error("no key, yet a token")
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := LoadTokens(path); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("a damaged key: %v", err)
	}
}

// TestSlowListing: a listing of the instances that takes long (kubectl on
// a busy node) holds up no pull.
func TestSlowListing(t *testing.T) {
	a := &agent{boot: "b1", cap: 1000}
	p := newPair(t, a)
	s, err := OpenSpool(p.dir, 1<<20, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var calls atomic.Int32
	stuck := make(chan struct{})
	defer close(stuck)
	c := New(Options{Spool: s, ControlPlane: p.client, AgentPort: p.port, Pull: 20 * time.Millisecond, Refresh: 10 * time.Millisecond, Log: quiet(), Tokens: p.tokens,
		Instances: func(ctx context.Context) ([]orchestrator.Instance, error) {
			if calls.Add(1) > 1 {
				<-stuck // every listing after the first never ends
			}
			return []orchestrator.Instance{{Environment: "dev", App: "orders", Name: "orders-0", Address: p.host}}, nil
		}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	testutil.Eventually(t, 10*time.Millisecond, 10*time.Second, "a second listing begun", func() error {
		if calls.Load() < 2 {
			return fmt.Errorf("%d listings", calls.Load())
		}
		return nil
	})
	a.emit(25)
	testutil.Eventually(t, 20*time.Millisecond, 10*time.Second, "events pulled while the listing hangs", func() error {
		if n, _ := p.cp.count(); n != 25 {
			return fmt.Errorf("%d of 25 events", n)
		}
		return nil
	})
}
