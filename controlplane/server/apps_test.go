package server

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/store"
)

// TestDeleteApp: not while a deployment is under way; a delete the runner
// did not finish leaves the app deleting, taking no deployment, and is
// finished by deleting again; the app's deployments stay as its history.
func TestDeleteApp(t *testing.T) {
	c := start(t)
	c.do("POST", "/api/v1/tenants", c.admin, map[string]string{"name": "acme", "tier": "mid"}, nil)
	c.do("POST", "/api/v1/tenants/acme/environments", c.admin, map[string]string{"name": "dev"}, nil)
	var mu sync.Mutex
	var deletes []string
	failing := true
	c.runner(t, "r1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodDelete {
			w.WriteHeader(http.StatusAccepted) // deployments sent on connect
			return
		}
		mu.Lock()
		defer mu.Unlock()
		deletes = append(deletes, r.URL.Path)
		if failing {
			failing = false
			http.Error(w, `{"error":"delete orders: the engine is away"}`, http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	art := strings.Repeat("a", 64)
	c.s.store.AddArtifact(store.Artifact{Tenant: "acme", App: "orders", SHA256: art}, c.s.opts.Limits.artifactQuota())
	d := store.Deployment{ID: "d1", Tenant: "acme", Environment: "dev", App: "orders", Runner: "r1", Artifact: art, Replicas: 1, Port: 8080, Phase: api.PhaseBuilding}
	if err := c.s.store.CreateDeployment(d, 10, func(a *store.App, _ bool) error {
		a.Runner, a.Deployment, a.Phase = "r1", d.ID, d.Phase
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	app := "/api/v1/tenants/acme/environments/dev/apps/orders"
	var e struct{ Error string }
	if code := c.do("DELETE", app, c.admin, nil, &e); code != http.StatusConflict || !strings.Contains(e.Error, "wait for its end") {
		t.Errorf("delete while deploying: %d %q, want 409", code, e.Error)
	}
	if _, err := c.s.store.UpdateApp("acme", "dev", "orders", func(a *store.App) error { a.Phase = api.PhaseRunning; return nil }); err != nil {
		t.Fatal(err)
	}
	if code := c.do("DELETE", app, c.admin, nil, &e); code != http.StatusBadGateway || !strings.Contains(e.Error, "engine is away") || !strings.Contains(e.Error, "delete it again") {
		t.Errorf("a delete the runner failed: %d %q, want 502 with its reason", code, e.Error)
	}
	if code := c.do("POST", "/api/v1/tenants/acme/environments/dev/deployments", c.admin, map[string]any{"app": "orders", "artifact": art}, &e); code != http.StatusConflict || !strings.Contains(e.Error, "being deleted") {
		t.Errorf("a deployment of an app being deleted: %d %q, want 409", code, e.Error)
	}
	if code := c.do("DELETE", app, c.admin, nil, nil); code != http.StatusNoContent {
		t.Errorf("delete again: %d", code)
	}
	mu.Lock()
	if len(deletes) != 2 || deletes[1] != api.RunnerAppsPath+"dev/apps/orders" {
		t.Errorf("the runner was asked %v", deletes)
	}
	mu.Unlock()
	if code := c.do("GET", app+"/status", c.admin, nil, nil); code != http.StatusNotFound {
		t.Errorf("a deleted app: %d", code)
	}
	if code := c.do("DELETE", app, c.admin, nil, &e); code != http.StatusNotFound {
		t.Errorf("a deleted app deleted again: %d", code)
	}
	var deps []store.Deployment
	if c.do("GET", "/api/v1/tenants/acme/environments/dev/deployments", c.admin, nil, &deps); len(deps) != 1 || deps[0].ID != "d1" {
		t.Errorf("the deleted app's deployments: %+v, want its history", deps)
	}
	// Deployed again, it is a new app.
	if code := c.do("POST", "/api/v1/tenants/acme/environments/dev/deployments", c.admin, map[string]any{"app": "orders", "artifact": art}, nil); code != http.StatusAccepted {
		t.Errorf("deploy after the delete: %d", code)
	}
}
