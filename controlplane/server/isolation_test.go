package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/store"
)

// TestTenantIsolationEveryRoute walks every route of the API (from
// openapi.yaml, which TestOpenAPICoversRoutes keeps true to the router)
// with another tenant's token, against a tenant that has one of
// everything: each answers 404 (403 for the admin's own), and nothing of
// the tenant changes.
func TestTenantIsolationEveryRoute(t *testing.T) {
	f := everything(t)
	c := f.c
	var globexTok struct{ Token string }
	c.do("POST", "/api/v1/tenants/globex/api-tokens", c.admin, nil, &globexTok)
	before := f.snapshot()
	tried := f.eachRoute(func(method, path, url string) {
		want := http.StatusNotFound
		switch {
		case routeNeeds(method, path) == controlPlane:
			want = http.StatusForbidden // the control plane admin's: tenants, retention, admin tokens
		case path == "/api/v1/tenants" && method == "GET":
			want = http.StatusOK // lists only the caller's own
		}
		var out json.RawMessage
		code := c.do(method, url, globexTok.Token, map[string]any{}, &out)
		if code != want {
			t.Errorf("%s %s with globex's token: %d %s, want %d", method, url, code, out, want)
		}
		if path == "/api/v1/tenants" && method == "GET" && strings.Contains(string(out), "acme") {
			t.Errorf("globex's token lists acme: %s", out)
		}
	})
	t.Logf("%d routes tried with another tenant's token", tried)
	if after := f.snapshot(); after != before {
		t.Errorf("acme changed under globex's calls:\nbefore %s\nafter  %s", before, after)
	}
	// The tenant's own token still works, and saw nothing of globex.
	var seen []store.Tenant
	c.do("GET", "/api/v1/tenants", f.acmeTok.Token, nil, &seen)
	if !slices.EqualFunc(seen, []store.Tenant{{Name: "acme"}}, func(a, b store.Tenant) bool { return a.Name == b.Name }) {
		t.Errorf("acme's token lists %+v", seen)
	}
}

// TestRolesEveryRoute walks every route with a viewer's, an operator's and
// an admin's token of the tenant: a route that needs more answers 403
// naming the role it needs, and changes nothing; every other is let
// through to its handler.
func TestRolesEveryRoute(t *testing.T) {
	f := everything(t)
	c := f.c
	tokens := map[role]string{}
	for _, ro := range []role{viewer, operator, admin} {
		var tok struct{ Token, Role string }
		if code := c.do("POST", "/api/v1/tenants/acme/api-tokens", c.admin, map[string]string{"role": ro.String()}, &tok); code != http.StatusCreated || tok.Role != ro.String() {
			t.Fatalf("%s token: %d %+v", ro, code, tok)
		}
		tokens[ro] = tok.Token
	}
	before := f.snapshot()
	refused := map[role]int{}
	for _, ro := range []role{viewer, operator, admin} {
		f.eachRoute(func(method, path, url string) {
			needs := routeNeeds(method, path)
			if needs == 0 {
				t.Errorf("%s %s is in openapi.yaml but not in the API's table", method, path)
				return
			}
			if want := policy(method, path); needs != want && ro == viewer {
				t.Errorf("%s %s needs %s, but the documented policy says %s", method, path, needs, want)
			}
			if needs <= ro && method != "GET" {
				return // allowed, and it would change what the snapshot compares
			}
			var out struct{ Error string }
			code := c.do(method, url, tokens[ro], map[string]any{}, &out)
			switch {
			case needs > ro:
				refused[ro]++
				if code != http.StatusForbidden || !strings.Contains(out.Error, "needs the "+needs.String()+" role") || !strings.Contains(out.Error, "is "+ro.String()) {
					t.Errorf("%s %s with a %s token: %d %q, want 403 naming %s", method, url, ro, code, out.Error, needs)
				}
			case code == http.StatusForbidden:
				t.Errorf("%s %s with a %s token: refused (%q), but it needs only %s", method, url, ro, out.Error, needs)
			}
		})
	}
	if after := f.snapshot(); after != before {
		t.Errorf("refused calls changed acme:\nbefore %s\nafter  %s", before, after)
	}
	// The viewer is refused every change, the operator the tenant's setup,
	// the admin only the control plane admin's routes.
	if refused[viewer] <= refused[operator] || refused[operator] <= refused[admin] || refused[admin] == 0 {
		t.Errorf("refusals by role %v", refused)
	}

	// What an operator may do, it does.
	if code := c.do("POST", "/api/v1/tenants/acme/environments/prod/apps/orders/stop", tokens[operator], nil, nil); code == http.StatusForbidden {
		t.Errorf("an operator may not stop an app: %d", code)
	}
	// An unknown role is refused in one line; the list shows each token's.
	var bad struct{ Error string }
	if code := c.do("POST", "/api/v1/tenants/acme/api-tokens", c.admin, map[string]string{"role": "root"}, &bad); code != http.StatusBadRequest || !strings.Contains(bad.Error, "viewer, operator or admin") {
		t.Errorf("role root: %d %q", code, bad.Error)
	}
	var list []apiTokenView
	c.do("GET", "/api/v1/tenants/acme/api-tokens", c.admin, nil, &list)
	roles := map[string]int{}
	for _, v := range list {
		roles[v.Role]++
	}
	// acme's fixture token was made without a role: admin.
	if roles["viewer"] != 1 || roles["operator"] != 1 || roles["admin"] != 2 {
		t.Errorf("roles listed %v", roles)
	}
}

