// Package deployments runs apps on runners: a deployment is accepted (the
// checks and the write in one transaction), sent to its runner through the
// tunnel and sent again until the runner has it, moved through its phases
// by the runner's reports, and, once it runs, makes the image what the
// app's promotions copy. Every phase transition is in this file.
package deployments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/enrollment"
	"github.com/cameleer/cameleer/controlplane/runners"
	"github.com/cameleer/cameleer/controlplane/secrets"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// MaxReplicas bounds what one deployment asks of a runner.
const MaxReplicas = 20

// ResendInterval is how often a connected runner is sent its unfinished
// deployments again: a command or report lost on the way is made good, and
// the runner only says where it is with those it has.
const ResendInterval = 30 * time.Second

// Options configure the service.
type Options struct {
	Store   *store.Store
	Runners *runners.Hub
	Secrets *secrets.Box
	// Keep is how many finished deployments of an app in an environment
	// are kept, beside the one that runs.
	Keep int
	Log  *slog.Logger
}

// Service is the deployments of every tenant.
type Service struct{ opts Options }

// New makes the service.
func New(opts Options) *Service { return &Service{opts: opts} }

// Request is a deployment of an uploaded artifact.
type Request struct {
	Tenant      string `json:"-"`
	Environment string `json:"-"`
	App         string `json:"app"`
	Artifact    string `json:"artifact"`
	Runner      string `json:"runner"`
	Replicas    int    `json:"replicas"`
	Port        int    `json:"port"`
}

// Create accepts a deployment of an uploaded artifact to a runner of the
// tenant and hands it to the runner. Refusals are *httpjson.StatusError.
func (s *Service) Create(req Request) (store.Deployment, error) {
	if err := api.ValidName(req.App); err != nil {
		return store.Deployment{}, httpjson.Errorf(http.StatusBadRequest, "%v", err)
	}
	arts, err := s.opts.Store.Artifacts(req.Tenant, req.App)
	if err != nil {
		return store.Deployment{}, fmt.Errorf("artifacts of %s: %w", req.App, err)
	}
	if !slices.ContainsFunc(arts, func(a store.Artifact) bool { return a.SHA256 == req.Artifact }) {
		return store.Deployment{}, httpjson.Errorf(http.StatusNotFound, "app %s has no artifact %q: upload it first", req.App, req.Artifact)
	}
	d := store.Deployment{Tenant: req.Tenant, Environment: req.Environment, App: req.App, Artifact: req.Artifact,
		Replicas: req.Replicas, Port: req.Port}
	return s.start(d, req.Runner)
}

// Promote deploys the image an app runs in environment from to environment
// to, with to's config: the same digest, no rebuild. replicas 0 keeps the
// app's.
func (s *Service) Promote(tenant, to, app, from string, replicas int) (store.Deployment, error) {
	if from == to {
		return store.Deployment{}, httpjson.Errorf(http.StatusBadRequest, "an app is promoted from another environment")
	}
	a, err := s.opts.Store.App(tenant, from, app)
	if err != nil {
		return store.Deployment{}, httpjson.Errorf(http.StatusNotFound, "no app %s in environment %s", app, from)
	}
	if a.Running == "" {
		return store.Deployment{}, httpjson.Errorf(http.StatusConflict, "app %s has not run in %s yet: nothing to promote", app, from)
	}
	if replicas == 0 {
		replicas = a.Replicas
	}
	// The image lives in that runner's registry. Artifact, replicas and
	// port are those of the deployment that runs it.
	d := store.Deployment{Tenant: tenant, Environment: to, App: app, Artifact: a.Artifact,
		Image: a.Running, PromotedFrom: from, Replicas: replicas, Port: a.Port}
	return s.start(d, a.Runner)
}

