package apptest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/camelapps"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// ReplayAddr is where the replay flow's downstream service listens: an
// address of this host the test adds to its loopback interface, which apps
// reach through their gateway, as Egress's targets.
const ReplayAddr = "198.18.123.3"

// ReplayCards are the card number each delivery's body carries (test/apps
// DeliveryRoutes): the agent redacts it in what it sends, the original the
// runner keeps has it, encrypted.
var ReplayCards = []string{"5500 0000 0000 0004", "5500000000000004"}

// ReplayDirs are where the originals' bytes must never be in clear.
type ReplayDirs struct {
	// Originals is the runner's store of originals: there, encrypted.
	Originals string
	// Elsewhere are what the runner sent and the control plane keeps
	// (the runner's spool, the control plane's data dir, the logs).
	Elsewhere []string
}

// Replay runs the user's way through replay, with the app a deployed to
// dev as "deliveries": its deliveries to a downstream HTTP service the
// test starts fail while it is down; once it is up, each is replayed
// through the API and arrives once, as it was; the replays are traced and
// linked both ways; a delivery whose mapping fails is replayed with an
// edited body by an admin, refused to an operator, both audited. restart,
// if not nil, restarts the runner half-way. The original's card number is
// nowhere in clear but in the app and at the downstream.
func Replay(t *testing.T, r Runner, dirs ReplayDirs, a camelapps.App, restart func()) {
	t.Helper()
	began := time.Now()
	cp := r.CP
	ds := NewDownstream(t)
	env := Base + "/environments/dev"
	var dev struct{ Env map[string]string }
	cp.Must(t, http.StatusOK, "GET", env+"/config", nil, &dev)
	cfg := maps.Clone(dev.Env)
	if cfg == nil {
		cfg = map[string]string{}
	}
	cfg["DOWNSTREAM_URL"] = ds.URL()
	cfg["DELIVER_COUNT"] = "6"
	cp.Must(t, http.StatusOK, "PUT", env+"/config", map[string]any{"env": cfg}, nil)
	cp.Must(t, http.StatusOK, "PUT", env+"/egress", map[string]any{"allow": []map[string]any{{"cidr": ReplayAddr + "/32", "ports": []int{ds.Port}}}}, nil)
	t.Cleanup(func() {
		// As it was for the apps deployed after, and as Egress leaves it.
		cp.Call("PUT", env+"/config", map[string]any{"env": dev.Env}, nil)
		cp.Call("PUT", env+"/egress", map[string]any{"allow": []any{}}, nil)
	})
	var operator, admin struct{ Token string }
	cp.Must(t, http.StatusCreated, "POST", Base+"/api-tokens", map[string]string{"role": "operator"}, &operator)
	cp.Must(t, http.StatusCreated, "POST", Base+"/api-tokens", map[string]string{"role": "admin"}, &admin)

	DeployCamel(t, r, a, "dev", "deliveries")
	app := env + "/apps/deliveries"
	failed := map[string]string{} // Delivery-Id -> the failed exchange
	testutil.Eventually(t, poll, 3*time.Minute, "six failed deliveries, each with its original kept on the runner", func() error {
		var page struct{ Exchanges []Summary }
		if _, err := cp.Call("GET", app+"/exchanges?route=deliver&status=failed&limit=40", nil, &page); err != nil {
			return err
		}
		for _, x := range page.Exchanges {
			var d Detail
			if _, err := cp.Call("GET", app+"/exchanges/"+url.PathEscape(x.ID), nil, &d); err != nil {
				return err
			}
			if id := d.Headers["Delivery-Id"]; id != "" {
				failed[id] = x.ID
			}
		}
		if len(failed) < 6 {
			return fmt.Errorf("%d failed deliveries traced", len(failed))
		}
		for id, x := range failed {
			var of replaysOf
			if _, err := cp.Call("GET", app+"/exchanges/"+url.PathEscape(x)+"/replays", nil, &of); err != nil {
				return err
			}
			if of.Original == nil || of.Original.Until.Before(time.Now()) {
				return fmt.Errorf("delivery %s (exchange %s): the runner's original is not known kept: %+v", id, x, of.Original)
			}
		}
		return nil
	})
	// What the control plane shows is redacted; the original is on the
	// runner's disk only encrypted, and crossed no wire.
	var d Detail
	cp.Must(t, http.StatusOK, "GET", app+"/exchanges/"+url.PathEscape(failed["d-1"]), nil, &d)
	if !strings.HasPrefix(d.Body, "delivery 1 qty=1 card ") || containsAny(d.Body, ReplayCards) {
		t.Errorf("the trace's body %q: want the delivery with its card number redacted", d.Body)
	}
	for _, dir := range append([]string{dirs.Originals}, dirs.Elsewhere...) {
		for _, s := range ReplayCards {
			if f := grepDir(t, dir, s); f != "" {
				t.Errorf("%s holds %q in clear", f, s)
			}
		}
	}
	if f := grepDir(t, dirs.Originals, "delivery 1"); f != "" {
		t.Errorf("%s holds a body in clear", f)
	}

	ds.Up(t)
	replay := func(token, key, exchange string, body any) (int, replayAnswer) {
		t.Helper()
		var h http.Header
		if key != "" {
			h = http.Header{"Idempotency-Key": {key}}
		}
		var out replayAnswer
		code, err := cp.CallAs(token, h, "POST", app+"/exchanges/"+url.PathEscape(exchange)+"/replay", body, &out)
		if err != nil {
			t.Fatalf("replay %s: %v", exchange, err)
		}
		return code, out
	}
	replays := map[string]replayAnswer{}
	var queryable []time.Duration // from a replay's request to its exchange queryable
	// d-5 re-enters at the node it failed at (post, a to): the message as
	// that node sent it, mapped, to its endpoint; the others at the route's start.
	atNode := map[string]any{"at": "node"}
	for i, id := range []string{"d-1", "d-2", "d-4", "d-5"} {
		if i == 2 && restart != nil {
			restart()
		}
		var body any
		if id == "d-5" {
			body = atNode
		}
		var rep replayAnswer
		var asked time.Time
		// After a restart the runner is back within the minute; until then nothing is sent.
		testutil.Eventually(t, poll, 2*time.Minute, "replay of "+id, func() error {
			asked = time.Now()
			code, out := replay(operator.Token, "replay-"+id, failed[id], body)
			if code == http.StatusServiceUnavailable {
				return fmt.Errorf("%d %s", code, out.Error)
			}
			if code != http.StatusOK || out.Status != "completed" || out.Replay == "" || out.Exchange != failed[id] {
				t.Fatalf("replay of %s: %d %+v", id, code, out)
			}
			rep = out
			return nil
		})
		replays[id] = rep
		testutil.Eventually(t, 20*time.Millisecond, time.Minute, "replay of "+id+" queryable", func() error {
			code, err := cp.Call("GET", app+"/exchanges/"+url.PathEscape(rep.Replay), nil, nil)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("%d", code)
			}
			return err
		})
		queryable = append(queryable, time.Since(asked))
	}
	t.Logf("from a replay's request to its exchange queryable: %v", queryable)
	for _, id := range []string{"d-1", "d-2", "d-4", "d-5"} {
		n := strings.TrimPrefix(id, "d-")
		got := ds.Received(id)
		if len(got) != 1 || got[0].Body != "delivery "+n+" qty="+n+" card "+ReplayCards[0] || got[0].Quantity != n {
			t.Errorf("the downstream got %s %d times: %+v, want once, as it first was", id, len(got), got)
		}
	}
	// The same key runs nothing; a second replay of what completed needs force.
	if code, out := replay(operator.Token, "replay-d-1", failed["d-1"], nil); code != http.StatusOK || out.ID != replays["d-1"].ID {
		t.Errorf("the same Idempotency-Key again: %d %+v, want the first replay %s", code, out, replays["d-1"].ID)
	}
	if code, out := replay(operator.Token, "", failed["d-1"], nil); code != http.StatusConflict || !strings.Contains(out.Error, "force") {
		t.Errorf("a completed replay again: %d %+v, want 409 saying force", code, out)
	}
	if got := ds.Received("d-1"); len(got) != 1 {
		t.Errorf("the downstream got d-1 %d times after the refused repeats", len(got))
	}
	// Linked both ways; the one at the node ran that node (and the route
	// it calls) alone.
	testutil.Eventually(t, poll, time.Minute, "the replays traced", func() error {
		for id, rep := range replays {
			var x struct {
				Status, ReplayOf, Route, From string
				Nodes                         []struct{ ID, Route string }
			}
			if code, err := cp.Call("GET", app+"/exchanges/"+url.PathEscape(rep.Replay), nil, &x); err != nil || code != http.StatusOK {
				return fmt.Errorf("replay of %s (exchange %s): %d %v", id, rep.Replay, code, err)
			}
			if x.Status != "completed" || x.ReplayOf != failed[id] {
				t.Fatalf("replay of %s traced as %+v, want completed, replaying %s", id, x, failed[id])
			}
			if id == "d-5" && (x.Route != "deliver" || !strings.Contains(x.From, "post-delivery") || len(x.Nodes) == 0 || x.Nodes[0].ID != "post" ||
				slices.ContainsFunc(x.Nodes, func(n struct{ ID, Route string }) bool { return n.ID == "map-delivery" })) {
				t.Errorf("the replay at the node traced as %+v, want post and what it calls, in deliver, from its endpoint", x)
			}
		}
		return nil
	})
	var of5 replaysOf
	cp.Must(t, http.StatusOK, "GET", app+"/exchanges/"+url.PathEscape(failed["d-5"])+"/replays", nil, &of5)
	if of5.Original == nil || of5.Original.FailedAt == nil || of5.Original.FailedAt.Node != "post" || len(of5.Replays) != 1 ||
		of5.Replays[0].At != "node" || of5.Replays[0].Node != "post" {
		t.Errorf("d-5's original and replays: %+v %+v", of5.Original, of5.Replays)
	}
	var of replaysOf
	cp.Must(t, http.StatusOK, "GET", app+"/exchanges/"+url.PathEscape(failed["d-2"])+"/replays", nil, &of)
	if len(of.Replays) != 1 || of.Replays[0].Replay != replays["d-2"].Replay || of.Replays[0].Role != "operator" {
		t.Errorf("d-2's replays: %+v", of.Replays)
	}

	// A mapping that fails on its input: it failed at no node that sends
	// to an endpoint; as stored it fails again; edited, by an admin alone.
	if code, out := replay(operator.Token, "", failed["d-3"], atNode); code != http.StatusConflict || !strings.Contains(out.Error, "route's start") {
		t.Errorf("d-3 at a node: %d %+v, want 409: it failed at its mapping", code, out)
	}
	if code, out := replay(operator.Token, "", failed["d-3"], nil); code != http.StatusOK || out.Status != "failed" || !strings.Contains(out.Error, "NumberFormatException") {
		t.Errorf("d-3 as stored: %d %+v, want it run and failed on its mapping", code, out)
	}
	fixed := map[string]any{"body": "delivery 3 qty=3 card " + ReplayCards[0], "headers": map[string]string{"Delivery-Id": "d-3"}}
	if code, out := replay(operator.Token, "", failed["d-3"], fixed); code != http.StatusForbidden || !strings.Contains(out.Error, "admin") {
		t.Errorf("an operator's edit: %d %+v, want 403 naming the admin role", code, out)
	}
	code, edited := replay(admin.Token, "", failed["d-3"], fixed)
	if code != http.StatusOK || edited.Status != "completed" || !edited.Edited {
		t.Errorf("an admin's edit: %d %+v", code, edited)
	}
	if got := ds.Received("d-3"); len(got) != 1 || got[0].Quantity != "3" {
		t.Errorf("the downstream got d-3 %+v, want the edit once", got)
	}
	// Nothing to replay: nothing sent.
	if code, out := replay(operator.Token, "", "ID-never-kept", nil); code != http.StatusNotFound || !strings.Contains(out.Error, "no original") {
		t.Errorf("an exchange never kept: %d %+v", code, out)
	}
	if code, _ := cp.CallAs(operator.Token, nil, "POST", env+"/apps/gone/exchanges/"+url.PathEscape(failed["d-6"])+"/replay", nil, nil); code != http.StatusNotFound {
		t.Errorf("an app never deployed: %d, want 404", code)
	}

	var audit []struct {
		Action, Path, Role string
		Status             int
		Detail             map[string]string
	}
	cp.Must(t, http.StatusOK, "GET", Base+"/audit?limit=1000", nil, &audit)
	d3 := slices.DeleteFunc(slices.Clone(audit), func(r struct {
		Action, Path, Role string
		Status             int
		Detail             map[string]string
	}) bool {
		return !strings.HasSuffix(r.Action, "/exchanges/{id}/replay") || r.Detail["exchange"] != failed["d-3"]
	})
	var refusedEdit, adminEdit bool
	for _, rec := range d3 {
		refusedEdit = refusedEdit || rec.Status == http.StatusForbidden && rec.Role == "operator"
		adminEdit = adminEdit || rec.Status == http.StatusOK && rec.Role == "admin" && rec.Detail["edited"] == "true" && rec.Detail["outcome"] == "completed"
	}
	if !refusedEdit || !adminEdit {
		t.Errorf("the audit log's replays of d-3: %+v, want the operator's refused edit and the admin's", d3)
	}
	t.Logf("replay: 6 deliveries failed, 4 replayed as they were and 1 edited, in %v", time.Since(began).Round(time.Second))
	bulkReplay(t, r, ds, a, cfg)
	deleted(t, r, ds, dirs, operator.Token, failed["d-6"])
}

