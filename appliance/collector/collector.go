// Package collector takes what the agents of a runner's apps saw of Camel
// and brings it to the control plane: it pulls each running instance's
// agent, keeps what it pulled in a bounded spool on disk, and forwards it
// through the tunnel in batches. An agent frees only what the runner has
// asked past, the spool forgets only what the control plane acknowledged,
// and the control plane stores a record once: a runner restart, a broken
// tunnel or a control plane away for a while loses nothing within the
// bounds, and what goes past them is counted.
package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/orchestrator"
	"github.com/cameleer/cameleer/appliance/originals"
	"github.com/cameleer/cameleer/internal/backoff"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// Defaults of Options.
const (
	defaultPull = 500 * time.Millisecond
	// A listing is two reads of the apiserver's (or Docker's) API: an
	// app's first exchanges, which wait in its agent until the runner
	// lists its new instance, wait at most this long.
	defaultRefresh = 2 * time.Second
	// maxPull bounds what the runner reads of one agent answer.
	maxPull = 8 << 20
	// maxEvent bounds one event: an exchange with its nodes, bodies and
	// headers cut by the agent stays well below.
	maxEvent = 1 << 20
	// batchRecords and batchBytes bound one batch to the control plane
	// (which takes up to 16 MiB).
	batchRecords = 2000
	batchBytes   = 4 << 20
)

// Options say what a Collector pulls and where it forwards.
type Options struct {
	// Instances lists the running instances of the runner's apps.
	Instances func(ctx context.Context) ([]orchestrator.Instance, error)
	// Spool keeps what was pulled until the control plane has it.
	Spool *Spool
	// ControlPlane reaches the control plane through the tunnel.
	ControlPlane *http.Client
	// AgentPort is where the agents serve; 0: api.AgentPort.
	AgentPort int
	// Tokens are what the agents want to see (the zero value: nothing).
	Tokens Tokens
	// Originals keeps what the agents hand over for replay; nil: the
	// runner takes none (each agent keeps its own until its buffer is full).
	Originals *originals.Store
	// Pull is how often each agent is asked; Refresh how often the
	// instances are listed again. Zero: 500 ms and 2 s.
	Pull, Refresh time.Duration
	Log           *slog.Logger
}

// Collector pulls, spools and forwards the telemetry of a runner's apps.
type Collector struct {
	opts  Options
	agent *http.Client

	// refresh asks for the instances to be listed again now, pullNow for
	// the agents to be pulled.
	refresh, pullNow chan struct{}

	mu        sync.Mutex
	instances []orchestrator.Instance
	// quiet are the agents that serve no telemetry (older ones, apps
	// without the agent), asked again after a while.
	quiet map[string]time.Time
	// seen is when each instance was last listed: the cursors of those
	// gone for forgetAfter are forgotten (every rollout makes new ones).
	seen map[string]time.Time
	// originalsDropped is the drop count of originals each agent last
	// answered, so that a new drop is said once.
	originalsDropped map[string]uint64
}

// forgetAfter is how long an instance must be gone before its cursor is
// forgotten: long past any listing that failed or came back empty.
const forgetAfter = time.Hour

// New makes a collector; Run runs it.
func New(o Options) *Collector {
	if o.AgentPort == 0 {
		o.AgentPort = api.AgentPort
	}
	if o.Pull == 0 {
		o.Pull = defaultPull
	}
	if o.Refresh == 0 {
		o.Refresh = defaultRefresh
	}
	return &Collector{opts: o, quiet: map[string]time.Time{}, seen: map[string]time.Time{}, originalsDropped: map[string]uint64{}, refresh: make(chan struct{}, 1), pullNow: make(chan struct{}, 1),
		agent: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}}}
}

// Refresh has the instances listed again at once: an app was deployed,
// started, restarted or stopped, and what it does from its first exchange
// is pulled without waiting for the next listing.
func (c *Collector) Refresh() {
	select {
	case c.refresh <- struct{}{}:
	default:
	}
}

// Run pulls and forwards until ctx is done.
func (c *Collector) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); c.sweepLoop(ctx) }()
	go func() { defer wg.Done(); c.listLoop(ctx) }()
	go func() { defer wg.Done(); c.pullLoop(ctx) }()
	go func() { defer wg.Done(); c.forwardLoop(ctx) }()
	wg.Wait()
	return nil
}

