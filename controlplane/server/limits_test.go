package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// TestQuotas: past a tenant's quota, a write is 429 with the reason, and
// an upload is refused before its body is read.
func TestQuotas(t *testing.T) {
	c := startWith(t, Options{Limits: Limits{APITokens: 2, RunnerTokens: 1, Artifacts: 1}})
	c.do("POST", "/api/v1/tenants", c.admin, map[string]string{"name": "acme", "tier": "low"}, nil)
	refused := func(what, path string) {
		t.Helper()
		var out struct{ Error string }
		if code := c.do("POST", path, c.admin, nil, &out); code != http.StatusTooManyRequests || !strings.Contains(out.Error, "over quota") {
			t.Errorf("%s: %d %q, want 429 over quota", what, code, out.Error)
		}
	}
	for range 2 {
		if code := c.do("POST", "/api/v1/tenants/acme/api-tokens", c.admin, nil, nil); code != http.StatusCreated {
			t.Fatalf("api token: %d", code)
		}
	}
	refused("a third API token of two", "/api/v1/tenants/acme/api-tokens")
	if code := c.do("POST", "/api/v1/tenants/acme/runner-tokens", c.admin, nil, nil); code != http.StatusCreated {
		t.Fatalf("runner token: %d", code)
	}
	refused("a second open one-time token of one", "/api/v1/tenants/acme/runner-tokens")

	upload := func(main string) (int, string) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("file", "app.jar")
		fw.Write(testutil.Zip(t, map[string]string{"META-INF/MANIFEST.MF": "Main-Class: " + main + "\r\n"}))
		mw.Close()
		req, _ := http.NewRequest("POST", c.url+"/api/v1/tenants/acme/apps/orders/artifacts", &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+c.admin)
		resp, err := c.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	if code, _ := upload("a.B"); code != http.StatusCreated {
		t.Fatalf("first artifact: %d", code)
	}
	if code, _ := upload("c.D"); code != http.StatusTooManyRequests {
		t.Errorf("a second artifact of one: %d", code)
	}
	files, _ := os.ReadDir(filepath.Join(c.s.opts.DataDir, "artifacts"))
	if len(files) != 1 {
		t.Errorf("artifacts dir holds %d files, want the one accepted", len(files))
	}
}

// TestLeftoversRemovedAtStart: what a killed control plane was writing is
// gone at the next start; nothing else is.
func TestLeftoversRemovedAtStart(t *testing.T) {
	dir := t.TempDir()
	c := startWith(t, Options{DataDir: dir})
	c.s.Close()
	left := []string{filepath.Join(dir, ".admin.token.tmp-123"),
		filepath.Join(dir, "pki", ".ca.key.tmp-456"), filepath.Join(dir, "artifacts", ".upload.tmp-789")}
	os.MkdirAll(filepath.Join(dir, "artifacts"), 0o700)
	for _, p := range left {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, _, err := New(Options{DataDir: dir, Log: c.s.log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range left {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is still there: %v", p, err)
		}
	}
	for _, p := range []string{"state.db", "admin.token", "pki/ca.key"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestInternalErrorsSayOnlyARequestID: a failure the client did not cause
// answers 500 with the request's id and nothing of the error (a store's
// message, a path); the log has the error under that id.
func TestInternalErrorsSayOnlyARequestID(t *testing.T) {
	var log testutil.SyncBuffer
	c := startWith(t, Options{Log: slog.New(slog.NewTextHandler(&log, nil))})
	c.do("POST", "/api/v1/tenants", c.admin, map[string]string{"name": "acme", "tier": "low"}, nil)
	// The state file goes away under the running control plane.
	c.s.store.Close()
	req, _ := http.NewRequest("GET", c.url+"/api/v1/tenants", nil)
	req.Header.Set("Authorization", "Bearer "+c.admin)
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Error, RequestID string }
	json.NewDecoder(resp.Body).Decode(&out)
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusInternalServerError || id == "" || out.RequestID != id || !strings.Contains(out.Error, id) {
		t.Fatalf("answer: %d %+v, header id %q", resp.StatusCode, out, id)
	}
	for _, leak := range []string{"database", "bolt", c.s.opts.DataDir, "state.db"} {
		if strings.Contains(out.Error, leak) {
			t.Errorf("the answer says %q: %q", leak, out.Error)
		}
	}
	if got := log.String(); !strings.Contains(got, "requestId="+id) || !strings.Contains(got, "database not open") {
		t.Errorf("the log does not have the error under the request id:\n%s", got)
	}
}