// deleted: the deliveries app deleted by an operator, its instances are
// gone and its originals with them; a replay of its failed exchange x is
// refused with a clear error, and nothing reaches the downstream.
func deleted(t *testing.T, r Runner, ds *Downstream, dirs ReplayDirs, operator, x string) {
	t.Helper()
	cp := r.CP
	app := Base + "/environments/dev/apps/deliveries"
	file := filepath.Join(dirs.Originals, "dev", "*-"+originalID("deliveries", x))
	if m, _ := filepath.Glob(file); len(m) != 1 {
		t.Fatalf("before the delete, the runner's originals of exchange %s: %v", x, m)
	}
	if code, err := cp.CallAs(operator, nil, "DELETE", app, nil, nil); err != nil || code != http.StatusNoContent {
		t.Fatalf("delete the app: %d %v", code, err)
	}
	// The delete answers once the instances are gone.
	if ins := r.Instances(t, "dev", "deliveries"); len(ins) > 0 {
		t.Errorf("instances of the deleted app: %v", ins)
	}
	if m, _ := filepath.Glob(file); len(m) != 0 {
		t.Errorf("the deleted app's original is still on the runner: %v", m)
	}
	cp.Must(t, http.StatusNotFound, "GET", app+"/status", nil, nil)
	var out replayAnswer
	code, err := cp.CallAs(operator, nil, "POST", app+"/exchanges/"+url.PathEscape(x)+"/replay", nil, &out)
	if err != nil || code != http.StatusGone || !strings.Contains(out.Error, "deleted") || !strings.Contains(out.Error, "nothing was sent") {
		t.Errorf("a replay of the deleted app's exchange: %d %+v %v, want 410 saying it was deleted", code, out, err)
	}
	if got := ds.Received("d-6"); len(got) != 0 {
		t.Errorf("the downstream got d-6 after the app was deleted: %+v", got)
	}
	// The runner said so; the app's traces stay until their retention.
	testutil.Eventually(t, poll, time.Minute, "the deleted app's original known gone", func() error {
		var of replaysOf
		if _, err := cp.Call("GET", app+"/exchanges/"+url.PathEscape(x)+"/replays", nil, &of); err != nil {
			return err
		}
		if of.Original == nil || of.Original.Evicted != "deleted" {
			return fmt.Errorf("%+v", of.Original)
		}
		return nil
	})
	cp.Must(t, http.StatusOK, "GET", app+"/exchanges/"+url.PathEscape(x), nil, nil)
}

