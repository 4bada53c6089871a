package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// maxReplicas bounds what one deployment asks of a runner.
const maxReplicas = 20

// deploymentID sorts by creation time, so a tenant's deployments list in
// the order they were made.
func deploymentID() string {
	return fmt.Sprintf("%016x", time.Now().UnixNano()) + newID()[:8]
}

type deployRequest struct {
	App      string `json:"app"`
	Artifact string `json:"artifact"`
	Runner   string `json:"runner"`
	Replicas int    `json:"replicas"`
	Port     int    `json:"port"`
}

// createDeployment accepts a deployment of an uploaded artifact to a
// runner of the tenant and hands it to the runner; the answer is 202 and
// the deployment, whose phase the runner moves on.
func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request, e store.Environment) {
	var req deployRequest
	if !decode(w, r, &req) {
		return
	}
	if err := api.ValidName(req.App); err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	arts, err := s.store.Artifacts(e.Tenant, req.App)
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	if !slices.ContainsFunc(arts, func(a store.Artifact) bool { return a.SHA256 == req.Artifact }) {
		httpjson.Error(w, http.StatusNotFound, fmt.Sprintf("app %s has no artifact %q: upload it first", req.App, req.Artifact))
		return
	}
	d := store.Deployment{Tenant: e.Tenant, Environment: e.Name, App: req.App, Artifact: req.Artifact,
		Replicas: req.Replicas, Port: req.Port}
	s.startDeployment(w, d, req.Runner)
}