// Delete deletes an app: its runner removes it and all it is made of (its
// instances, its route, the originals it keeps of its exchanges), then its
// record goes; its deployments stay, as its history. Not while one of its
// deployments is under way. A delete the runner did not finish leaves the
// app marked deleting, taking no deployment, until it is asked again.
// Refusals are *httpjson.StatusError.
func (s *Service) Delete(ctx context.Context, tenant, env, app string) error {
	a, err := s.opts.Store.App(tenant, env, app)
	if errors.Is(err, store.ErrNotFound) {
		return httpjson.Errorf(http.StatusNotFound, "no app %s in environment %s", app, env)
	}
	if err != nil {
		return err
	}
	rc := s.opts.Runners.Live(a.Runner)
	if rc == nil {
		return httpjson.Errorf(http.StatusServiceUnavailable, "runner %s of app %s is not connected: nothing was deleted", a.Runner, app)
	}
	_, err = s.opts.Store.UpdateApp(tenant, env, app, func(a *store.App) error {
		if !a.Deleting && !api.Done(a.Phase) {
			return httpjson.Errorf(http.StatusConflict, "deployment %s of app %s is %s: wait for its end, then delete the app", a.Deployment, app, a.Phase)
		}
		a.Deleting, a.Updated = true, time.Now().UTC()
		return nil
	})
	if err != nil {
		return err
	}
	if err := rc.Call(ctx, http.MethodDelete, api.RunnerAppsPath+env+"/apps/"+app, nil, nil); err != nil {
		status := http.StatusBadGateway
		if se := (*httpjson.StatusError)(nil); errors.As(err, &se) {
			status, err = se.Status, errors.New(se.Msg)
		}
		return httpjson.Errorf(status, "runner %s did not delete app %s (%v): delete it again", a.Runner, app, err)
	}
	if err := s.opts.Store.DeleteApp(tenant, env, app); err != nil {
		return err
	}
	s.opts.Log.Info("app deleted", "tenant", tenant, "env", env, "app", app, "runner", a.Runner)
	return nil
}

// start checks the runner and the request, records d and dispatches it.
func (s *Service) start(d store.Deployment, runner string) (store.Deployment, error) {
	if runner == "" {
		// A tenant with one runner need not name it.
		rs, err := s.opts.Store.Runners(d.Tenant)
		if err != nil {
			return d, fmt.Errorf("runners of %s: %w", d.Tenant, err)
		}
		rs = slices.DeleteFunc(rs, func(r store.Runner) bool { return r.Revoked })
		if len(rs) != 1 {
			return d, httpjson.Errorf(http.StatusBadRequest, "name the runner to deploy to: the tenant has %d", len(rs))
		}
		runner = rs[0].ID
	}
	rn, err := s.opts.Store.Runner(runner)
	if err != nil || rn.Tenant != d.Tenant {
		return d, httpjson.Errorf(http.StatusNotFound, "runner %s not found", runner)
	}
	if rn.Revoked {
		return d, httpjson.Errorf(http.StatusConflict, "runner %s is revoked", runner)
	}
	if d.Replicas == 0 {
		d.Replicas = 1
	}
	if d.Replicas < 1 || d.Replicas > MaxReplicas {
		return d, httpjson.Errorf(http.StatusBadRequest, "replicas must be 1 to %d", MaxReplicas)
	}
	if d.Port == 0 {
		d.Port = api.DefaultAppPort
	}
	if d.Port < 1 || d.Port > 65535 || d.Port == api.AgentPort {
		return d, httpjson.Errorf(http.StatusBadRequest, "port %d is not a port the app can serve HTTP on", d.Port)
	}
	now := time.Now().UTC()
	d.ID, d.Runner, d.Phase, d.Created, d.Updated = newID(), rn.ID, api.PhaseValidating, now, now
	if s.opts.Runners.Live(rn.ID) == nil {
		d.Reason = "waiting for runner " + rn.Name + " to connect"
	}
	if err := s.opts.Store.CreateDeployment(d, s.opts.Keep, func(a *store.App, _ bool) error { return accept(a, d) }); err != nil {
		return d, err
	}
	s.opts.Log.Info("deployment created", "deployment", d.ID, "tenant", d.Tenant, "env", d.Environment, "app", d.App,
		"runner", d.Runner, "artifact", d.Artifact, "promotedFrom", d.PromotedFrom)
	// Looked up after the deployment is stored: a runner that connected
	// meanwhile has it from its own pending list or from here (it takes a
	// deployment once).
	if rc := s.opts.Runners.Live(rn.ID); rc != nil {
		go s.dispatch(rc, d)
	}
	return d, nil
}