// policy is docs/controlplane.md's Roles, written out apart from the API's
// table: reads are a viewer's, changes an operator's, the tenant's setup
// its admin's, and what spans tenants the control plane admin's.
func policy(method, path string) role {
	const t = "/api/v1/tenants/{tenant}"
	switch {
	case path == "/api/v1/tenants" && method == "GET":
		return viewer
	case !strings.HasPrefix(path, t), path == t+"/retention":
		return controlPlane
	case strings.HasPrefix(path, t+"/api-tokens"), path == t+"/runner-tokens", path == t+"/audit",
		method == "DELETE" && strings.HasPrefix(path, t+"/runners/"), strings.HasSuffix(path, "/support-bundle"), strings.HasSuffix(path, "/upgrade"),
		method == "POST" && path == t+"/environments",
		method == "PUT" && (strings.HasSuffix(path, "/config") || strings.HasSuffix(path, "/egress")):
		return admin
	case method == "GET":
		return viewer
	}
	return operator
}

// TestTokensFromBeforeRolesAreAdmins: a token stored with no role (made
// before roles were) may still do what it could.
func TestTokensFromBeforeRolesAreAdmins(t *testing.T) {
	c := start(t)
	c.do("POST", "/api/v1/tenants", c.admin, map[string]string{"name": "acme", "tier": "mid"}, nil)
	old := apiTokenPrefix + "from-before-roles"
	if err := c.s.store.CreateAPIToken(store.APIToken{Hash: api.HashSecret([]byte(old)), Tenant: "acme", Created: time.Now()}, 10); err != nil {
		t.Fatal(err)
	}
	var tok struct{ Role string }
	if code := c.do("POST", "/api/v1/tenants/acme/api-tokens", old, map[string]string{"role": "viewer"}, &tok); code != http.StatusCreated || tok.Role != "viewer" {
		t.Errorf("an old token makes a viewer token: %d %+v", code, tok)
	}
	if code := c.do("POST", "/api/v1/tenants/acme/environments", old, map[string]string{"name": "dev"}, nil); code != http.StatusCreated {
		t.Errorf("an old token creates an environment: %d", code)
	}
}

// fixture is a control plane with tenants acme (one of everything) and
// globex (nothing).
type fixture struct {
	c        *testCP
	acmeTok  struct{ Token, ID string }
	snapshot func() string
	d        store.Deployment
	bulk     string
}