// originalID is how the runner's store names app's original of exchange
// (appliance/originals): written out apart, so a change there shows here.
func originalID(app, exchange string) string {
	h := sha256.Sum256([]byte(app + "\x00" + exchange))
	return hex.EncodeToString(h[:20])
}

// bulkReplay: 1000 deliveries fail while the downstream is down; a bulk
// replay of them, cancelled in the middle and resumed, delivers each once.
func bulkReplay(t *testing.T, r Runner, ds *Downstream, a camelapps.App, cfg map[string]string) {
	t.Helper()
	const total = 1000
	cp := r.CP
	env := Base + "/environments/dev"
	ds.Down()
	cfg = maps.Clone(cfg)
	cfg["DELIVER_COUNT"], cfg["DELIVER_PERIOD"], cfg["DELIVER_BAD_EVERY"], cfg["DELIVER_ID_PREFIX"] = strconv.Itoa(total), "5", "0", "b-"
	cp.Must(t, http.StatusOK, "PUT", env+"/config", map[string]any{"env": cfg}, nil)
	DeployCamel(t, r, a, "dev", "bulk")
	app := env + "/apps/bulk"
	var newest, oldest string
	testutil.Eventually(t, poll, 3*time.Minute, fmt.Sprintf("%d failed deliveries", total), func() error {
		n, cursor := 0, ""
		for {
			var page struct {
				Exchanges []Summary
				Next      string
			}
			if _, err := cp.Call("GET", app+"/exchanges?route=deliver&status=failed&limit=500&cursor="+cursor, nil, &page); err != nil {
				return err
			}
			if n == 0 && len(page.Exchanges) > 0 {
				newest = page.Exchanges[0].ID
			}
			if len(page.Exchanges) > 0 {
				oldest = page.Exchanges[len(page.Exchanges)-1].ID
			}
			n += len(page.Exchanges)
			if cursor = page.Next; cursor == "" {
				break
			}
		}
		if n != total {
			return fmt.Errorf("%d of %d", n, total)
		}
		for _, x := range []string{newest, oldest} {
			var of replaysOf
			if _, err := cp.Call("GET", app+"/exchanges/"+url.PathEscape(x)+"/replays", nil, &of); err != nil || of.Original == nil {
				return fmt.Errorf("exchange %s: its original not known kept yet (%v)", x, err)
			}
		}
		return nil
	})
	ds.Up(t)
	var b struct {
		ID, State                          string
		Completed, Failed, Skipped, Errors int
		LastError                          string
	}
	began := time.Now()
	cp.Must(t, http.StatusAccepted, "POST", app+"/bulk-replays", map[string]any{"route": "deliver", "rate": 50}, &b)
	bulk := app + "/bulk-replays/" + b.ID
	testutil.Eventually(t, poll, 2*time.Minute, "a third of the bulk replayed", func() error {
		if n, _ := ds.Count("b-"); n < total/3 {
			return fmt.Errorf("%d delivered", n)
		}
		return nil
	})
	cp.Must(t, http.StatusOK, "POST", bulk+"/cancel", nil, &b)
	// What was being replayed when it was cancelled ends; nothing after it starts.
	time.Sleep(2 * time.Second)
	cancelled, _ := ds.Count("b-")
	time.Sleep(2 * time.Second)
	cp.Must(t, http.StatusOK, "GET", bulk, nil, &b)
	if n, _ := ds.Count("b-"); n != cancelled || b.State != "cancelled" || b.Completed != n {
		t.Fatalf("cancelled at %d delivered: %d delivered 2 s later, bulk %+v", cancelled, n, b)
	}
	cp.Must(t, http.StatusOK, "POST", bulk+"/resume", nil, &b)
	testutil.Eventually(t, poll, 3*time.Minute, "the bulk replay done", func() error {
		cp.Must(t, http.StatusOK, "GET", bulk, nil, &b)
		if b.State != "done" {
			return fmt.Errorf("%+v", b)
		}
		return nil
	})
	took := time.Since(began)
	n, twice := ds.Count("b-")
	if n != total || len(twice) > 0 || b.Completed != total || b.Failed+b.Skipped+b.Errors != 0 {
		var missing []string
		for i := 1; i <= total && len(missing) < 10; i++ {
			if id := "b-" + strconv.Itoa(i); len(ds.Received(id)) == 0 {
				missing = append(missing, id)
			}
		}
		t.Errorf("after the bulk replay: %d of %d delivered (not: %v), %d more than once (%v); bulk %+v", n, total, missing, len(twice), twice, b)
	}
	t.Logf("bulk replay of %d at 50 a second, cancelled at %d and resumed: %v (%.0f a second, with the pause)", total, cancelled, took.Round(time.Second), float64(total)/took.Seconds())
}