// newID sorts by creation time, so a tenant's deployments list in the
// order they were made.
func newID() string {
	return fmt.Sprintf("%016x", time.Now().UnixNano()) + enrollment.NewID()[:8]
}

// accept makes d its app's latest deployment, or refuses it: an app runs
// on one runner, so one that runs, or is being deployed, on another is
// deployed there. It runs in the transaction that stores d, so two
// deployments of one app to two runners at once cannot both pass.
func accept(a *store.App, d store.Deployment) error {
	if a.Deleting {
		return httpjson.Errorf(http.StatusConflict, "app %s in %s is being deleted: delete it again to finish, then deploy it", d.App, d.Environment)
	}
	if a.Runner != "" && a.Runner != d.Runner && (a.Running != "" || !api.Done(a.Phase)) {
		what := "runs"
		if a.Running == "" {
			what = "is being deployed"
		}
		return httpjson.Errorf(http.StatusConflict, "app %s %s in %s on runner %s: deploy it there", d.App, what, d.Environment, a.Runner)
	}
	a.Runner, a.Deployment = d.Runner, d.ID
	if a.Running == "" {
		// Until a version runs, the app is what it is being made of;
		// after, what runs (a failed deployment changes nothing).
		a.Artifact, a.Replicas, a.Port = d.Artifact, d.Replicas, d.Port
	}
	// URL stays: the app answers there until the new version replaces it.
	a.Phase, a.Reason, a.Image, a.Updated = d.Phase, d.Reason, d.Image, d.Updated
	return nil
}

// move takes d (and its app, when d is the app's latest) to the phase rep
// reports. A report from before a deployment ended (late, or resent) does
// not reopen it.
func move(d *store.Deployment, a *store.App, rep api.DeployReport) {
	if api.Done(d.Phase) && !api.Done(rep.Phase) {
		return
	}
	d.Phase, d.Reason = rep.Phase, rep.Reason
	if rep.Image != "" {
		d.Image = rep.Image
	}
	if rep.URL != "" {
		d.URL = rep.URL
	}
	if a == nil {
		return
	}
	a.Phase, a.Reason, a.Image, a.URL = d.Phase, d.Reason, d.Image, d.URL
	if d.Phase == api.PhaseRunning {
		// What runs is what a promotion copies.
		a.Running, a.RunningDeployment = d.Image, d.ID
		a.Artifact, a.Replicas, a.Port = d.Artifact, d.Replicas, d.Port
	}
}

// set moves d to the phase rep says, and logs a failure to.
func (s *Service) set(d store.Deployment, rep api.DeployReport) {
	_, err := s.opts.Store.UpdateDeployment(store.DeploymentKey{Tenant: d.Tenant, ID: d.ID}, func(d *store.Deployment, a *store.App) error {
		move(d, a, rep)
		return nil
	})
	if err != nil {
		s.opts.Log.Warn("update deployment", "deployment", d.ID, "err", err)
	}
}