// listLoop lists the instances every Refresh, and when told to. Apart
// from the pulls: a listing can take seconds (kubectl on a busy node),
// and the agents are pulled on meanwhile.
func (c *Collector) listLoop(ctx context.Context) {
	tick := time.NewTicker(c.opts.Refresh)
	defer tick.Stop()
	for {
		if ins, err := c.opts.Instances(ctx); err != nil {
			c.opts.Log.Debug("list the apps' instances", "err", err)
		} else {
			c.listed(ins)
			c.pullSoon()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-c.refresh:
		}
	}
}

// pullSoon has the agents pulled now rather than at the next tick.
func (c *Collector) pullSoon() {
	select {
	case c.pullNow <- struct{}{}:
	default:
	}
}

func (c *Collector) pullLoop(ctx context.Context) {
	tick := time.NewTicker(c.opts.Pull)
	defer tick.Stop()
	for {
		c.mu.Lock()
		ins := c.instances
		c.mu.Unlock()
		var wg sync.WaitGroup
		for _, in := range ins {
			wg.Add(1)
			go func() { defer wg.Done(); c.pullAll(ctx, in) }()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-c.pullNow:
		}
	}
}

// listed takes a new list of the instances, and forgets the cursors of
// those gone for long. An instance's cursor the spool kept from before a
// restart counts as seen at the restart.
func (c *Collector) listed(ins []orchestrator.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.instances = ins
	now := time.Now()
	for _, in := range ins {
		c.seen[Key(in)] = now
		c.seen[originalsKey(in)] = now
	}
	for _, key := range c.opts.Spool.Keys() {
		if _, ok := c.seen[key]; !ok {
			c.seen[key] = now
		}
	}
	var gone []string
	for key, at := range c.seen {
		if now.Sub(at) > forgetAfter {
			gone = append(gone, key)
			delete(c.seen, key)
			delete(c.quiet, key)
		}
	}
	if len(gone) > 0 {
		if err := c.opts.Spool.Forget(gone); err != nil {
			c.opts.Log.Warn("forget the cursors of instances gone", "err", err)
		}
	}
}

// Key names an instance in the spool's cursors.
func Key(in orchestrator.Instance) string { return in.Environment + "/" + in.App + "/" + in.Name }

// originalsKey names an instance's cursor of originals in the spool.
func originalsKey(in orchestrator.Instance) string { return "originals:" + Key(in) }

// pullAll pulls an instance's agent until it has nothing more: its
// telemetry, then its originals.
func (c *Collector) pullAll(ctx context.Context, in orchestrator.Instance) {
	key := Key(in)
	c.mu.Lock()
	until, quiet := c.quiet[key]
	c.mu.Unlock()
	if quiet && time.Now().Before(until) {
		return
	}
	for ctx.Err() == nil {
		more, err := c.pull(ctx, in)
		if errors.Is(err, errNoTelemetry) {
			c.mu.Lock()
			c.quiet[key] = time.Now().Add(time.Minute)
			c.mu.Unlock()
			return
		}
		if err != nil {
			c.opts.Log.Debug("pull telemetry", "instance", key, "err", err)
			return
		}
		if !more {
			break
		}
	}
	for c.opts.Originals != nil && ctx.Err() == nil {
		more, err := c.pullOriginals(ctx, in)
		if err != nil {
			c.opts.Log.Debug("pull originals", "instance", key, "err", err)
			return
		}
		if !more {
			return
		}
	}
}

var errNoTelemetry = errors.New("the agent serves no telemetry")

