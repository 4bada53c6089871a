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
	c := start(t)
	for _, name := range []string{"acme", "globex"} {
		if code := c.do("POST", "/api/v1/tenants", c.admin, map[string]string{"name": name, "tier": "mid"}, nil); code != http.StatusCreated {
			t.Fatalf("tenant %s: %d", name, code)
		}
	}
	c.do("POST", "/api/v1/tenants/acme/environments", c.admin, map[string]string{"name": "prod"}, nil)
	c.do("PUT", "/api/v1/tenants/acme/environments/prod/config", c.admin, map[string]any{"env": map[string]string{"A": "1"}, "secrets": map[string]string{"S": "x"}}, nil)
	var acmeTok, globexTok struct{ Token, ID string }
	c.do("POST", "/api/v1/tenants/acme/api-tokens", c.admin, nil, &acmeTok)
	c.do("POST", "/api/v1/tenants/globex/api-tokens", c.admin, nil, &globexTok)
	s := c.s
	s.store.CreateRunnerToken(store.RunnerToken{Hash: "ott", Tenant: "acme", Expires: time.Now().Add(time.Minute)}, 10, time.Now())
	s.store.Redeem("ott", "k", time.Now(), func(tenant string, _ *store.Runner) (store.Runner, error) {
		return store.Runner{ID: "r1", Tenant: tenant, Name: "edge", Serial: "1"}, nil
	})
	sha := strings.Repeat("ab", 32)
	s.store.AddArtifact(store.Artifact{Tenant: "acme", App: "orders", SHA256: sha}, s.opts.Limits.artifactQuota())
	d := store.Deployment{ID: "d1", Tenant: "acme", Environment: "prod", App: "orders", Runner: "r1", Artifact: sha, Replicas: 1, Port: 8080, Phase: api.PhaseValidating}
	if err := s.store.CreateDeployment(d, 10, func(a *store.App, _ bool) error { a.Runner, a.Deployment = "r1", d.ID; return nil }); err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
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
	before := snapshot()

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
			url = strings.ReplaceAll(url, "{id}", acmeTok.ID)
		case strings.Contains(url, "/deployments/{id}"):
			url = strings.ReplaceAll(url, "{id}", d.ID)
		case strings.Contains(url, "/exchanges/{id}"):
			url = strings.ReplaceAll(url, "{id}", "ex-1")
		case strings.Contains(url, "/admin-tokens/{id}"):
			url = strings.ReplaceAll(url, "{id}", "0123456789abcdef")
		}
		if strings.Contains(url, "{") {
			t.Errorf("%s: no value for a parameter in %s", path, url)
			continue
		}
		for _, m := range []string{"get", "post", "put", "delete"} {
			if !methods[m] {
				continue
			}
			tried++
			want := http.StatusNotFound
			if !strings.HasPrefix(path, "/api/v1/tenants/{tenant}") {
				want = http.StatusForbidden // the admin's: tenants, admin tokens
				if path == "/api/v1/tenants" && m == "get" {
					want = http.StatusOK // lists only the caller's own
				}
			}
			var out json.RawMessage
			code := c.do(strings.ToUpper(m), url, globexTok.Token, map[string]any{}, &out)
			if code != want {
				t.Errorf("%s %s with globex's token: %d %s, want %d", strings.ToUpper(m), url, code, out, want)
			}
			if path == "/api/v1/tenants" && m == "get" && strings.Contains(string(out), "acme") {
				t.Errorf("globex's token lists acme: %s", out)
			}
		}
	}
	t.Logf("%d routes tried with another tenant's token", tried)
	if tried < 30 {
		t.Errorf("only %d routes tried: openapi.yaml no longer parses as expected", tried)
	}
	if after := snapshot(); after != before {
		t.Errorf("acme changed under globex's calls:\nbefore %s\nafter  %s", before, after)
	}
	// The tenant's own token still works, and saw nothing of globex.
	var seen []store.Tenant
	c.do("GET", "/api/v1/tenants", acmeTok.Token, nil, &seen)
	if !slices.EqualFunc(seen, []store.Tenant{{Name: "acme"}}, func(a, b store.Tenant) bool { return a.Name == b.Name }) {
		t.Errorf("acme's token lists %+v", seen)
	}
}
