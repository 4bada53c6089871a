package server

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/secrets"
	"github.com/cameleer/cameleer/controlplane/store"
)

// TestEgress: an environment's egress is refused with one line when it is
// wrong, stored normalized, shown with the environment, and sent to the
// runners that run apps in it: at once, when they connect, and with every
// deployment.
func TestEgress(t *testing.T) {
	c := start(t)
	c.do("POST", "/api/v1/tenants", c.admin, map[string]string{"name": "acme", "tier": "mid"}, nil)
	for _, env := range []string{"dev", "prod"} {
		if code := c.do("POST", "/api/v1/tenants/acme/environments", c.admin, map[string]string{"name": env}, nil); code != http.StatusCreated {
			t.Fatalf("environment %s: %d", env, code)
		}
	}
	path := "/api/v1/tenants/acme/environments/dev/egress"
	var got egressBody
	if code := c.do("GET", path, c.admin, nil, &got); code != http.StatusOK || got.Allow == nil || len(got.Allow) != 0 {
		t.Errorf("a new environment's egress: %d %#v, want an empty list", code, got)
	}

	for _, tc := range []struct {
		body any
		want string
	}{
		{map[string]any{"allow": []map[string]any{{"cidr": "10.1.2.0/24", "ports": []int{0}}}}, "allow[0]: port 0 is out of range"},
		{map[string]any{"allow": []map[string]any{{"cidr": "10.1.2.0/24", "ports": []int{443}}, {"cidr": "10.1.2.0/40", "ports": []int{443}}}}, `allow[1]: cidr "10.1.2.0/40"`},
		{map[string]any{"allow": []map[string]any{{"host": "db_.example", "ports": []int{5432}}}}, "is not a host name"},
		{map[string]any{"allow": []map[string]any{{"host": "db.example", "ports": []int{5432}, "comment": "x"}}}, `unknown field "comment"`},
		{map[string]any{"allow": make([]map[string]any, 101)}, "at most 100"},
	} {
		var e struct{ Error string }
		if code := c.do("PUT", path, c.admin, tc.body, &e); code != http.StatusBadRequest || !strings.Contains(e.Error, tc.want) || strings.Contains(e.Error, "\n") {
			t.Errorf("%v: %d %q, want 400 with %q", tc.body, code, e.Error, tc.want)
		}
	}

	// A runner that runs an app in dev, and none in prod.
	runner := newFakeRunner()
	c.runner(t, "r1", runner)
	d := store.Deployment{ID: "d1", Tenant: "acme", Environment: "dev", App: "orders", Runner: "r1",
		Artifact: strings.Repeat("a", 64), Replicas: 1, Port: 8080, Phase: api.PhaseRunning}
	if err := c.s.store.CreateDeployment(d, 10, func(a *store.App, _ bool) error { a.Runner, a.Deployment = "r1", d.ID; return nil }); err != nil {
		t.Fatal(err)
	}

	allow := []api.EgressRule{{CIDR: "10.1.2.0/24", Ports: []int{443}}, {Host: "DB.example.internal", Ports: []int{5432}}}
	want := []api.EgressRule{{CIDR: "10.1.2.0/24", Ports: []int{443}, Protocol: "tcp"}, {Host: "db.example.internal", Ports: []int{5432}, Protocol: "tcp"}}
	if code := c.do("PUT", path, c.admin, egressBody{Allow: allow}, &got); code != http.StatusOK || !reflect.DeepEqual(got.Allow, want) {
		t.Fatalf("put: %d %+v, want %+v", code, got.Allow, want)
	}
	if sent := runner.wait(t, "dev", 1); !reflect.DeepEqual(sent.Allow, want) {
		t.Errorf("the runner got %+v, want %+v", sent.Allow, want)
	}
	var env envView
	if c.do("GET", "/api/v1/tenants/acme/environments/dev", c.admin, nil, &env); !reflect.DeepEqual(env.Egress, want) {
		t.Errorf("the environment shows egress %+v, want %+v", env.Egress, want)
	}
	c.do("PUT", "/api/v1/tenants/acme/environments/prod/egress", c.admin, egressBody{Allow: allow}, nil)

	// Emptied: deny-all again, under a newer revision.
	if code := c.do("PUT", path, c.admin, egressBody{Allow: []api.EgressRule{}}, &got); code != http.StatusOK || len(got.Allow) != 0 {
		t.Fatalf("emptying: %d %+v", code, got)
	}
	if sent := runner.wait(t, "dev", 2); len(sent.Allow) != 0 {
		t.Errorf("the emptied egress reached the runner as %+v", sent.Allow)
	}

	// A runner that connects is sent the egress of its environments only.
	runner.reset()
	c.runner(t, "r1", runner)
	runner.wait(t, "dev", 2)
	if got := runner.envs(); !reflect.DeepEqual(got, []string{"dev"}) {
		t.Errorf("on connect the runner was sent the egress of %v, want [dev]", got)
	}

	// And every deployment carries it.
	c.do("PUT", path, c.admin, egressBody{Allow: allow}, nil)
	runner.wait(t, "dev", 3)
	var deployed struct{ ID string }
	c.s.store.AddArtifact(store.Artifact{Tenant: "acme", App: "orders", SHA256: d.Artifact}, c.s.opts.Limits.artifactQuota())
	if code := c.do("POST", "/api/v1/tenants/acme/environments/dev/deployments", c.admin, map[string]any{"app": "orders", "artifact": d.Artifact}, &deployed); code != http.StatusAccepted {
		t.Fatalf("deploy: %d", code)
	}
	cmd := runner.deployment(t, deployed.ID)
	if cmd.Egress.Revision != 3 || !reflect.DeepEqual(cmd.Egress.Allow, want) {
		t.Errorf("the deployment command's egress: %+v", cmd.Egress)
	}
}