// fetch asks an agent at path for what follows cur, which acknowledges
// what it covers.
func (c *Collector) fetch(ctx context.Context, in orchestrator.Instance, path string, cur Cursor) (api.AgentBatch, error) {
	q := url.Values{"boot": {cur.Boot}, "after": {strconv.FormatUint(cur.Last, 10)}}
	u := "http://" + net.JoinHostPort(in.Address, strconv.Itoa(c.opts.AgentPort)) + path + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return api.AgentBatch{}, err
	}
	if tok := c.opts.Tokens.For(in.Environment, in.App); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.agent.Do(req)
	if err != nil {
		return api.AgentBatch{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return api.AgentBatch{}, errNoTelemetry
	}
	if resp.StatusCode != http.StatusOK {
		return api.AgentBatch{}, fmt.Errorf("agent answered %s", resp.Status)
	}
	var b api.AgentBatch
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxPull)).Decode(&b); err != nil {
		return api.AgentBatch{}, fmt.Errorf("read the agent's answer: %w", err)
	}
	if b.Boot == "" || (b.Boot == cur.Boot && b.Last < cur.Last) {
		return api.AgentBatch{}, fmt.Errorf("the agent answered boot %q up to %d, asked after %d", b.Boot, b.Last, cur.Last)
	}
	return b, nil
}

// pull asks an agent for the telemetry that follows the runner's cursor,
// acknowledging what the cursor covers, and spools the answer. It says
// whether the agent may have more.
func (c *Collector) pull(ctx context.Context, in orchestrator.Instance) (bool, error) {
	key := Key(in)
	cur := c.opts.Spool.Cursor(key)
	b, err := c.fetch(ctx, in, api.AgentTelemetryPath, cur)
	if err != nil {
		return false, err
	}
	now := time.Now().UnixMilli()
	recs := make([]api.TelemetryRecord, 0, len(b.Events))
	for _, ev := range b.Events {
		if len(ev) > maxEvent || !json.Valid(ev) {
			continue // the agent's bug, not a reason to stop
		}
		recs = append(recs, api.TelemetryRecord{Environment: in.Environment, App: in.App, Instance: in.Name, Received: now, Event: ev})
	}
	next := Cursor{Boot: b.Boot, Last: b.Last, Dropped: b.Dropped}
	if next == cur {
		return false, nil
	}
	if err := c.opts.Spool.Append(key, next, recs); err != nil {
		return false, err
	}
	return len(b.Events) > 0, nil
}

// pullOriginals takes an agent's originals into the store, and spools,
// with the cursor past them, what the control plane is to know: that each
// is kept, and until when, and what made room for it. An original kept
// before a crash that stopped the cursor moving is pulled again and kept
// once.
func (c *Collector) pullOriginals(ctx context.Context, in orchestrator.Instance) (bool, error) {
	key := originalsKey(in)
	cur := c.opts.Spool.Cursor(key)
	b, err := c.fetch(ctx, in, api.AgentOriginalsPath, Cursor{Boot: cur.Boot, Last: cur.Last})
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	told := c.originalsDropped[key]
	c.originalsDropped[key] = b.Dropped
	c.mu.Unlock()
	if b.Dropped > told {
		c.opts.Log.Warn("an agent dropped originals before the runner took them: those exchanges cannot be replayed",
			"instance", Key(in), "dropped", b.Dropped-told)
	}
	now := time.Now()
	var recs []api.TelemetryRecord
	record := func(ev api.Event) {
		raw, _ := json.Marshal(ev)
		recs = append(recs, api.TelemetryRecord{Environment: in.Environment, App: in.App, Instance: in.Name, Received: now.UnixMilli(), Event: raw})
	}
	for _, raw := range b.Events {
		var ev api.OriginalEvent
		if err := json.Unmarshal(raw, &ev); err != nil || ev.Kind != api.KindOriginal || ev.Original == nil {
			continue // the agent's bug, not a reason to stop
		}
		until, evicted, err := c.opts.Originals.Put(in.Environment, in.App, in.Name, *ev.Original, now)
		if err != nil {
			return false, err
		}
		for _, e := range evicted {
			record(evictedEvent(e))
		}
		if !until.IsZero() {
			o := ev.Original
			k := &api.Kept{Exchange: o.Exchange, Route: o.Route, Start: o.Start, Until: until.UnixMilli()}
			if o.At != nil {
				k.At = &api.NodeRef{Node: o.At.Node, Route: o.At.Route}
			}
			record(api.Event{Kind: api.KindKept, Kept: k})
		}
	}
	// The agent's drops are the originals' own, not telemetry's: told above, not counted there.
	next := Cursor{Boot: b.Boot, Last: b.Last}
	if next == cur {
		return false, nil
	}
	if err := c.opts.Spool.Append(key, next, recs); err != nil {
		return false, err
	}
	return len(b.Events) > 0, nil
}