// Report takes a runner's report on a deployment of its.
func (s *Service) Report(rc *runners.Conn, id string, rep api.DeployReport) error {
	if !api.KnownPhase(rep.Phase) {
		return httpjson.Errorf(http.StatusBadRequest, "unknown phase %s", rep.Phase)
	}
	d, err := s.opts.Store.UpdateDeployment(store.DeploymentKey{Tenant: rc.Tenant, ID: id}, func(d *store.Deployment, a *store.App) error {
		if d.Runner != rc.ID {
			return store.ErrNotFound
		}
		move(d, a, rep)
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return httpjson.Errorf(http.StatusNotFound, "no such deployment of this runner")
	}
	if err != nil {
		return fmt.Errorf("report on deployment %s: %w", id, err)
	}
	s.opts.Log.Info("deployment phase", "deployment", d.ID, "app", d.App, "env", d.Environment, "phase", d.Phase, "reason", d.Reason)
	return nil
}

// Uses says whether a deployment of the runner's uses the artifact: what
// it may download.
func (s *Service) Uses(rc *runners.Conn, sha string) (bool, error) {
	ds, err := s.opts.Store.Deployments(rc.Tenant, func(d store.Deployment) bool { return d.Runner == rc.ID && d.Artifact == sha })
	return len(ds) > 0, err
}

// RunnerRevoked fails the unfinished deployments of a revoked runner: no
// one will take them.
func (s *Service) RunnerRevoked(r store.Runner) {
	ds, err := s.opts.Store.Deployments(r.Tenant, func(d store.Deployment) bool { return d.Runner == r.ID && !d.Done() })
	if err != nil {
		s.opts.Log.Warn("deployments of a revoked runner", "runner", r.ID, "err", err)
	}
	for _, d := range ds {
		s.set(d, api.DeployReport{Phase: api.PhaseFailed, Reason: "runner " + r.Name + " was revoked"})
	}
}

// dispatch sends a deployment to its runner with the environment's config
// as it is now, its secrets unsealed. A runner that does not take it gets it
// again from KeepDispatching: within ResendInterval, or when it reconnects.
func (s *Service) dispatch(rc *runners.Conn, d store.Deployment) {
	log := s.opts.Log.With("deployment", d.ID, "runner", rc.ID)
	cmd, err := s.command(d)
	if err != nil {
		log.Warn("deployment cannot be sent", "err", err)
		s.set(d, api.DeployReport{Phase: api.PhaseFailed, Reason: string(api.PhaseValidating) + ": " + err.Error()})
		return
	}
	err = rc.CallTimeout(time.Minute, http.MethodPost, api.RunnerDeploymentsPath, cmd, nil)
	var refused *httpjson.StatusError
	switch {
	case err == nil:
	case errors.As(err, &refused) && (refused.Status < 502 || refused.Status > 504):
		// The runner answered, and not with a gateway's trouble: it will
		// not take this deployment, now or later.
		s.set(d, api.DeployReport{Phase: api.PhaseFailed, Reason: "the runner refused it: " + refused.Msg})
	default:
		log.Warn("deployment not taken by the runner yet; it is sent again", "err", err, "in", ResendInterval)
	}
}

// command is what the runner is told to do for d.
func (s *Service) command(d store.Deployment) (api.Deploy, error) {
	e, err := s.opts.Store.Environment(d.Tenant, d.Environment)
	if err != nil {
		return api.Deploy{}, fmt.Errorf("environment %s: %w", d.Environment, err)
	}
	cmd := api.Deploy{ID: d.ID, Environment: d.Environment, App: d.App, Replicas: d.Replicas, Port: d.Port, Env: e.Env, Egress: e.Egress}
	if d.PromotedFrom != "" {
		cmd.Image = d.Image
	} else {
		cmd.Artifact = d.Artifact
	}
	if len(e.Secrets) > 0 {
		cmd.Secrets = map[string]string{}
	}
	for name, sealed := range e.Secrets {
		v, err := s.opts.Secrets.Unseal(sealed, secrets.Name{Tenant: d.Tenant, Environment: d.Environment, Name: name})
		if err != nil {
			return api.Deploy{}, fmt.Errorf("secret %s: %w", name, err)
		}
		cmd.Secrets[name] = string(v)
	}
	return cmd, nil
}

// KeepDispatching sends a runner that just connected its unfinished
// deployments, and again every ResendInterval while it stays connected.
func (s *Service) KeepDispatching(rc *runners.Conn) {
	t := time.NewTicker(ResendInterval)
	defer t.Stop()
	for {
		s.dispatchPending(rc)
		select {
		case <-rc.Done():
			return
		case <-t.C:
		}
	}
}

// dispatchPending sends a runner every deployment of its that has not
// finished: commands survive a restart of either side.
func (s *Service) dispatchPending(rc *runners.Conn) {
	ds, err := s.opts.Store.Deployments(rc.Tenant, func(d store.Deployment) bool { return d.Runner == rc.ID && !d.Done() })
	if err != nil {
		s.opts.Log.Warn("pending deployments", "runner", rc.ID, "err", err)
		return
	}
	for _, d := range ds {
		s.dispatch(rc, d)
	}
}
