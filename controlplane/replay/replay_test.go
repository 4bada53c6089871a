package replay

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/runners"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/controlplane/telemetry"
	"github.com/cameleer/cameleer/internal/httpjson"
)

func status(err error) int {
	var se *httpjson.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// TestAdmit: what may be replayed, and what not, with the reason said.
func TestAdmit(t *testing.T) {
	now := time.Now()
	kept := store.Original{Until: now.Add(time.Hour)}
	done := store.Replay{ID: "r1", Status: api.StatusCompleted, Replay: "X-2"}
	for _, c := range []struct {
		what   string
		req    Request
		o      store.Original
		found  bool
		prior  []store.Replay
		status int
		says   string
	}{
		{what: "kept, never replayed", o: kept, found: true},
		{what: "nothing known yet (its note on the way): the runner decides", found: false},
		{what: "replayed and failed: again", o: kept, found: true, prior: []store.Replay{{Status: api.StatusFailed}, {Status: store.ReplayError}}},
		{what: "evicted", o: store.Original{Evicted: api.EvictedBytes, EvictedAt: now}, found: true, status: http.StatusGone, says: "evicted for bytes"},
		{what: "past until", o: store.Original{Until: now.Add(-time.Minute)}, found: true, status: http.StatusGone, says: "kept until"},
		{what: "replayed successfully", o: kept, found: true, prior: []store.Replay{done}, status: http.StatusConflict, says: "send force"},
		{what: "replayed successfully, forced", req: Request{Force: true}, o: kept, found: true, prior: []store.Replay{done}},
		{what: "at the node it failed at", req: Request{At: api.ReplayAtNode}, o: store.Original{Until: kept.Until, FailedAt: &api.NodeRef{Node: "post", Route: "r"}}, found: true},
		{what: "at a node, failed at none", req: Request{At: api.ReplayAtNode}, o: kept, found: true, status: http.StatusConflict, says: "route's start"},
		{what: "deleted with its app", o: store.Original{Evicted: api.EvictedDeleted, EvictedAt: now}, found: true, status: http.StatusGone, says: "its app was deleted"},
		{what: "one running, even forced", req: Request{Force: true}, o: kept, found: true, prior: []store.Replay{{ID: "r9", Status: store.ReplayRunning}}, status: http.StatusConflict, says: "r9 of exchange X-1 is running"},
	} {
		c.req.Exchange = "X-1"
		err := admit(c.req, c.o, c.found, c.prior, now)
		if status(err) != c.status || c.status != 0 && !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want %d saying %q", c.what, err, c.status, c.says)
		}
	}
}

