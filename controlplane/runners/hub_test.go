package runners

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
	"github.com/cameleer/cameleer/tunnel"
)

// connect runs runner r's tunnel to h over a pipe; its local API is local.
// What it asks of the control plane gets 204.
func connect(t *testing.T, h *Hub, r store.Runner, local http.Handler) (done chan struct{}, sess *tunnel.Session) {
	t.Helper()
	cpSide, runnerSide := net.Pipe()
	sess = tunnel.Client(runnerSide, slog.New(slog.DiscardHandler))
	go http.Serve(sess.Listener(), local)
	done = make(chan struct{})
	routes := func(*Conn) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	}
	go func() {
		defer close(done)
		h.Serve(context.Background(), cpSide, r, r.Serial, routes, func(*Conn) {})
	}()
	t.Cleanup(func() { sess.Close(); <-done })
	for deadline := time.Now().Add(5 * time.Second); h.Live(r.ID) == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the runner did not connect")
		}
	}
	return done, sess
}

func hub(t *testing.T) (*Hub, store.Runner) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	st.CreateTenant(store.Tenant{Name: "acme", Tier: "low"})
	st.CreateRunnerToken(store.RunnerToken{Hash: "t", Tenant: "acme", Expires: time.Now().Add(time.Minute)}, 10, time.Now())
	r, err := st.Redeem("t", "k", time.Now(), func(tenant string, _ *store.Runner) (store.Runner, error) {
		return store.Runner{ID: "r1", Tenant: tenant, Name: "edge", Serial: "7"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return New(Options{Store: st, Log: slog.New(slog.DiscardHandler),
		HTTPServer: func(h http.Handler) *http.Server { return &http.Server{Handler: h} },
		Listen:     func(l net.Listener) net.Listener { return l }}), r
}

func TestCallsProxyAndRevoke(t *testing.T) {
	h, r := hub(t)
	local := http.NewServeMux()
	local.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "a=b")
		httpjson.Write(w, http.StatusOK, api.RunnerStatus{RunnerID: "r1", Version: "v9"})
	})
	local.HandleFunc("POST /v1/deployments", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Error(w, http.StatusUnprocessableEntity, "no engine here")
	})
	done, _ := connect(t, h, r, local)
	rc := h.Live("r1")
	if rc.Tenant != "acme" || rc.Serial != "7" {
		t.Errorf("conn: %+v", rc)
	}
	var st api.RunnerStatus
	if err := rc.Call(context.Background(), "GET", "/status", nil, &st); err != nil || st.Version != "v9" {
		t.Errorf("call: %v %+v", err, st)
	}
	err := rc.Call(context.Background(), "POST", "/v1/deployments", api.Deploy{ID: "d"}, nil)
	if se, ok := err.(*httpjson.StatusError); !ok || se.Status != http.StatusUnprocessableEntity || se.Msg != "no engine here" {
		t.Errorf("a refusal: %v", err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/v1/tenants/acme/runners/r1/proxy/status", nil)
	req.Header.Set("Authorization", "Bearer cmla_secret")
	rc.Proxy(rec, req, "/status")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"v9"`) || rec.Header().Get("Set-Cookie") != "" {
		t.Errorf("proxied: %d %q %v", rec.Code, rec.Body, rec.Header())
	}
	// A heartbeat is what the runner was seen saying.
	h.Heartbeat(rc, api.Heartbeat{Version: "v10"})
	if _, v := rc.Seen(); v != "v10" {
		t.Errorf("after a heartbeat: version %q", v)
	}
	// Revoked: its tunnel closes now, and its certificate is refused.
	if _, err := h.Revoke("r1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a revoked runner's tunnel stays open")
	}
	if h.Live("r1") != nil {
		t.Error("a revoked runner is live")
	}
	stored, _ := h.store.Runner("r1")
	if stored.Version != "v10" {
		t.Errorf("what was seen of it was not saved: %+v", stored)
	}
	if _, err := h.RunnerFor(&x509.Certificate{Subject: pkix.Name{CommonName: "r1"}, SerialNumber: big.NewInt(7)}); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("a revoked runner's certificate: %v", err)
	}
}

func TestRunnerFor(t *testing.T) {
	h, _ := hub(t)
	for name, tc := range map[string]struct {
		cn     string
		serial int64
		want   string
	}{
		"current":  {"r1", 7, ""},
		"replaced": {"r1", 6, "was replaced"},
		"unknown":  {"r9", 7, "not registered"},
	} {
		_, err := h.RunnerFor(&x509.Certificate{Subject: pkix.Name{CommonName: tc.cn}, SerialNumber: big.NewInt(tc.serial)})
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// TestVersions: a runner older than the contract's MinVersion is refused
// with a line that says to upgrade it; one that says nothing is version
// 1; a newer one is served; every answer says the control plane's version,
// every request to the runner too.
func TestVersions(t *testing.T) {
	h, r := hub(t)
	var seen atomic.Value
	local := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		seen.Store(req.Header.Get(api.VersionHeader))
		w.Header().Set(api.VersionHeader, "3")
		w.WriteHeader(http.StatusNoContent)
	})
	_, sess := connect(t, h, r, local)
	rc := h.Live("r1")
	runner := &http.Client{Transport: &tunnel.Transport{Open: func(ctx context.Context) (net.Conn, error) { return sess.Open(ctx, tunnel.KindHTTP) }}}
	ask := func(version string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://cp"+api.HeartbeatPath, strings.NewReader("{}"))
		if version != "" {
			req.Header.Set(api.VersionHeader, version)
		}
		resp, err := runner.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, httpjson.ErrorText(b)
	}
	for _, tc := range []struct {
		version string
		status  int
		api     int
	}{{"", http.StatusNoContent, 1}, {"99", http.StatusNoContent, 99}, {"2", http.StatusNoContent, 2}} {
		resp, _ := ask(tc.version)
		if resp.StatusCode != tc.status || resp.Header.Get(api.VersionHeader) != strconv.Itoa(api.Version) || rc.APIVersion() != tc.api {
			t.Errorf("version %q: %d, answer says %q, runner noted at %d", tc.version, resp.StatusCode, resp.Header.Get(api.VersionHeader), rc.APIVersion())
		}
	}
	for _, old := range []string{"0", "x"} {
		resp, msg := ask(old)
		if resp.StatusCode != http.StatusUpgradeRequired || !strings.Contains(msg, "upgrade the runner") || strings.Contains(msg, "\n") {
			t.Errorf("version %q: %d %q, want 426 saying to upgrade the runner", old, resp.StatusCode, msg)
		}
	}
	// The other way: the control plane says its version, and notes the
	// runner's from its answer.
	if err := rc.Call(context.Background(), "GET", "/status", nil, nil); err != nil {
		t.Fatal(err)
	}
	if seen.Load() != strconv.Itoa(api.Version) || rc.APIVersion() != 3 {
		t.Errorf("the runner saw version %v; the control plane noted %d", seen.Load(), rc.APIVersion())
	}
}
