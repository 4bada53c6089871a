package deployments

import (
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/runners"
	"github.com/cameleer/cameleer/controlplane/secrets"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// service is a deployments service on a real state file, for tenant acme
// with an environment, an artifact and two runners (none connected).
func service(t *testing.T) (*Service, *store.Store) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	box, err := secrets.Open(filepath.Join(dir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	st.CreateTenant(store.Tenant{Name: "acme", Tier: "mid"})
	st.CreateEnvironment(store.Environment{Tenant: "acme", Name: "dev"}, func(store.Tenant, []store.Environment) error { return nil })
	st.AddArtifact(store.Artifact{Tenant: "acme", App: "orders", SHA256: sha}, store.ArtifactQuota{Count: 10, Bytes: 1 << 30})
	for _, id := range []string{"r1", "r2"} {
		st.CreateRunnerToken(store.RunnerToken{Hash: "t" + id, Tenant: "acme", Expires: time.Now().Add(time.Minute)}, 10, time.Now())
		if _, err := st.Redeem("t"+id, "k", time.Now(), func(tenant string, _ *store.Runner) (store.Runner, error) {
			return store.Runner{ID: id, Tenant: tenant, Name: id}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	hub := runners.New(runners.Options{Store: st, Log: log})
	return New(Options{Store: st, Runners: hub, Secrets: box, Keep: 10, Log: log}), st
}

var sha = strings.Repeat("ab", 32)

// TestOneRunnerPerApp: two deployments of one app to two runners at once:
// exactly one is accepted, the other is told where the app is.
func TestOneRunnerPerApp(t *testing.T) {
	for round := range 20 {
		s, st := service(t)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, runner := range []string{"r1", "r2"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Create(Request{Tenant: "acme", Environment: "dev", App: "orders", Artifact: sha, Runner: runner})
			}()
		}
		wg.Wait()
		accepted := 0
		for _, err := range errs {
			var se *httpjson.StatusError
			switch {
			case err == nil:
				accepted++
			case errors.As(err, &se) && se.Status == http.StatusConflict && strings.Contains(se.Msg, "is being deployed in dev on runner"):
			default:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if accepted != 1 {
			t.Fatalf("round %d: %d of two deployments to two runners accepted: %v", round, accepted, errs)
		}
		a, _ := st.App("acme", "dev", "orders")
		ds, _ := st.Deployments("acme", func(store.Deployment) bool { return true })
		if len(ds) != 1 || ds[0].Runner != a.Runner || a.Deployment != ds[0].ID {
			t.Fatalf("round %d: app %+v, deployments %+v", round, a, ds)
		}
	}
}

// TestPhases walks the state machine: an app takes what runs as what a
// promotion copies, a failed deployment changes nothing of it, a late
// report does not reopen a finished deployment, and an app that failed on
// one runner may move to another.
func TestPhases(t *testing.T) {
	s, st := service(t)
	report := func(d store.Deployment, runner string, rep api.DeployReport) error {
		return s.Report(&runners.Conn{ID: runner, Tenant: "acme"}, d.ID, rep)
	}
	app := func() store.App {
		a, err := st.App("acme", "dev", "orders")
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	v1, err := s.Create(Request{Tenant: "acme", Environment: "dev", App: "orders", Artifact: sha, Runner: "r1", Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	if a := app(); a.Phase != api.PhaseValidating || a.Replicas != 2 || a.Running != "" || !strings.Contains(a.Reason, "waiting for runner r1") {
		t.Errorf("a new app: %+v", a)
	}
	if err := report(v1, "r2", api.DeployReport{Phase: api.PhaseRunning}); err == nil {
		t.Error("another runner reported on r1's deployment")
	}
	if err := report(v1, "r1", api.DeployReport{Phase: "dancing"}); err == nil {
		t.Error("an unknown phase was taken")
	}
	report(v1, "r1", api.DeployReport{Phase: api.PhaseRunning, Image: "img1", URL: "http://orders"})
	if a := app(); a.Running != "img1" || a.RunningDeployment != v1.ID || a.URL != "http://orders" || a.Phase != api.PhaseRunning {
		t.Errorf("after v1 runs: %+v", a)
	}
	// A late report from before it ran does not reopen it.
	report(v1, "r1", api.DeployReport{Phase: api.PhaseBuilding})
	if d, _ := st.Deployment("acme", v1.ID); d.Phase != api.PhaseRunning {
		t.Errorf("a late report reopened v1: %s", d.Phase)
	}
	// It runs on r1: not deployed on r2.
	if _, err := s.Create(Request{Tenant: "acme", Environment: "dev", App: "orders", Artifact: sha, Runner: "r2"}); err == nil || !strings.Contains(err.Error(), "runs in dev on runner r1") {
		t.Errorf("a deployment to r2 of an app that runs on r1: %v", err)
	}
	v2, err := s.Create(Request{Tenant: "acme", Environment: "dev", App: "orders", Artifact: sha, Runner: "r1", Replicas: 1, Port: 9090})
	if err != nil {
		t.Fatal(err)
	}
	report(v2, "r1", api.DeployReport{Phase: api.PhaseFailed, Reason: "broken", Image: "img2"})
	if a := app(); a.Running != "img1" || a.Replicas != 2 || a.Port != api.DefaultAppPort || a.Phase != api.PhaseFailed || a.Reason != "broken" {
		t.Errorf("after v2 failed, the app keeps what runs: %+v", a)
	}
	// An app that never ran may move: a failed first deployment on r1,
	// then r2.
	st.AddArtifact(store.Artifact{Tenant: "acme", App: "billing", SHA256: sha}, store.ArtifactQuota{Count: 10, Bytes: 1 << 30})
	b1, _ := s.Create(Request{Tenant: "acme", Environment: "dev", App: "billing", Artifact: sha, Runner: "r1"})
	report(b1, "r1", api.DeployReport{Phase: api.PhaseFailed})
	if _, err := s.Create(Request{Tenant: "acme", Environment: "dev", App: "billing", Artifact: sha, Runner: "r2"}); err != nil {
		t.Errorf("an app that failed on r1 moving to r2: %v", err)
	}
	// A revoked runner's unfinished deployments fail with the reason.
	v3, _ := s.Create(Request{Tenant: "acme", Environment: "dev", App: "orders", Artifact: sha, Runner: "r1"})
	r1, _ := st.Runner("r1")
	s.RunnerRevoked(r1)
	if d, _ := st.Deployment("acme", v3.ID); d.Phase != api.PhaseFailed || !strings.Contains(d.Reason, "revoked") {
		t.Errorf("a revoked runner's deployment: %+v", d)
	}
}

func TestPromote(t *testing.T) {
	s, st := service(t)
	st.CreateEnvironment(store.Environment{Tenant: "acme", Name: "prod"}, func(store.Tenant, []store.Environment) error { return nil })
	if _, err := s.Promote("acme", "prod", "orders", "dev", 0); err == nil || !strings.Contains(err.Error(), "no app orders") {
		t.Errorf("promoting nothing: %v", err)
	}
	v1, _ := s.Create(Request{Tenant: "acme", Environment: "dev", App: "orders", Artifact: sha, Runner: "r1", Replicas: 3})
	if _, err := s.Promote("acme", "prod", "orders", "dev", 0); err == nil || !strings.Contains(err.Error(), "has not run") {
		t.Errorf("promoting an app that has not run: %v", err)
	}
	s.Report(&runners.Conn{ID: "r1", Tenant: "acme"}, v1.ID, api.DeployReport{Phase: api.PhaseRunning, Image: "reg/orders@sha256:1"})
	p, err := s.Promote("acme", "prod", "orders", "dev", 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Image != "reg/orders@sha256:1" || p.PromotedFrom != "dev" || p.Runner != "r1" || p.Replicas != 3 {
		t.Errorf("promotion: %+v", p)
	}
	if _, err := s.Promote("acme", "dev", "orders", "dev", 0); err == nil {
		t.Error("an app promoted to where it is")
	}
}
