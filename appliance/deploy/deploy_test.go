package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/egress"
	"github.com/cameleer/cameleer/appliance/orchestrator"
	"github.com/cameleer/cameleer/internal/atomicfile"
)

// controlPlane stands in for the control plane's runner routes (the real
// one is in test/node and test/docker): it serves one artifact, breaking the
// first fetches off half-way, and records the reports.
type controlPlane struct {
	jar      []byte
	breakN   atomic.Int32
	fetches  atomic.Int32
	mu       sync.Mutex
	reports  map[string][]api.DeployReport
	reported chan struct{}
}

func (c *controlPlane) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, api.ArtifactPath):
		c.fetches.Add(1)
		if c.breakN.Add(-1) >= 0 {
			// Half the bytes, then the connection goes.
			w.Header().Set("Content-Length", "1000000")
			w.Write(c.jar[:len(c.jar)/2])
			panic(http.ErrAbortHandler)
		}
		w.Write(c.jar)
	case strings.HasPrefix(r.URL.Path, api.DeployReportPath):
		var rep api.DeployReport
		if err := jsonDecode(r.Body, &rep); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		id := strings.TrimPrefix(r.URL.Path, api.DeployReportPath)
		c.reports[id] = append(c.reports[id], rep)
		c.mu.Unlock()
		select {
		case c.reported <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func (c *controlPlane) last(id string) api.DeployReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.reports[id]
	if len(rs) == 0 {
		return api.DeployReport{}
	}
	return rs[len(rs)-1]
}

// testOptions are a worker's options for a test: a control plane at cp, apps
// run on rt, egress applied nowhere.
func testOptions(t *testing.T, cp *controlPlane, rt orchestrator.Runtime) Options {
	srv := httptest.NewServer(cp)
	t.Cleanup(srv.Close)
	// Requests to http://controlplane go to the test server.
	tr := &http.Transport{Proxy: http.ProxyURL(mustURL(srv.URL))}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return Options{Tenant: "acme", Runtime: rt, ControlPlane: &http.Client{Transport: tr}, CacheDir: t.TempDir(),
		URL: func(a orchestrator.App) string { return "http://" + a.Name }, Log: log,
		Egress: &egress.Keeper{Log: log, Apply: func(context.Context, string, []orchestrator.EgressRule) error { return nil },
			Resolve: func(context.Context, string) ([]netip.Addr, error) {
				return nil, errors.New("the tests look no names up")
			}}}
}

func newWorker(t *testing.T, cp *controlPlane, rt orchestrator.Runtime) *Worker {
	return New(testOptions(t, cp, rt))
}