func evictedEvent(e originals.Evicted) api.Event {
	return api.Event{Kind: api.KindEvicted, Evicted: &api.Evicted{Exchange: e.Exchange, Reason: e.Reason}}
}

// sweepLoop evicts the originals past their age every minute, and tells
// the control plane which, through the spool.
func (c *Collector) sweepLoop(ctx context.Context) {
	if c.opts.Originals == nil {
		return
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		evicted, err := c.opts.Originals.Sweep(time.Now())
		if err != nil {
			c.opts.Log.Warn("evict old originals", "err", err)
		}
		if err := c.Evicted(evicted); err != nil {
			c.opts.Log.Warn("tell the control plane of evicted originals", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Evicted tells the control plane, through the spool, that the runner no
// longer keeps these originals.
func (c *Collector) Evicted(evicted []originals.Evicted) error {
	if len(evicted) == 0 {
		return nil
	}
	now := time.Now().UnixMilli()
	recs := make([]api.TelemetryRecord, 0, len(evicted))
	for _, e := range evicted {
		if e.Exchange == "" {
			c.opts.Log.Warn("a damaged original was removed", "environment", e.Environment)
			continue
		}
		raw, _ := json.Marshal(evictedEvent(e))
		recs = append(recs, api.TelemetryRecord{Environment: e.Environment, App: e.App, Instance: runnerKey, Received: now, Event: raw})
	}
	return c.opts.Spool.Append(runnerKey, Cursor{}, recs)
}

// ForgetApp removes the originals of app in env, which was deleted, and
// tells the control plane they are gone.
func (c *Collector) ForgetApp(env, app string) error {
	if c.opts.Originals == nil {
		return nil
	}
	evicted, err := c.opts.Originals.DeleteApp(env, app)
	if terr := c.Evicted(evicted); err == nil {
		err = terr
	}
	return err
}

// runnerKey is the spool's key for what the runner itself says.
const runnerKey = "runner"

func (c *Collector) forwardLoop(ctx context.Context) {
	retry := backoff.New(500*time.Millisecond, 30*time.Second)
	var failing string
	for ctx.Err() == nil {
		recs, agentDropped, runnerDropped, added, err := c.opts.Spool.Pending(batchRecords, batchBytes)
		if err == nil && len(recs) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-added:
			case <-time.After(30 * time.Second): // drop totals go too
			}
			continue
		}
		if err == nil {
			err = c.send(ctx, api.TelemetryBatch{Records: recs, AgentDropped: agentDropped, RunnerDropped: runnerDropped})
		}
		if err == nil {
			if failing != "" {
				c.opts.Log.Info("telemetry reaches the control plane again")
			}
			failing = ""
			retry.Reset()
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if err.Error() != failing {
			c.opts.Log.Warn("telemetry kept on disk: cannot forward it", "err", err)
			failing = err.Error()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry.Next()):
		}
	}
}

// send posts one batch and forgets it once the control plane has it. A
// batch the control plane refuses as malformed can never pass: it is
// dropped, counted and said, so the rest flows.
func (c *Collector) send(ctx context.Context, b api.TelemetryBatch) error {
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	if err := json.NewEncoder(zw).Encode(b); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://cp"+api.RunnerTelemetryPath, &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	last := b.Records[len(b.Records)-1].Seq
	resp, err := c.opts.ControlPlane.Do(req)
	if err != nil {
		return fmt.Errorf("forward telemetry: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, httpjson.MaxWire))
	if err != nil {
		return fmt.Errorf("forward telemetry: read the answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusBadRequest:
		c.opts.Log.Error("the control plane refused a telemetry batch: dropped", "records", len(b.Records), "first", b.Records[0].Seq, "err", httpjson.ErrorText(raw))
		return c.opts.Spool.Drop(last)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("forward telemetry: %s: %s", resp.Status, httpjson.ErrorText(raw))
	}
	// The answer is an api.TelemetryAck; that it came is what counts.
	return c.opts.Spool.Ack(last)
}