func newService(t *testing.T) (*Service, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(Options{Store: st, Runners: runners.New(runners.Options{Store: st})})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

// TestRefusedBeforeAnythingIsSent: a replay the control plane refuses
// records nothing and sends nothing; notes of the runner show in Of.
func TestRefusedBeforeAnythingIsSent(t *testing.T) {
	s, st := newService(t)
	ctx := context.Background()
	req := Request{Tenant: "acme", Environment: "dev", App: "orders", Exchange: "X-1", Key: "k1", Token: "t", Role: "operator"}
	if _, _, err := s.Replay(ctx, req); status(err) != http.StatusNotFound || !strings.Contains(err.Error(), "no app orders") {
		t.Fatalf("an app never deployed: %v", err)
	}
	err := st.CreateDeployment(store.Deployment{ID: "d1", Tenant: "acme", Environment: "dev", App: "orders", Runner: "edge", Phase: api.PhaseValidating}, 5,
		func(a *store.App, _ bool) error { a.Runner, a.Deployment = "edge", "d1"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	notes := []telemetry.OriginalNote{
		{Environment: "dev", App: "orders", Received: now, Kept: &api.Kept{Exchange: "X-1", Route: "orders", Start: now.UnixMicro(), Until: now.Add(time.Hour).UnixMilli()}},
		{Environment: "dev", App: "orders", Received: now, Kept: &api.Kept{Exchange: "X-2", Route: "orders", Until: now.Add(time.Hour).UnixMilli()}},
		{Environment: "dev", App: "orders", Received: now, Evicted: &api.Evicted{Exchange: "X-2", Reason: api.EvictedAge}},
	}
	// Twice: a batch resent after a lost answer changes nothing.
	for range 2 {
		if err := s.Note(ctx, "acme", "edge", notes); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Replay(ctx, req); status(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "not connected") {
		t.Fatalf("runner away: %v", err)
	}
	req.Exchange = "X-2"
	if _, _, err := s.Replay(ctx, req); status(err) != http.StatusGone {
		t.Fatalf("evicted, runner away: %v", err)
	}
	of, err := s.Of("acme", "dev", "orders", "X-1")
	if err != nil || of.Original == nil || of.Original.Route != "orders" || of.Original.Runner != "edge" || of.Original.Evicted != "" ||
		of.Original.Until.Before(now.Add(59*time.Minute)) || len(of.Replays) != 0 {
		t.Fatalf("X-1: %+v %v", of, err)
	}
	if of, _ := s.Of("acme", "dev", "orders", "X-2"); of.Original == nil || of.Original.Evicted != api.EvictedAge {
		t.Fatalf("X-2: %+v", of.Original)
	}
	if of, _ := s.Of("globex", "dev", "orders", "X-1"); of.Original != nil || len(of.Replays) != 0 {
		t.Fatalf("another tenant sees %+v", of)
	}
	if _, _, err := s.Replay(ctx, Request{Tenant: "acme", Environment: "dev", App: "orders", Exchange: "X-1", Key: strings.Repeat("k", 300)}); status(err) != http.StatusBadRequest {
		t.Fatalf("a long key: %v", err)
	}
	// The app deleted: its runner removed the originals and says so.
	if err := st.DeleteApp("acme", "dev", "orders"); err != nil {
		t.Fatal(err)
	}
	req.Exchange = "X-1"
	if _, _, err := s.Replay(ctx, req); status(err) != http.StatusGone || !strings.Contains(err.Error(), "was deleted") {
		t.Fatalf("an exchange of a deleted app: %v", err)
	}
	s.Note(ctx, "acme", "edge", []telemetry.OriginalNote{{Environment: "dev", App: "orders", Received: now, Evicted: &api.Evicted{Exchange: "X-1", Reason: api.EvictedDeleted}}})
	st.CreateDeployment(store.Deployment{ID: "d2", Tenant: "acme", Environment: "dev", App: "orders", Runner: "edge", Phase: api.PhaseValidating}, 5,
		func(a *store.App, _ bool) error { a.Runner, a.Deployment = "edge", "d2"; return nil })
	if _, _, err := s.Replay(ctx, req); status(err) != http.StatusGone || !strings.Contains(err.Error(), "went when its app was deleted") {
		t.Fatalf("an exchange of an app deleted, then deployed again: %v", err)
	}
}

// TestIdempotencyAndRestart: the same key answers the replay it made; a
// replay left running by a control plane that stopped is ended as an error.
func TestIdempotencyAndRestart(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	allow := func(store.Original, bool, []store.Replay) error { return nil }
	r1, again, err := st.BeginReplay(store.Replay{ID: "r1", Tenant: "acme", Environment: "dev", App: "orders", Exchange: "X-1", Key: "k"}, allow)
	if err != nil || again || r1.Status != store.ReplayRunning {
		t.Fatal(r1, again, err)
	}
	r2, again, err := st.BeginReplay(store.Replay{ID: "r2", Tenant: "acme", Environment: "dev", App: "orders", Exchange: "X-1", Key: "k"}, allow)
	if err != nil || !again || r2.ID != "r1" {
		t.Fatalf("the same key again: %+v %v %v", r2, again, err)
	}
	// Another tenant's key is its own.
	if r, again, err := st.BeginReplay(store.Replay{ID: "r3", Tenant: "globex", Environment: "dev", App: "orders", Exchange: "X-1", Key: "k"}, allow); err != nil || again || r.ID != "r3" {
		t.Fatalf("another tenant's key: %+v %v %v", r, again, err)
	}
	st.Close()
	st, err = store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := New(Options{Store: st, Runners: runners.New(runners.Options{Store: st})}); err != nil {
		t.Fatal(err)
	}
	rs, err := st.Replays("acme", "dev", "orders", "X-1")
	if err != nil || len(rs) != 1 || rs[0].Status != store.ReplayError || !strings.Contains(rs[0].Error, "control plane stopped") || rs[0].Finished.IsZero() {
		t.Fatalf("after a restart: %+v %v", rs, err)
	}
}

// TestBulkStates: what a bulk replay takes, one at a time per app, and how
// it pauses, resumes and cancels (its walk, which needs a runner, is in
// the end-to-end tests).
func TestBulkStates(t *testing.T) {
	s, st := newService(t)
	req := BulkRequest{Tenant: "acme", Environment: "dev", App: "orders", Route: "orders", Token: "t", Role: "operator"}
	if _, err := s.StartBulk(req); status(err) != http.StatusNotFound {
		t.Fatalf("an app never deployed: %v", err)
	}
	err := st.CreateDeployment(store.Deployment{ID: "d1", Tenant: "acme", Environment: "dev", App: "orders", Runner: "edge", Phase: api.PhaseValidating}, 5,
		func(a *store.App, _ bool) error { a.Runner, a.Deployment = "edge", "d1"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []BulkRequest{
		{Route: ""}, {Route: "orders", Status: "completed"}, {Route: "orders", Rate: 1000},
		{Route: "orders", From: time.Now(), To: time.Now().Add(-time.Hour)},
	} {
		bad.Tenant, bad.Environment, bad.App = "acme", "dev", "orders"
		if _, err := s.StartBulk(bad); status(err) != http.StatusBadRequest {
			t.Errorf("%+v: %v, want 400", bad, err)
		}
	}
	b, err := s.StartBulk(req)
	if err != nil || b.State != store.BulkRunning || b.Rate != DefaultRate || b.Status != api.StatusFailed || !b.To.IsZero() || time.Since(b.From) < 24*time.Hour {
		t.Fatalf("started %+v, %v", b, err)
	}
	if _, err := s.StartBulk(req); status(err) != http.StatusConflict {
		t.Fatalf("a second of the same app: %v", err)
	}
	for _, c := range []struct {
		op, want string
		status   int
	}{
		{"resume", "", http.StatusConflict}, {"pause", store.BulkPaused, 0}, {"pause", "", http.StatusConflict},
		{"resume", store.BulkRunning, 0}, {"cancel", store.BulkCancelled, 0}, {"cancel", "", http.StatusConflict},
		{"resume", store.BulkRunning, 0}, {"stop", "", http.StatusNotFound},
	} {
		got, err := s.Control("acme", "dev", "orders", b.ID, c.op)
		if status(err) != c.status || c.status == 0 && got.State != c.want {
			t.Errorf("%s: %+v %v, want %q or %d", c.op, got.State, err, c.want, c.status)
		}
	}
	if _, err := s.Control("acme", "dev", "billing", b.ID, "pause"); status(err) != http.StatusNotFound {
		t.Errorf("through another app: %v", err)
	}
	if _, err := s.Bulk("globex", "dev", "orders", b.ID); status(err) != http.StatusNotFound {
		t.Errorf("another tenant's: %v", err)
	}
	if bs, err := s.Bulks("acme", "dev", "orders"); err != nil || len(bs) != 1 || bs[0].ID != b.ID {
		t.Errorf("the app's bulks: %+v %v", bs, err)
	}
}

// TestRedeployedSince: a replay of an app deployed again since its
// original ran says which deployment and image it runs on.
func TestRedeployedSince(t *testing.T) {
	s, st := newService(t)
	ran := time.Now().Add(-time.Hour)
	d := store.Deployment{ID: "d2", Tenant: "acme", Environment: "dev", App: "orders", Runner: "edge", Image: "reg/acme/orders@sha256:beef",
		Phase: api.PhaseRunning, Updated: time.Now()}
	app := store.App{Tenant: "acme", Environment: "dev", Name: "orders", RunningDeployment: "d2"}
	if err := st.CreateDeployment(d, 5, func(a *store.App, _ bool) error { a.Runner, a.Deployment = "edge", "d2"; return nil }); err != nil {
		t.Fatal(err)
	}
	if w := s.redeployed(app, store.Original{Start: ran.UnixMicro()}); !strings.Contains(w, "deployment d2") || !strings.Contains(w, "sha256:beef") {
		t.Errorf("an original from before the running deployment: %q", w)
	}
	if w := s.redeployed(app, store.Original{Start: time.Now().Add(time.Hour).UnixMicro()}); w != "" {
		t.Errorf("an original from after it: %q", w)
	}
	if w := s.redeployed(app, store.Original{}); w != "" {
		t.Errorf("an original of unknown start: %q", w)
	}
}