func everything(t *testing.T) *fixture {
	t.Helper()
	c := start(t)
	f := &fixture{c: c}
	for _, name := range []string{"acme", "globex"} {
		if code := c.do("POST", "/api/v1/tenants", c.admin, map[string]string{"name": name, "tier": "mid"}, nil); code != http.StatusCreated {
			t.Fatalf("tenant %s: %d", name, code)
		}
	}
	c.do("POST", "/api/v1/tenants/acme/environments", c.admin, map[string]string{"name": "prod"}, nil)
	c.do("PUT", "/api/v1/tenants/acme/environments/prod/config", c.admin, map[string]any{"env": map[string]string{"A": "1"}, "secrets": map[string]string{"S": "x"}}, nil)
	c.do("POST", "/api/v1/tenants/acme/api-tokens", c.admin, nil, &f.acmeTok)
	s := c.s
	s.store.CreateRunnerToken(store.RunnerToken{Hash: "ott", Tenant: "acme", Expires: time.Now().Add(time.Minute)}, 10, time.Now())
	s.store.Redeem("ott", "k", time.Now(), func(tenant string, _ *store.Runner) (store.Runner, error) {
		return store.Runner{ID: "r1", Tenant: tenant, Name: "edge", Serial: "1"}, nil
	})
	sha := strings.Repeat("ab", 32)
	s.store.AddArtifact(store.Artifact{Tenant: "acme", App: "orders", SHA256: sha}, s.opts.Limits.artifactQuota())
	f.d = store.Deployment{ID: "d1", Tenant: "acme", Environment: "prod", App: "orders", Runner: "r1", Artifact: sha, Replicas: 1, Port: 8080, Phase: api.PhaseValidating}
	if err := s.store.CreateDeployment(f.d, 10, func(a *store.App, _ bool) error { a.Runner, a.Deployment = "r1", f.d.ID; return nil }); err != nil {
		t.Fatal(err)
	}
	var bulk struct{ ID string }
	if code := c.do("POST", "/api/v1/tenants/acme/environments/prod/apps/orders/bulk-replays", c.admin, map[string]any{"route": "orders"}, &bulk); code != http.StatusAccepted {
		t.Fatalf("bulk replay: %d", code)
	}
	f.bulk = bulk.ID
	f.snapshot = func() string {
		var b strings.Builder
		for _, p := range []string{"/api/v1/tenants/acme", "/api/v1/tenants/acme/api-tokens", "/api/v1/tenants/acme/runners",
			"/api/v1/tenants/acme/environments", "/api/v1/tenants/acme/environments/prod/config", "/api/v1/tenants/acme/environments/prod/deployments",
			"/api/v1/tenants/acme/environments/prod/apps", "/api/v1/tenants/acme/apps/orders/artifacts"} {
			var v any
			c.do("GET", p, c.admin, nil, &v)
			j, _ := json.Marshal(v)
			b.Write(j)
		}
		return b.String()
	}
	return f
}

// eachRoute calls try with each method and path of the API in
// openapi.yaml (which TestOpenAPICoversRoutes keeps true to the router),
// and the path filled in with acme's things; it answers how many.
func (f *fixture) eachRoute(try func(method, path, url string)) int {
	t := f.c.t
	doc, err := readOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{"{tenant}": "acme", "{env}": "prod", "{app}": "orders", "{path}": "status", "{op}": "stop"}
	tried := 0
	for path, methods := range parsePaths(doc) {
		if !strings.HasPrefix(path, "/api/v1/") || path == api.EnrollPath {
			continue
		}
		url := path
		for k, v := range values {
			url = strings.ReplaceAll(url, k, v)
		}
		switch {
		case strings.Contains(url, "/runners/{id}"):
			url = strings.ReplaceAll(url, "{id}", "r1")
		case strings.Contains(url, "/api-tokens/{id}"):
			url = strings.ReplaceAll(url, "{id}", f.acmeTok.ID)
		case strings.Contains(url, "/deployments/{id}"):
			url = strings.ReplaceAll(url, "{id}", f.d.ID)
		case strings.Contains(url, "/exchanges/{id}"):
			url = strings.ReplaceAll(url, "{id}", "ex-1")
		case strings.Contains(url, "/bulk-replays/{id}"):
			url = strings.ReplaceAll(url, "{id}", f.bulk)
		case strings.Contains(url, "/admin-tokens/{id}"):
			url = strings.ReplaceAll(url, "{id}", "0123456789abcdef")
		}
		if strings.Contains(url, "{") {
			t.Errorf("%s: no value for a parameter in %s", path, url)
			continue
		}
		for _, m := range []string{"get", "post", "put", "delete"} {
			if methods[m] {
				tried++
				try(strings.ToUpper(m), path, url)
			}
		}
	}
	if tried < 30 {
		t.Errorf("only %d routes tried: openapi.yaml no longer parses as expected", tried)
	}
	return tried
}

// routeNeeds is the role the API's table asks of method on an OpenAPI
// path (0: no such route).
func routeNeeds(method, path string) role {
	for _, rt := range (&Server{}).apiRoutes() {
		m, p, ok := strings.Cut(rt.pattern, " ")
		if !ok {
			m, p = method, rt.pattern
		}
		if m == method && strings.ReplaceAll(p, "{path...}", "{path}") == path {
			return rt.needs
		}
	}
	return 0
}
