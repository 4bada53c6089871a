package server

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/netguard"
	"github.com/cameleer/cameleer/controlplane/runners"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// serveTunnel runs one runner's tunnel until it ends: the runner's calls
// are answered by runnerRoutes; the control plane's go the other way.
func (s *Server) serveTunnel(ctx context.Context, c net.Conn, cert *x509.Certificate) {
	r, err := s.runners.RunnerFor(cert)
	if err != nil {
		c.Close()
		return
	}
	s.runners.Serve(ctx, c, r, cert.SerialNumber.String(), s.runnerRoutes, func(rc *runners.Conn) {
		s.environments.Connected(rc)
		s.deployments.KeepDispatching(rc)
	})
}

// runnerRoutes answer the runner through its tunnel; the tunnel's client
// certificate already says which runner it is. A runner is held to its
// request rate.
func (s *Server) runnerRoutes(rc *runners.Conn) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.HeartbeatPath, func(w http.ResponseWriter, r *http.Request) {
		var hb api.Heartbeat
		if err := httpjson.DecodeWire(w, r, &hb); err != nil {
			s.fail(w, r, err)
			return
		}
		s.runners.Heartbeat(rc, hb)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+api.RenewPath, func(w http.ResponseWriter, r *http.Request) {
		csr, err := io.ReadAll(io.LimitReader(r.Body, api.MaxEnrollRequest))
		if err != nil {
			httpjson.Error(w, http.StatusBadRequest, err.Error())
			return
		}
		resp, err := s.enrollment.Renew(r.Context(), rc.ID, rc.Serial, r.URL.Query().Get("held"), csr)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		httpjson.Write(w, http.StatusOK, resp)
	})
	mux.HandleFunc("POST "+api.DeployReportPath+"{id}", func(w http.ResponseWriter, r *http.Request) {
		var rep api.DeployReport
		if err := httpjson.DecodeWire(w, r, &rep); err != nil {
			s.fail(w, r, err)
			return
		}
		if err := s.deployments.Report(rc, r.PathValue("id"), rep); err != nil {
			s.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+api.ArtifactPath+"{sha}", func(w http.ResponseWriter, r *http.Request) { s.runnerArtifact(rc, w, r) })
	mux.HandleFunc("POST "+api.RunnerTelemetryPath, func(w http.ResponseWriter, r *http.Request) { s.ingestTelemetry(rc, w, r) })
	mux.HandleFunc("GET "+api.RunnerBinaryPath, s.serveRunnerBinary)
	return withRequestID(newRunnerLimiter(s.opts.Limits).wrap(s, rc.ID, mux))
}

// runnerArtifact serves a runner an artifact one of its deployments uses.
func (s *Server) runnerArtifact(rc *runners.Conn, w http.ResponseWriter, r *http.Request) {
	sha := r.PathValue("sha")
	if b, err := hex.DecodeString(sha); err != nil || len(b) != 32 {
		httpjson.Error(w, http.StatusBadRequest, "not a SHA-256: "+sha)
		return
	}
	uses, err := s.deployments.Uses(rc, sha)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !uses {
		httpjson.Error(w, http.StatusNotFound, "no deployment of this runner uses artifact "+sha)
		return
	}
	// Each download holds a file: a runner that reads them slowly, or
	// many at once, waits for a slot rather than use up the process's
	// files.
	if !s.downloads.take(r.Context()) {
		return
	}
	defer s.downloads.give()
	f, err := os.Open(filepath.Join(s.artifactDir(), sha))
	if err != nil {
		httpjson.Error(w, http.StatusNotFound, "artifact "+sha+" is gone")
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/java-archive")
	http.ServeContent(w, r, sha+".jar", st.ModTime(), f)
}

// writeDeadlines gives every write on a stream the runner opened a
// deadline: a runner that stops reading an answer (an artifact download)
// loses the stream, not the control plane a goroutine and a file.
type writeDeadlines struct{ net.Listener }

func (l writeDeadlines) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return netguard.NewWriteDeadline(c, writeTimeout), nil
}

// proxyReads are the runner's local API paths the proxy reaches: read
// only, for looking into a runner. What changes state (deploying, stopping
// an app) goes through the control plane's own API, which checks it; the
// runner's deploy endpoint in particular must not be reached around the
// tier's limits and the artifact checks. Admin and tenant tokens may read
// all of them (HEAD too).
var proxyReads = []string{
	"GET " + api.StatusPath,
	"GET " + api.RunnerAppsPath + "{env}/apps",
	"GET " + api.RunnerAppsPath + "{env}/apps/{app}/status",
	"GET " + api.RunnerAppsPath + "{env}/apps/{app}/logs",
}

// proxyPaths matches a request against proxyReads.
func proxyPaths() *http.ServeMux {
	m := http.NewServeMux()
	for _, p := range proxyReads {
		m.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
	}
	return m
}

// proxy forwards a read of the runner's local API through its tunnel.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, rn store.Runner) {
	p := "/" + r.PathValue("path")
	// One spelling of each path: no dot segments, doubled or encoded
	// slashes that the runner could read otherwise than matched here.
	if path.Clean(p) != p || strings.Contains(strings.ToLower(r.URL.EscapedPath()), "%2f") {
		httpjson.Error(w, http.StatusBadRequest, "the proxied path must be clean: "+p)
		return
	}
	probe := &http.Request{Method: r.Method, URL: &url.URL{Path: p}, Host: "runner"}
	if _, pattern := s.proxyPaths.Handler(probe); pattern == "" {
		httpjson.Error(w, http.StatusForbidden, r.Method+" "+p+" is not for the proxy: it reaches the runner's read-only paths "+strings.Join(proxyReads, ", "))
		return
	}
	rc := s.runners.Live(rn.ID)
	if rc == nil {
		httpjson.Error(w, http.StatusServiceUnavailable, "runner "+rn.ID+" is not connected")
		return
	}
	rc.Proxy(w, r, p)
}