// A fetch broken off by a restarting control plane is tried again, and
// concurrent fetches of one artifact do not trip over each other.
func TestArtifactFetchRetriesAndCaches(t *testing.T) {
	jar := []byte(strings.Repeat("jar bytes ", 10000))
	sum := sha256.Sum256(jar)
	sha := hex.EncodeToString(sum[:])
	cp := &controlPlane{jar: jar, reports: map[string][]api.DeployReport{}}
	cp.breakN.Store(2)
	w := newWorker(t, cp, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := w.artifact(context.Background(), sha)
			if err == nil && string(b) != string(jar) {
				err = io.ErrUnexpectedEOF
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("fetch: %v", err)
		}
	}
	before := cp.fetches.Load()
	if _, err := w.artifact(context.Background(), sha); err != nil || cp.fetches.Load() != before {
		t.Errorf("a cached artifact was fetched again (%v)", err)
	}
	// The concurrent writes left the artifact, whole, and nothing else.
	ents, _ := os.ReadDir(w.opts.CacheDir)
	if len(ents) != 1 || ents[0].Name() != sha+".jar" {
		t.Errorf("cache holds %v, want only %s.jar", ents, sha)
	}
	// What a runner killed mid-write left is gone when a worker starts on
	// the cache; the artifact stays.
	f, err := os.CreateTemp(w.opts.CacheDir, atomicfile.TempPattern(sha+".jar"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	New(w.opts)
	ents, _ = os.ReadDir(w.opts.CacheDir)
	if len(ents) != 1 || ents[0].Name() != sha+".jar" {
		t.Errorf("after a restart the cache holds %v, want only %s.jar", ents, sha)
	}
}

// blockingRuntime deploys nothing until released, and records what it
// deployed, in order.
type blockingRuntime struct {
	orchestrator.Runtime
	release  chan struct{}
	mu       sync.Mutex
	deployed []string
}

func (b *blockingRuntime) Deploy(ctx context.Context, a orchestrator.App) error {
	<-b.release
	b.mu.Lock()
	b.deployed = append(b.deployed, a.Image)
	b.mu.Unlock()
	return nil
}

// Deployments of an app that come while one runs: the newest rolls out
// last, and those that waited behind a newer one do not roll out at all.
func TestNewestDeploymentWins(t *testing.T) {
	cp := &controlPlane{reports: map[string][]api.DeployReport{}, reported: make(chan struct{}, 1)}
	rt := &blockingRuntime{release: make(chan struct{})}
	w := newWorker(t, cp, rt)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ids := []string{"0001", "0002", "0003", "0004"}
	for _, id := range ids {
		if err := w.Accept(ctx, api.Deploy{ID: id, Environment: "dev", App: "orders", Image: "img-" + id}); err != nil {
			t.Fatal(err)
		}
	}
	close(rt.release)
	for {
		done := 0
		for _, id := range ids {
			if api.Done(cp.last(id).Phase) {
				done++
			}
		}
		if done == len(ids) {
			break
		}
		<-cp.reported
	}
	rt.mu.Lock()
	deployed := rt.deployed
	rt.mu.Unlock()
	if deployed[len(deployed)-1] != "img-0004" {
		t.Errorf("deployed %v: the newest did not roll out last", deployed)
	}
	if r := cp.last("0004"); r.Phase != api.PhaseRunning {
		t.Errorf("the newest deployment: %+v", r)
	}
	// An older one either ran before a newer one came or was superseded.
	for _, id := range ids[:3] {
		if r := cp.last(id); r.Phase != api.PhaseRunning && !strings.Contains(r.Reason, "superseded by deployment 000") {
			t.Errorf("deployment %s: %+v", id, r)
		}
	}
	if len(deployed) > 2 {
		t.Errorf("deployed %v: more than the one running and the newest", deployed)
	}
}

func TestRedact(t *testing.T) {
	got := redact("rolling-out: app printed password=hunter2 at start", map[string]string{"DB_PASSWORD": "hunter2", "EMPTY": ""})
	if strings.Contains(got, "hunter2") || !strings.Contains(got, "[secret DB_PASSWORD]") {
		t.Errorf("redact: %q", got)
	}
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// Finished deployments are forgotten once the control plane cannot send
// them again; the artifact cache keeps the newest artifacts only.
func TestForgetAndPrune(t *testing.T) {
	w := newWorker(t, &controlPlane{reports: map[string][]api.DeployReport{}}, nil)
	now := time.Now()
	w.jobs = map[string]*job{
		"old":     {report: api.DeployReport{Phase: api.PhaseRunning}, done: now.Add(-forgetAfter - time.Minute)},
		"recent":  {report: api.DeployReport{Phase: api.PhaseFailed}, done: now.Add(-time.Minute)},
		"ongoing": {report: api.DeployReport{Phase: api.PhaseBuilding}},
	}
	w.forget(now)
	if _, ok := w.jobs["old"]; ok || len(w.jobs) != 2 {
		t.Errorf("jobs after forget: %v", slices.Collect(maps.Keys(w.jobs)))
	}
	for i := range keepArtifacts + 5 {
		p := filepath.Join(w.opts.CacheDir, fmt.Sprintf("%02d.jar", i))
		os.WriteFile(p, nil, 0o600)
		os.Chtimes(p, now, now.Add(time.Duration(i)*time.Second))
	}
	w.pruneCache()
	left, _ := filepath.Glob(filepath.Join(w.opts.CacheDir, "*.jar"))
	if len(left) != keepArtifacts || slices.Contains(left, filepath.Join(w.opts.CacheDir, "00.jar")) || !slices.Contains(left, filepath.Join(w.opts.CacheDir, "24.jar")) {
		t.Errorf("cache after pruning: %v", left)
	}
}
