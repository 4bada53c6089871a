package server

import (
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/deployments"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// createDeployment accepts a deployment of an uploaded artifact to a
// runner of the tenant and hands it to the runner; the answer is 202 and
// the deployment, whose phase the runner moves on.
func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request, e store.Environment) {
	var req deployments.Request
	if !s.decode(w, r, &req, false) {
		return
	}
	req.Tenant, req.Environment = e.Tenant, e.Name
	d, err := s.deployments.Create(req)
	s.accepted(w, r, d, err)
}

// promote deploys the image an app runs in another environment, with this
// environment's config: the same digest, no rebuild.
func (s *Server) promote(w http.ResponseWriter, r *http.Request, to store.Environment) {
	var req struct {
		App      string `json:"app"`
		From     string `json:"from"`
		Replicas int    `json:"replicas"`
	}
	if !s.decode(w, r, &req, false) {
		return
	}
	d, err := s.deployments.Promote(to.Tenant, to.Name, req.App, req.From, req.Replicas)
	s.accepted(w, r, d, err)
}

func (s *Server) accepted(w http.ResponseWriter, r *http.Request, d store.Deployment, err error) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/tenants/"+d.Tenant+"/environments/"+d.Environment+"/deployments/"+d.ID)
	httpjson.Write(w, http.StatusAccepted, d)
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request, e store.Environment) {
	d, err := s.store.Deployment(e.Tenant, r.PathValue("id"))
	if err != nil || d.Environment != e.Name {
		httpjson.Error(w, http.StatusNotFound, "deployment not found")
		return
	}
	httpjson.Write(w, http.StatusOK, d)
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request, e store.Environment) {
	ds, err := s.store.Deployments(e.Tenant, func(d store.Deployment) bool { return d.Environment == e.Name })
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, append([]store.Deployment{}, ds...))
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request, e store.Environment) {
	apps, err := s.store.Apps(e.Tenant, e.Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, apps)
}

func (s *Server) appScoped(h func(http.ResponseWriter, *http.Request, store.App)) http.HandlerFunc {
	return s.environmentScoped(func(w http.ResponseWriter, r *http.Request, e store.Environment) {
		a, err := s.store.App(e.Tenant, e.Name, r.PathValue("app"))
		if err != nil {
			httpjson.Error(w, http.StatusNotFound, "no app "+r.PathValue("app")+" in environment "+e.Name)
			return
		}
		h(w, r, a)
	})
}

// appRecords scopes a read of what an app's exchanges left (traces,
// statistics, replays) by the app's name, whether it is deployed now or
// was deleted: those stay until their retention.
func (s *Server) appRecords(h func(http.ResponseWriter, *http.Request, store.App)) http.HandlerFunc {
	return s.environmentScoped(func(w http.ResponseWriter, r *http.Request, e store.Environment) {
		name := r.PathValue("app")
		if api.ValidName(name) != nil {
			httpjson.Error(w, http.StatusNotFound, "no app "+name+" in environment "+e.Name)
			return
		}
		h(w, r, store.App{Tenant: e.Tenant, Environment: e.Name, Name: name})
	})
}

// appStatus is an app as the control plane knows it, with what its runner
// says of it now.
type appStatus struct {
	store.App
	Connected bool `json:"connected"`
	// Live is the runner's view: replicas and ready instances.
	Live *api.AppStatus `json:"live,omitempty"`
}

func (s *Server) appStatus(w http.ResponseWriter, r *http.Request, a store.App) {
	out := appStatus{App: a}
	if rc := s.runners.Live(a.Runner); rc != nil {
		out.Connected = true
		var st api.AppStatus
		if err := rc.Call(r.Context(), http.MethodGet, appPath(a, "status"), nil, &st); err == nil {
			out.Live = &st
		}
	}
	httpjson.Write(w, http.StatusOK, out)
}

// appOp forwards stop, start or restart to the app's runner.
func (s *Server) appOp(w http.ResponseWriter, r *http.Request, a store.App) {
	op := r.PathValue("op")
	if !slices.Contains([]string{"stop", "start", "restart"}, op) {
		httpjson.Error(w, http.StatusNotFound, "no such operation: "+op)
		return
	}
	rc := s.runners.Live(a.Runner)
	if rc == nil {
		httpjson.Error(w, http.StatusServiceUnavailable, "runner "+a.Runner+" is not connected")
		return
	}
	var st api.AppStatus
	if err := rc.Call(r.Context(), http.MethodPost, appPath(a, op), api.AppOp{Replicas: a.Replicas}, &st); err != nil {
		s.runnerFailed(w, r, err)
		return
	}
	s.log.Info("app "+op, "tenant", a.Tenant, "env", a.Environment, "app", a.Name)
	httpjson.Write(w, http.StatusOK, st)
}

// deleteApp deletes an app, everything its runner holds of it with it.
func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request, e store.Environment) {
	if err := s.deployments.Delete(r.Context(), e.Tenant, e.Name, r.PathValue("app")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// runnerFailed answers a call the runner refused with its answer, and one
// it did not answer with 502.
func (s *Server) runnerFailed(w http.ResponseWriter, r *http.Request, err error) {
	var se *httpjson.StatusError
	if errors.As(err, &se) {
		s.fail(w, r, err)
		return
	}
	httpjson.Error(w, http.StatusBadGateway, "runner did not answer: "+err.Error())
}

// appLogs streams the app's logs from its runner.
func (s *Server) appLogs(w http.ResponseWriter, r *http.Request, a store.App) {
	rc := s.runners.Live(a.Runner)
	if rc == nil {
		httpjson.Error(w, http.StatusServiceUnavailable, "runner "+a.Runner+" is not connected")
		return
	}
	q := url.Values{}
	for _, k := range []string{"tail", "follow"} {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	resp, err := rc.Get(r.Context(), appPath(a, "logs")+"?"+q.Encode())
	if err != nil {
		s.runnerFailed(w, r, err)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	rcw := http.NewResponseController(w)
	// The caller learns the stream is open now, not with the app's next
	// line.
	rcw.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			rcw.Flush()
		}
		if err != nil {
			return
		}
	}
}

func appPath(a store.App, op string) string {
	return api.RunnerAppsPath + a.Environment + "/apps/" + a.Name + "/" + op
}