// supportBundle streams the runner's support bundle (a tar.gz it makes as
// it sends it) through the tunnel.
func (s *Server) supportBundle(w http.ResponseWriter, r *http.Request, rn store.Runner) {
	rc := s.runners.Live(rn.ID)
	if rc == nil {
		httpjson.Error(w, http.StatusServiceUnavailable, "runner "+rn.ID+" is not connected")
		return
	}
	rc.Proxy(w, r, api.SupportBundlePath)
}

// upgradeRunner has a runner upgrade itself to the binary this control
// plane serves (the request may name its version, to be sure of it): the
// runner fetches it through the tunnel, checks it, and runs `cameleer
// upgrade`, which rolls back by itself; the answer comes once it has
// begun, and the runner's status says how it ended.
func (s *Server) upgradeRunner(w http.ResponseWriter, r *http.Request, rn store.Runner) {
	var req struct {
		Version string `json:"version"`
	}
	if !s.decode(w, r, &req, true) {
		return
	}
	f, bin, err := s.installs.Open(r.Context())
	if err != nil {
		s.binaryError(w, r, err)
		return
	}
	f.Close()
	if req.Version != "" && req.Version != bin.Version {
		httpjson.Error(w, http.StatusConflict, "this control plane serves cameleer "+bin.Version+", not "+req.Version)
		return
	}
	rc := s.runners.Live(rn.ID)
	if rc == nil {
		httpjson.Error(w, http.StatusServiceUnavailable, "runner "+rn.ID+" is not connected")
		return
	}
	var ans api.UpgradeAnswer
	if err := rc.Call(r.Context(), http.MethodPost, api.RunnerUpgradePath, api.UpgradeRequest{Version: bin.Version, SHA256: bin.SHA256}, &ans); err != nil {
		s.runnerFailed(w, r, err)
		return
	}
	s.log.Info("runner upgrade begun", "tenant", rn.Tenant, "runner", rn.ID, "from", ans.From, "to", ans.To)
	httpjson.Write(w, http.StatusAccepted, ans)
}
