package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/runners"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/tunnel"
)

type testCP struct {
	t      *testing.T
	s      *Server
	url    string
	admin  string
	client *http.Client
}

func start(t *testing.T) *testCP {
	t.Helper()
	return startWith(t, Options{})
}

// startWith starts a control plane with opts in a new data dir (unless
// opts names one).
func startWith(t *testing.T, opts Options) *testCP {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	s, admin, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if admin == "" {
		t.Fatal("no admin token on first start")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	return &testCP{t: t, s: s, url: "https://" + l.Addr().String(), admin: admin,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
}

func (c *testCP) do(method, path, token string, body any, out any) int {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func TestHealthAndAuth(t *testing.T) {
	c := start(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if code := c.do("GET", p, "", nil, nil); code != http.StatusOK {
			t.Errorf("%s: %d", p, code)
		}
	}
	// The metrics count across tenants: the admin's only.
	c.do("POST", "/api/v1/tenants", c.admin, map[string]string{"name": "acme", "tier": "low"}, nil)
	var tok struct{ Token string }
	c.do("POST", "/api/v1/tenants/acme/api-tokens", c.admin, nil, &tok)
	for tok, want := range map[string]int{"": http.StatusUnauthorized, tok.Token: http.StatusForbidden, c.admin: http.StatusOK} {
		if code := c.do("GET", "/metrics", tok, nil, nil); code != want {
			t.Errorf("/metrics with token %.8q: %d, want %d", tok, code, want)
		}
	}
	for name, tok := range map[string]string{"none": "", "garbage": "abc", "forged": apiTokenPrefix + "forged"} {
		if code := c.do("GET", "/api/v1/tenants", tok, nil, nil); code != http.StatusUnauthorized {
			t.Errorf("%s token: %d", name, code)
		}
	}
}

func TestTenantsAndTokens(t *testing.T) {
	c := start(t)
	for _, tc := range []struct {
		body   map[string]string
		status int
	}{
		{map[string]string{"name": "acme", "tier": "low"}, http.StatusCreated},
		{map[string]string{"name": "acme", "tier": "low"}, http.StatusConflict},
		{map[string]string{"name": "Acme!", "tier": "low"}, http.StatusBadRequest},
		{map[string]string{"name": "globex", "tier": "gold"}, http.StatusBadRequest},
		{map[string]string{"name": "globex", "tier": "high"}, http.StatusCreated},
	} {
		if code := c.do("POST", "/api/v1/tenants", c.admin, tc.body, nil); code != tc.status {
			t.Errorf("create %v: %d, want %d", tc.body, code, tc.status)
		}
	}
	var tok struct{ Token string }
	if code := c.do("POST", "/api/v1/tenants/acme/api-tokens", c.admin, nil, &tok); code != http.StatusCreated || !strings.HasPrefix(tok.Token, apiTokenPrefix) {
		t.Fatalf("api token: %d %q", code, tok.Token)
	}
	var seen []struct{ Name string }
	c.do("GET", "/api/v1/tenants", tok.Token, nil, &seen)
	if len(seen) != 1 || seen[0].Name != "acme" {
		t.Errorf("acme's token sees %v", seen)
	}
	if code := c.do("GET", "/api/v1/tenants/globex", tok.Token, nil, nil); code != http.StatusNotFound {
		t.Errorf("acme's token on globex: %d", code)
	}
	if code := c.do("POST", "/api/v1/tenants", tok.Token, map[string]string{"name": "x", "tier": "low"}, nil); code != http.StatusForbidden {
		t.Errorf("tenant token created a tenant: %d", code)
	}

	// API tokens are listed (never shown again) and revoked; a revoked
	// token authenticates nothing, at once.
	var other struct{ Token, ID string }
	c.do("POST", "/api/v1/tenants/acme/api-tokens", tok.Token, nil, &other)
	var toks []struct{ ID, Tenant, Token string }
	if code := c.do("GET", "/api/v1/tenants/acme/api-tokens", tok.Token, nil, &toks); code != http.StatusOK || len(toks) != 2 {
		t.Fatalf("list api tokens: %d %+v", code, toks)
	}
	for _, lt := range toks {
		if lt.Token != "" || lt.Tenant != "acme" || len(lt.ID) != 16 || strings.Contains(tok.Token+other.Token, lt.ID) {
			t.Errorf("listed token %+v", lt)
		}
	}
	if code := c.do("DELETE", "/api/v1/tenants/globex/api-tokens/"+other.ID, tok.Token, nil, nil); code != http.StatusNotFound {
		t.Errorf("acme's token revoking on globex: %d", code)
	}
	if code := c.do("DELETE", "/api/v1/tenants/acme/api-tokens/0123456789abcdef", tok.Token, nil, nil); code != http.StatusNotFound {
		t.Errorf("revoking an unknown token: %d", code)
	}
	if code := c.do("DELETE", "/api/v1/tenants/acme/api-tokens/"+other.ID, tok.Token, nil, nil); code != http.StatusNoContent {
		t.Fatalf("revoke: %d", code)
	}
	if code := c.do("GET", "/api/v1/tenants/acme", other.Token, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("a revoked token: %d, want 401", code)
	}
	if code := c.do("GET", "/api/v1/tenants/acme/api-tokens", tok.Token, nil, &toks); code != http.StatusOK || len(toks) != 1 {
		t.Errorf("after revoking: %d %+v", code, toks)
	}

	for ttl, want := range map[string]int{"": http.StatusCreated, "5m": http.StatusCreated, "soon": http.StatusBadRequest, "48h": http.StatusBadRequest, "-1m": http.StatusBadRequest} {
		var out struct{ Token, Command string }
		body := map[string]string{}
		if ttl != "" {
			body["ttl"] = ttl
		}
		code := c.do("POST", "/api/v1/tenants/acme/runner-tokens", tok.Token, body, &out)
		if code != want {
			t.Errorf("ttl %q: %d, want %d", ttl, code, want)
			continue
		}
		if code == http.StatusCreated {
			parsed, err := api.ParseToken(out.Token)
			if err != nil || parsed.CAHash != c.s.CAHash() || !strings.Contains(out.Command, out.Token) {
				t.Errorf("token %q (%v), command %q", out.Token, err, out.Command)
			}
		}
	}
}

func TestEnrollRefusesAnotherControlPlanesToken(t *testing.T) {
	c := start(t)
	foreign, _ := api.NewToken(sha256.Sum256([]byte("another CA")), "")
	var out struct{ Error string }
	code := c.do("POST", api.EnrollPath, "", map[string]string{"token": foreign.String(), "csr": "x"}, &out)
	if code != http.StatusBadRequest && code != http.StatusUnauthorized {
		t.Errorf("foreign token: %d %s", code, out.Error)
	}
	if out.Error == "" || strings.Contains(out.Error, "\n") {
		t.Errorf("error %q", out.Error)
	}
}

func TestAdminTokenOnlyOnFirstStart(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, first, err := New(Options{DataDir: dir, Log: log})
	if err != nil || first == "" {
		t.Fatalf("first start: %q %v", first, err)
	}
	hash := s.CAHash()
	s.Close()
	s, again, err := New(Options{DataDir: dir, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if again != "" {
		t.Error("a second start made another admin token")
	}
	if s.CAHash() != hash {
		t.Error("a second start made another CA")
	}
}

// TestNotAFirstStart: a data dir that lost its state file, or its CA, is
// refused with a one-line reason: starting as new would forget every
// tenant and runner, or make a CA no runner trusts. A first start that was
// cut short is finished.
func TestNotAFirstStart(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	start := func(dir string) error {
		s, _, err := New(Options{DataDir: dir, Log: log})
		if err == nil {
			s.Close()
		}
		return err
	}
	refused := func(t *testing.T, dir, want string) {
		t.Helper()
		err := start(dir)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("start: %v; want one line with %q", err, want)
		}
	}
	made := func(t *testing.T) string {
		dir := t.TempDir()
		if err := start(dir); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	t.Run("state file removed", func(t *testing.T) {
		dir := made(t)
		os.Remove(filepath.Join(dir, "state.db"))
		refused(t, dir, "not a first start")
	})
	t.Run("state file emptied", func(t *testing.T) {
		dir := made(t)
		os.WriteFile(filepath.Join(dir, "state.db"), nil, 0o600)
		refused(t, dir, "not a first start")
	})
	t.Run("CA removed", func(t *testing.T) {
		dir := made(t)
		os.Remove(filepath.Join(dir, "pki", "ca.crt"))
		refused(t, dir, "restore both from a backup")
	})
	t.Run("another CA", func(t *testing.T) {
		dir, other := made(t), made(t)
		for _, f := range []string{"ca.crt", "ca.key"} {
			b, _ := os.ReadFile(filepath.Join(other, "pki", f))
			os.WriteFile(filepath.Join(dir, "pki", f), b, 0o600)
		}
		refused(t, dir, "not this control plane's CA")
	})
	t.Run("CA removed from a data dir older than the CA's record", func(t *testing.T) {
		dir := made(t)
		st, err := store.Open(filepath.Join(dir, "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		st.SetMeta("ca", "")
		st.Close()
		os.Remove(filepath.Join(dir, "pki", "ca.crt"))
		refused(t, dir, "restore both from a backup")
	})
	t.Run("secrets key removed", func(t *testing.T) {
		dir := made(t)
		os.Remove(filepath.Join(dir, "secrets.key"))
		refused(t, dir, "secrets.key is missing")
	})
	t.Run("first start cut short before the CA", func(t *testing.T) {
		dir := made(t)
		// As if killed after the state file was made: a state file
		// without CA or admin token.
		os.RemoveAll(filepath.Join(dir, "pki"))
		os.Remove(filepath.Join(dir, "state.db"))
		os.Remove(AdminTokenFile(dir))
		st, err := store.Open(filepath.Join(dir, "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
		s, admin, err := New(Options{DataDir: dir, Log: log})
		if err != nil || admin == "" {
			t.Fatalf("finishing a first start: %q %v", admin, err)
		}
		s.Close()
	})
}

// TestBadRequestsAnswerJSON: every refusal is a JSON error with a reason,
// the router's own included, and a body is one JSON object, no more.
func TestBadRequestsAnswerJSON(t *testing.T) {
	c := start(t)
	if code := c.do("POST", "/api/v1/tenants", c.admin, map[string]string{"name": "acme", "tier": "low"}, nil); code != http.StatusCreated {
		t.Fatalf("tenant: %d", code)
	}
	send := func(method, path, body string, chunked bool) (int, http.Header, string) {
		t.Helper()
		var rd io.Reader = strings.NewReader(body)
		if chunked {
			rd = io.MultiReader(rd) // unknown length: sent chunked
		}
		req, _ := http.NewRequest(method, c.url+path, rd)
		req.Header.Set("Authorization", "Bearer "+c.admin)
		resp, err := c.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Error string }
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil && resp.StatusCode >= 400 {
			t.Errorf("%s %s: %d, not a JSON error: %v", method, path, resp.StatusCode, err)
		}
		return resp.StatusCode, resp.Header, e.Error
	}
	for _, tc := range []struct {
		name, method, path, body string
		chunked                  bool
		code                     int
		want                     string
	}{
		{"trailing garbage", "POST", "/api/v1/tenants", `{"name":"beta","tier":"mid"} trailing`, false, 400, "more after the JSON object"},
		{"two objects", "POST", "/api/v1/tenants/acme/runner-tokens", `{"ttl":"1h"}{"ttl":"bogus"}`, false, 400, "more after the JSON object"},
		{"empty body", "POST", "/api/v1/tenants", ``, true, 400, "empty"},
		{"optional body, empty, chunked", "POST", "/api/v1/tenants/acme/runner-tokens", ``, true, 201, ""},
		{"unknown path", "GET", "/api/v1/tenants/acme/nothing", ``, false, 404, "no such path"},
		// GET of any other path is the console's (web): it routes in the browser.
		{"unknown method outside the API", "POST", "/nothing", ``, false, 405, "POST is not allowed on /nothing"},
		{"method not allowed", "PATCH", "/api/v1/tenants", ``, false, 405, "PATCH is not allowed"},
	} {
		code, h, msg := send(tc.method, tc.path, tc.body, tc.chunked)
		if code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %d %q, want %d with %q", tc.name, code, msg, tc.code, tc.want)
		}
		if code == 405 && !strings.Contains(h.Get("Allow"), "GET") {
			t.Errorf("%s: Allow %q", tc.name, h.Get("Allow"))
		}
	}
	if code := c.do("GET", "/api/v1/tenants/beta", c.admin, nil, nil); code != http.StatusNotFound {
		t.Errorf("a refused body created its tenant: %d", code)
	}
}

// runner connects runner id of tenant acme (registered here if it is not)
// to the control plane through a real tunnel over a pipe; its local API is
// h. It stays connected until the test ends or the next call with its id.
func (c *testCP) runner(t *testing.T, id string, h http.Handler) {
	t.Helper()
	r, err := c.s.store.Runner(id)
	if errors.Is(err, store.ErrNotFound) {
		hash := "ott-" + id
		if err := c.s.store.CreateRunnerToken(store.RunnerToken{Hash: hash, Tenant: "acme", Expires: time.Now().Add(time.Minute)}, 100, time.Now()); err != nil {
			t.Fatal(err)
		}
		r, err = c.s.store.Redeem(hash, "k", time.Now(), func(tenant string, _ *store.Runner) (store.Runner, error) {
			return store.Runner{ID: id, Tenant: tenant, Name: id, Serial: "1"}, nil
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	cpSide, runnerSide := net.Pipe()
	sess := tunnel.Client(runnerSide, slog.New(slog.DiscardHandler))
	go http.Serve(sess.Listener(), h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.s.runners.Serve(ctx, cpSide, r, r.Serial, c.s.runnerRoutes, func(rc *runners.Conn) {
			c.s.environments.Connected(rc)
			c.s.deployments.KeepDispatching(rc)
		})
	}()
	t.Cleanup(func() { cancel(); sess.Close(); <-done })
	for deadline := time.Now().Add(5 * time.Second); c.s.runners.Live(id) == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("runner %s did not connect", id)
		}
	}
}
