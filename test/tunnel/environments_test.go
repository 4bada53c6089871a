package tunnel_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnvironmentsAndSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the control plane")
	}
	e := newEnv(t, freeAddr(t))
	for tenant, tier := range map[string]string{"small": "low", "medium": "mid", "large": "high"} {
		e.call("POST", "/api/v1/tenants", e.admin, map[string]string{"name": tenant, "tier": tier}, nil)
	}
	for _, tc := range []struct {
		tenant, env string
		status      int
	}{
		{"small", "prod", http.StatusCreated},
		{"small", "dev", http.StatusForbidden},
		{"medium", "dev", http.StatusCreated},
		{"medium", "prod", http.StatusCreated},
		{"medium", "staging", http.StatusForbidden},
		{"large", "dev", http.StatusCreated},
		{"large", "staging", http.StatusCreated},
		{"large", "prod", http.StatusCreated},
		{"large", "perf-eu", http.StatusCreated},
		{"large", "prod", http.StatusConflict},
		{"large", "Bad_Name", http.StatusBadRequest},
	} {
		var out struct{ Error string }
		code := e.call("POST", "/api/v1/tenants/"+tc.tenant+"/environments", e.admin, map[string]string{"name": tc.env}, &out)
		if code != tc.status {
			t.Errorf("%s/%s: %d %q, want %d", tc.tenant, tc.env, code, out.Error, tc.status)
		}
		if code == http.StatusForbidden && !strings.Contains(out.Error, "tier") {
			t.Errorf("%s/%s: refusal %q does not give the reason", tc.tenant, tc.env, out.Error)
		}
	}

	const secret = "hunter2-very-secret-value"
	var cfg struct {
		Env     map[string]string `json:"env"`
		Secrets []string          `json:"secrets"`
		Error   string            `json:"error"`
	}
	body := map[string]any{"env": map[string]string{"GREETING": "hello"}, "secrets": map[string]string{"DB_PASSWORD": secret}}
	if code := e.call("PUT", "/api/v1/tenants/medium/environments/dev/config", e.admin, body, &cfg); code != http.StatusOK {
		t.Fatalf("put config: %d %s", code, cfg.Error)
	}
	if cfg.Env["GREETING"] != "hello" || len(cfg.Secrets) != 1 || cfg.Secrets[0] != "DB_PASSWORD" {
		t.Errorf("config answer: %+v", cfg)
	}
	var raw bytes.Buffer
	req, _ := http.NewRequest("GET", "https://"+e.addr+"/api/v1/tenants/medium/environments/dev/config", nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw.ReadFrom(resp.Body)
	resp.Body.Close()
	if strings.Contains(raw.String(), secret) || !strings.Contains(raw.String(), "DB_PASSWORD") {
		t.Errorf("GET config: %s", raw.String())
	}
	// Not in the state file, not in the log.
	state, err := os.ReadFile(filepath.Join(e.dir, "cp", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(state, []byte(secret)) {
		t.Error("the secret is in the state file in plain text")
	}
	e.cpMu.Lock()
	logged := strings.Contains(e.cpLog.String(), secret)
	e.cpMu.Unlock()
	if logged {
		t.Error("the secret is in the control plane's log")
	}
	if fi, err := os.Stat(filepath.Join(e.dir, "cp", "secrets.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets key: %v %v", fi, err)
	}
	if code := e.call("PUT", "/api/v1/tenants/medium/environments/dev/config", e.admin, map[string]any{"env": map[string]string{"1BAD": "x"}}, nil); code != http.StatusBadRequest {
		t.Errorf("bad env name: %d", code)
	}
	// Another tenant's environment is not there for a tenant token.
	var tok struct{ Token string }
	e.call("POST", "/api/v1/tenants/small/api-tokens", e.admin, nil, &tok)
	if code := e.call("GET", "/api/v1/tenants/medium/environments/dev/config", tok.Token, nil, nil); code != http.StatusNotFound {
		t.Errorf("small read medium's config: %d", code)
	}
}