// promote deploys the image an app runs in another environment, with this
// environment's config: the same digest, no rebuild.
func (s *Server) promote(w http.ResponseWriter, r *http.Request, to store.Environment) {
	var req struct {
		App      string `json:"app"`
		From     string `json:"from"`
		Replicas int    `json:"replicas"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.From == to.Name {
		httpjson.Error(w, http.StatusBadRequest, "an app is promoted from another environment")
		return
	}
	from, err := s.store.App(to.Tenant, req.From, req.App)
	if err != nil {
		httpjson.Error(w, http.StatusNotFound, fmt.Sprintf("no app %s in environment %s", req.App, req.From))
		return
	}
	if from.Running == "" {
		httpjson.Error(w, http.StatusConflict, fmt.Sprintf("app %s has not run in %s yet: nothing to promote", req.App, req.From))
		return
	}
	d := store.Deployment{Tenant: to.Tenant, Environment: to.Name, App: req.App, Artifact: from.Artifact,
		Image: from.Running, PromotedFrom: req.From, Replicas: orDefault(req.Replicas, from.Replicas), Port: from.Port}
	// The image lives in that runner's registry. Artifact, replicas and
	// port are those of the deployment that runs it.
	s.startDeployment(w, d, from.Runner)
}

func orDefault(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// startDeployment checks the runner, records d and dispatches it.
func (s *Server) startDeployment(w http.ResponseWriter, d store.Deployment, runner string) {
	if runner == "" {
		// A tenant with one runner need not name it.
		rs, err := s.store.Runners(d.Tenant)
		if err != nil {
			httpjson.Error(w, http.StatusInternalServerError, err.Error())
			return
		}
		rs = slices.DeleteFunc(rs, func(r store.Runner) bool { return r.Revoked })
		if len(rs) != 1 {
			httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("name the runner to deploy to: the tenant has %d", len(rs)))
			return
		}
		runner = rs[0].ID
	}
	rn, err := s.store.Runner(runner)
	if err != nil || rn.Tenant != d.Tenant {
		httpjson.Error(w, http.StatusNotFound, "runner "+runner+" not found")
		return
	}
	if rn.Revoked {
		httpjson.Error(w, http.StatusConflict, "runner "+runner+" is revoked")
		return
	}
	if d.Replicas == 0 {
		d.Replicas = 1
	}
	if d.Replicas < 1 || d.Replicas > maxReplicas {
		httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("replicas must be 1 to %d", maxReplicas))
		return
	}
	if d.Port == 0 {
		d.Port = api.DefaultAppPort
	}
	if d.Port < 1 || d.Port > 65535 || d.Port == api.AgentPort {
		httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("port %d is not a port the app can serve HTTP on", d.Port))
		return
	}
	if a, err := s.store.App(d.Tenant, d.Environment, d.App); err == nil && a.Running != "" && a.Runner != rn.ID {
		// The app would run twice, and its operations reach one of them.
		httpjson.Error(w, http.StatusConflict, fmt.Sprintf("app %s runs in %s on runner %s: deploy it there", d.App, d.Environment, a.Runner))
		return
	}
	now := time.Now().UTC()
	d.ID, d.Runner, d.Phase, d.Created, d.Updated = deploymentID(), rn.ID, api.PhaseValidating, now, now
	if s.live(rn.ID) == nil {
		d.Reason = "waiting for runner " + rn.Name + " to connect"
	}
	if err := s.store.CreateDeployment(d); err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.log.Info("deployment created", "deployment", d.ID, "tenant", d.Tenant, "env", d.Environment, "app", d.App,
		"runner", d.Runner, "artifact", d.Artifact, "promotedFrom", d.PromotedFrom)
	// Looked up after the deployment is stored: a runner that connected
	// meanwhile has it from its own pending list or from here (it takes
	// a deployment once).
	if rc := s.live(rn.ID); rc != nil {
		go s.dispatch(rc, d)
	}
	w.Header().Set("Location", "/api/v1/tenants/"+d.Tenant+"/environments/"+d.Environment+"/deployments/"+d.ID)
	httpjson.Write(w, http.StatusAccepted, d)
}

// dispatch sends a deployment to its runner with the environment's config
// as it is now, its secrets unsealed. A runner that does not take it gets it
// again from keepDispatching: within resendInterval, or when it reconnects.
func (s *Server) dispatch(rc *runnerConn, d store.Deployment) {
	log := s.log.With("deployment", d.ID, "runner", rc.id)
	cmd, err := s.command(d)
	if err != nil {
		log.Warn("deployment cannot be sent", "err", err)
		s.setPhase(d, api.DeployReport{Phase: api.PhaseFailed, Reason: api.PhaseValidating + ": " + err.Error()})
		return
	}
	body, _ := json.Marshal(cmd)
	err = rc.callTimeout(time.Minute, http.MethodPost, api.RunnerDeploymentsPath, body, nil)
	var refused *runnerError
	switch {
	case err == nil:
	case errors.As(err, &refused) && (refused.status < 502 || refused.status > 504):
		// The runner answered, and not with a gateway's trouble: it will
		// not take this deployment, now or later.
		s.setPhase(d, api.DeployReport{Phase: api.PhaseFailed, Reason: "the runner refused it: " + refused.msg})
	default:
		log.Warn("deployment not taken by the runner yet; it is sent again", "err", err, "in", resendInterval)
	}
}

// command is what the runner is told to do for d.
func (s *Server) command(d store.Deployment) (api.Deploy, error) {
	e, err := s.store.Environment(d.Tenant, d.Environment)
	if err != nil {
		return api.Deploy{}, fmt.Errorf("environment %s: %w", d.Environment, err)
	}
	cmd := api.Deploy{ID: d.ID, Environment: d.Environment, App: d.App, Replicas: d.Replicas, Port: d.Port, Env: e.Env}
	if d.PromotedFrom != "" {
		cmd.Image = d.Image
	} else {
		cmd.Artifact = d.Artifact
	}
	if len(e.Secrets) > 0 {
		cmd.Secrets = map[string]string{}
	}
	for name, sealed := range e.Secrets {
		v, err := s.secrets.Unseal(sealed, d.Tenant, d.Environment, name)
		if err != nil {
			return api.Deploy{}, fmt.Errorf("secret %s: %w", name, err)
		}
		cmd.Secrets[name] = string(v)
	}
	return cmd, nil
}

// resendInterval is how often a connected runner is sent its unfinished
// deployments again: a command or report lost on the way is made good, and
// the runner only says where it is with those it has.
const resendInterval = 30 * time.Second

// keepDispatching sends a runner its unfinished deployments when it
// connects, and again every resendInterval while it stays connected.
func (s *Server) keepDispatching(rc *runnerConn, tenant string) {
	t := time.NewTicker(resendInterval)
	defer t.Stop()
	for {
		s.dispatchPending(rc, tenant)
		select {
		case <-rc.session.Done():
			return
		case <-t.C:
		}
	}
}

// dispatchPending sends a runner every deployment of its that has not
// finished: commands survive a restart of either side.
func (s *Server) dispatchPending(rc *runnerConn, tenant string) {
	ds, err := s.store.Deployments(tenant, func(d store.Deployment) bool { return d.Runner == rc.id && !api.Done(d.Phase) })
	if err != nil {
		s.log.Warn("pending deployments", "runner", rc.id, "err", err)
		return
	}
	for _, d := range ds {
		s.dispatch(rc, d)
	}
}

func (s *Server) setPhase(d store.Deployment, rep api.DeployReport) {
	_, err := s.store.UpdateDeployment(d.Tenant, d.ID, func(d *store.Deployment) error {
		apply(d, rep)
		return nil
	})
	if err != nil {
		s.log.Warn("update deployment", "deployment", d.ID, "err", err)
	}
}

func apply(d *store.Deployment, rep api.DeployReport) {
	d.Phase, d.Reason = rep.Phase, rep.Reason
	if rep.Image != "" {
		d.Image = rep.Image
	}
	if rep.URL != "" {
		d.URL = rep.URL
	}
}

// deploymentReport takes a runner's report on a deployment of its.
func (s *Server) deploymentReport(rc *runnerConn, w http.ResponseWriter, r *http.Request) {
	var rep api.DeployReport
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&rep); err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	if !slices.Contains([]string{api.PhaseValidating, api.PhaseBuilding, api.PhasePushing, api.PhaseRollingOut, api.PhaseRunning, api.PhaseFailed}, rep.Phase) {
		httpjson.Error(w, http.StatusBadRequest, "unknown phase "+rep.Phase)
		return
	}
	rn, err := s.store.Runner(rc.id)
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	d, err := s.store.UpdateDeployment(rn.Tenant, r.PathValue("id"), func(d *store.Deployment) error {
		if d.Runner != rc.id {
			return store.ErrNotFound
		}
		// A report from before a deployment ended (late, or resent) does
		// not reopen it.
		if api.Done(d.Phase) && !api.Done(rep.Phase) {
			return nil
		}
		apply(d, rep)
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		httpjson.Error(w, http.StatusNotFound, "no such deployment of this runner")
		return
	}
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.log.Info("deployment phase", "deployment", d.ID, "app", d.App, "env", d.Environment, "phase", d.Phase, "reason", d.Reason)
	w.WriteHeader(http.StatusNoContent)
}

// runnerArtifact serves a runner an artifact of its tenant's.
func (s *Server) runnerArtifact(rc *runnerConn, w http.ResponseWriter, r *http.Request) {
	sha := r.PathValue("sha")
	rn, err := s.store.Runner(rc.id)
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	if b, err := hex.DecodeString(sha); err != nil || len(b) != 32 {
		httpjson.Error(w, http.StatusBadRequest, "not a SHA-256: "+sha)
		return
	}
	ds, err := s.store.Deployments(rn.Tenant, func(d store.Deployment) bool { return d.Runner == rc.id && d.Artifact == sha })
	if err != nil || len(ds) == 0 {
		httpjson.Error(w, http.StatusNotFound, "no deployment of this runner uses artifact "+sha)
		return
	}
	f, err := os.Open(filepath.Join(s.artifactDir(), sha))
	if err != nil {
		httpjson.Error(w, http.StatusNotFound, "artifact "+sha+" is gone")
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/java-archive")
	http.ServeContent(w, r, sha+".jar", st.ModTime(), f)
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request, e store.Environment) {
	d, err := s.store.Deployment(e.Tenant, r.PathValue("id"))
	if err != nil || d.Environment != e.Name {
		httpjson.Error(w, http.StatusNotFound, "deployment not found")
		return
	}
	httpjson.Write(w, http.StatusOK, d)
}

func (s *Server) listDeployments(w http.ResponseWriter, _ *http.Request, e store.Environment) {
	ds, err := s.store.Deployments(e.Tenant, func(d store.Deployment) bool { return d.Environment == e.Name })
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	httpjson.Write(w, http.StatusOK, append([]store.Deployment{}, ds...))
}

func (s *Server) listApps(w http.ResponseWriter, _ *http.Request, e store.Environment) {
	apps, err := s.store.Apps(e.Tenant, e.Name)
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
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
	if rc := s.live(a.Runner); rc != nil {
		out.Connected = true
		var st api.AppStatus
		if err := rc.call(r.Context(), http.MethodGet, appPath(a, "status"), nil, &st); err == nil {
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
	rc := s.live(a.Runner)
	if rc == nil {
		httpjson.Error(w, http.StatusServiceUnavailable, "runner "+a.Runner+" is not connected")
		return
	}
	body, _ := json.Marshal(api.AppOp{Replicas: a.Replicas})
	var st api.AppStatus
	if err := rc.call(r.Context(), http.MethodPost, appPath(a, op), body, &st); err != nil {
		writeRunnerError(w, err)
		return
	}
	s.log.Info("app "+op, "tenant", a.Tenant, "env", a.Environment, "app", a.Name)
	httpjson.Write(w, http.StatusOK, st)
}

// appLogs streams the app's logs from its runner.
func (s *Server) appLogs(w http.ResponseWriter, r *http.Request, a store.App) {
	rc := s.live(a.Runner)
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
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://runner"+appPath(a, "logs")+"?"+q.Encode(), nil)
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	resp, err := rc.client.Do(req)
	if err != nil {
		httpjson.Error(w, http.StatusBadGateway, "runner did not answer: "+err.Error())
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

// runnerError is a runner's answer other than 2xx.
type runnerError struct {
	status int
	msg    string
}

func (e *runnerError) Error() string { return fmt.Sprintf("runner answered %d: %s", e.status, e.msg) }

func writeRunnerError(w http.ResponseWriter, err error) {
	var re *runnerError
	if errors.As(err, &re) {
		httpjson.Error(w, re.status, re.msg)
		return
	}
	httpjson.Error(w, http.StatusBadGateway, "runner did not answer: "+err.Error())
}

func (rc *runnerConn) callTimeout(d time.Duration, method, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return rc.call(ctx, method, path, body, out)
}

// call makes a request of the runner's local API and decodes its JSON
// answer into out (when not nil).
func (rc *runnerConn) call(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://runner"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := rc.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &runnerError{resp.StatusCode, httpjson.ErrorText(b)}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
