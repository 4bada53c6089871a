package tunnel_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// TestDeploymentAPI checks what the deploy API refuses up front, that a
// deployment waits for its runner to connect and is then handed over, and
// that a runner without an engine refuses it with its reason. The full
// deployment onto a real node is in test/node.
func TestDeploymentAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both binaries")
	}
	e := newEnv(t, freeAddr(t))
	for _, tenant := range []string{"acme", "globex"} {
		e.call("POST", "/api/v1/tenants", e.admin, map[string]string{"name": tenant, "tier": "mid"}, nil)
		e.call("POST", "/api/v1/tenants/"+tenant+"/environments", e.admin, map[string]string{"name": "dev"}, nil)
	}
	var globex struct{ Token string }
	e.call("POST", "/api/v1/tenants/globex/api-tokens", e.admin, nil, &globex)
	jar := testutil.Zip(t, map[string]string{"META-INF/MANIFEST.MF": "Main-Class: com.example.Orders\r\n", "com/example/Orders.class": "x"})
	code, sha := e.upload("/api/v1/tenants/acme/apps/orders/artifacts", e.admin, jar, "")
	if code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, sha)
	}
	deployments := "/api/v1/tenants/acme/environments/dev/deployments"
	deploy := map[string]any{"app": "orders", "artifact": sha}
	refused := func(what, path, token string, body any, status int, msg string) {
		t.Helper()
		var out struct{ Error string }
		if code := e.call("POST", path, token, body, &out); code != status || !strings.Contains(out.Error, msg) {
			t.Errorf("%s: %d %q, want %d with %q", what, code, out.Error, status, msg)
		}
	}
	refused("no runner yet", deployments, e.admin, deploy, http.StatusBadRequest, "the tenant has 0")

	runnerDir := filepath.Join(e.dir, "runner")
	e.register("acme", "edge", runnerDir)
	refused("unknown artifact", deployments, e.admin, map[string]any{"app": "orders", "artifact": strings.Repeat("ab", 32)}, http.StatusNotFound, "upload it first")
	refused("another app's artifact", deployments, e.admin, map[string]any{"app": "billing", "artifact": sha}, http.StatusNotFound, "upload it first")
	refused("unknown environment", "/api/v1/tenants/acme/environments/prod/deployments", e.admin, deploy, http.StatusNotFound, "environment not found")
	refused("too many replicas", deployments, e.admin, map[string]any{"app": "orders", "artifact": sha, "replicas": 500}, http.StatusBadRequest, "replicas")
	refused("the agent's port", deployments, e.admin, map[string]any{"app": "orders", "artifact": sha, "port": 9464}, http.StatusBadRequest, "port 9464")
	refused("unknown runner", deployments, e.admin, map[string]any{"app": "orders", "artifact": sha, "runner": "nope"}, http.StatusNotFound, "runner nope not found")
	refused("another tenant's deployment", deployments, globex.Token, deploy, http.StatusNotFound, "tenant not found")
	refused("promotion of nothing", "/api/v1/tenants/acme/environments/dev/promotions", e.admin, map[string]string{"app": "orders", "from": "dev"}, http.StatusBadRequest, "another environment")

	// Accepted while the runner is away: it waits for it.
	var d struct{ ID, Phase, Reason, Runner string }
	if code := e.call("POST", deployments, e.admin, deploy, &d); code != http.StatusAccepted || d.Phase != "validating" || !strings.Contains(d.Reason, "waiting for runner edge") {
		t.Fatalf("deployment to an absent runner: %d %+v", code, d)
	}
	stopRunner := e.startRunner(runnerDir, nil)
	testutil.Eventually(t, poll, 30*time.Second, "deployment handed to the runner and refused", func() error {
		e.call("GET", deployments+"/"+d.ID, e.admin, nil, &d)
		if d.Phase != "failed" {
			return fmt.Errorf("phase %s %s", d.Phase, d.Reason)
		}
		return nil
	})
	if !strings.Contains(d.Reason, "without an engine") {
		t.Errorf("reason %q does not say why", d.Reason)
	}
	var apps []struct{ Name, Phase, Deployment string }
	e.call("GET", "/api/v1/tenants/acme/environments/dev/apps", e.admin, nil, &apps)
	if len(apps) != 1 || apps[0].Name != "orders" || apps[0].Phase != "failed" || apps[0].Deployment != d.ID {
		t.Errorf("apps %+v", apps)
	}
	var list []struct{ ID string }
	e.call("GET", deployments, e.admin, nil, &list)
	if len(list) != 1 || list[0].ID != d.ID {
		t.Errorf("deployments %+v", list)
	}
	if code := e.call("GET", deployments+"/"+d.ID, globex.Token, nil, nil); code != http.StatusNotFound {
		t.Errorf("globex read acme's deployment: %d", code)
	}
	e.call("POST", "/api/v1/tenants/acme/environments", e.admin, map[string]string{"name": "prod"}, nil)
	refused("promotion of an app that never ran", "/api/v1/tenants/acme/environments/prod/promotions", e.admin, map[string]string{"app": "orders", "from": "dev"}, http.StatusConflict, "nothing to promote")

	// A runner that goes away leaves a new deployment waiting; revoking it
	// fails what waits for it.
	stopRunner()
	testutil.Eventually(t, poll, 30*time.Second, "runner disconnected", func() error {
		var r struct{ Connected bool }
		e.call("GET", "/api/v1/tenants/acme/runners/"+d.Runner, e.admin, nil, &r)
		if r.Connected {
			return fmt.Errorf("still connected")
		}
		return nil
	})
	var waiting struct{ ID, Phase, Reason string }
	if code := e.call("POST", deployments, e.admin, deploy, &waiting); code != http.StatusAccepted || waiting.Phase != "validating" {
		t.Fatalf("deployment to a runner that went away: %d %+v", code, waiting)
	}
	if code := e.call("DELETE", "/api/v1/tenants/acme/runners/"+d.Runner, e.admin, nil, nil); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	e.call("GET", deployments+"/"+waiting.ID, e.admin, nil, &waiting)
	if waiting.Phase != "failed" || !strings.Contains(waiting.Reason, "revoked") {
		t.Errorf("a deployment waiting for a revoked runner: %+v", waiting)
	}
	refused("revoked runner", deployments, e.admin, map[string]any{"app": "orders", "artifact": sha, "runner": d.Runner}, http.StatusConflict, "revoked")
}