// replayAnswer is a replay's record, or an error.
type replayAnswer struct {
	ID, Exchange, Replay, Status, Error, Role, At, Node string
	Edited                                              bool
}

// replaysOf is what the control plane knows of an original.
type replaysOf struct {
	Original *struct {
		Until    time.Time
		Evicted  string
		FailedAt *struct{ Node, Route string }
	}
	Replays []replayAnswer
}

func containsAny(s string, subs []string) bool {
	return slices.ContainsFunc(subs, func(x string) bool { return strings.Contains(s, x) })
}

// Downstream is the service the deliveries post to (test/apps
// DeliveryRoutes), at ReplayAddr: down (nothing listens on its Port)
// until Up.
type Downstream struct {
	Port int
	mu   sync.Mutex
	got  map[string][]Delivery
	srv  *http.Server
}

// Delivery is what the downstream took of one delivery.
type Delivery struct{ Body, Quantity string }

// NewDownstream picks a free port at ReplayAddr, added to this host's
// loopback interface.
func NewDownstream(t *testing.T) *Downstream {
	t.Helper()
	onLoopback(t, ReplayAddr)
	l, err := net.Listen("tcp", net.JoinHostPort(ReplayAddr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return &Downstream{Port: port, got: map[string][]Delivery{}}
}

// Up serves on the port until the test ends.
func (d *Downstream) Up(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ReplayAddr, strconv.Itoa(d.Port)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		d.mu.Lock()
		id := r.Header.Get("Delivery-Id")
		d.got[id] = append(d.got[id], Delivery{Body: string(b), Quantity: r.Header.Get("Quantity")})
		d.mu.Unlock()
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	d.mu.Lock()
	d.srv = srv
	d.mu.Unlock()
}

// Down stops serving: calls to it are refused.
func (d *Downstream) Down() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.srv.Close()
}

// Count is how many deliveries it took of those whose id starts with prefix.
func (d *Downstream) Count(prefix string) (n int, twice []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, got := range d.got {
		if strings.HasPrefix(id, prefix) {
			n++
			if len(got) > 1 {
				twice = append(twice, id)
			}
		}
	}
	return n, twice
}

// Received is what it took of the delivery id, in order.
func (d *Downstream) Received(id string) []Delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.got[id])
}

// URL is where the deliveries post to.
func (d *Downstream) URL() string {
	return fmt.Sprintf("http://%s/deliveries", net.JoinHostPort(ReplayAddr, strconv.Itoa(d.Port)))
}