// fakeRunner is a runner's local API that records the egress and the
// deployments it is sent.
type fakeRunner struct {
	mu       sync.Mutex
	sent     map[string][]api.Egress // by environment
	deployed map[string]api.Deploy   // by id
}

func newFakeRunner() *fakeRunner {
	return &fakeRunner{sent: map[string][]api.Egress{}, deployed: map[string]api.Deploy{}}
}

func (f *fakeRunner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == api.RunnerDeploymentsPath {
		var d api.Deploy
		json.NewDecoder(r.Body).Decode(&d)
		f.mu.Lock()
		f.deployed[d.ID] = d
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		return
	}
	env, ok := strings.CutPrefix(r.URL.Path, api.RunnerAppsPath)
	env, egress := strings.CutSuffix(env, api.RunnerEgressPath)
	var e api.Egress
	if !ok || !egress || r.Method != http.MethodPut || json.NewDecoder(r.Body).Decode(&e) != nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	f.mu.Lock()
	f.sent[env] = append(f.sent[env], e)
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// deployment is the command of deployment id the runner got.
func (f *fakeRunner) deployment(t *testing.T, id string) api.Deploy {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		f.mu.Lock()
		d, ok := f.deployed[id]
		f.mu.Unlock()
		if ok {
			return d
		}
	}
	t.Fatalf("the runner was not sent deployment %s", id)
	return api.Deploy{}
}

// wait returns the egress of env the runner got at revision.
func (f *fakeRunner) wait(t *testing.T, env string, revision int64) api.Egress {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		f.mu.Lock()
		for _, e := range f.sent[env] {
			if e.Revision == revision {
				f.mu.Unlock()
				return e
			}
		}
		f.mu.Unlock()
	}
	t.Fatalf("the runner was not sent revision %d of %s's egress", revision, env)
	return api.Egress{}
}

func (f *fakeRunner) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = map[string][]api.Egress{}
}

func (f *fakeRunner) envs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for env := range f.sent {
		out = append(out, env)
	}
	return out
}

// TestKeepSecrets: the overlay's values change and a secret stays as it
// was, unseen by who changed them; a secret kept that is not set, or both
// given and kept, is refused with one line and changes nothing.
func TestKeepSecrets(t *testing.T) {
	c := start(t)
	c.do("POST", "/api/v1/tenants", c.admin, map[string]string{"name": "acme", "tier": "mid"}, nil)
	c.do("POST", "/api/v1/tenants/acme/environments", c.admin, map[string]string{"name": "prod"}, nil)
	path := "/api/v1/tenants/acme/environments/prod/config"
	put := func(body any) (int, envView, string) {
		var v envView
		var e struct{ Error string }
		code := c.do("PUT", path, c.admin, body, &v)
		if code != http.StatusOK {
			c.do("PUT", path, c.admin, body, &e)
		}
		return code, v, e.Error
	}
	if code, _, msg := put(map[string]any{"env": map[string]string{"A": "1"}, "secrets": map[string]string{"TOKEN": "s3cr3t", "OLD": "x"}}); code != http.StatusOK {
		t.Fatalf("%d %s", code, msg)
	}
	code, v, msg := put(map[string]any{"env": map[string]string{"A": "2", "B": "3"}, "keepSecrets": []string{"TOKEN"}})
	if code != http.StatusOK || !reflect.DeepEqual(v.Secrets, []string{"TOKEN"}) || v.Env["A"] != "2" {
		t.Fatalf("values changed, TOKEN kept, OLD dropped: %d %+v %s", code, v, msg)
	}
	e, err := c.s.store.Environment("acme", "prod")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := c.s.secrets.Unseal(e.Secrets["TOKEN"], secrets.Name{Tenant: "acme", Environment: "prod", Name: "TOKEN"})
	if err != nil || string(plain) != "s3cr3t" {
		t.Errorf("the kept secret: %q %v", plain, err)
	}
	for body, want := range map[string]map[string]any{
		"is not set, so it cannot be kept": {"keepSecrets": []string{"NOPE"}},
		"is both given and kept":           {"secrets": map[string]string{"TOKEN": "y"}, "keepSecrets": []string{"TOKEN"}},
		"is both a value and a secret":     {"env": map[string]string{"TOKEN": "v"}, "keepSecrets": []string{"TOKEN"}},
	} {
		if code, _, msg := put(want); code != http.StatusBadRequest || !strings.Contains(msg, body) {
			t.Errorf("%v: %d %q, want 400 with %q", want, code, msg, body)
		}
	}
	if _, v, _ := put(map[string]any{"env": map[string]string{"A": "2", "B": "3"}, "keepSecrets": []string{"TOKEN"}}); !reflect.DeepEqual(v.Secrets, []string{"TOKEN"}) {
		t.Errorf("after refusals: %+v", v)
	}
}
