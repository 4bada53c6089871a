// Package environments is where a tenant's apps run: the environments a
// tier allows, their config (values, and secrets sealed at rest), and
// their egress allow-list, which is sent to the runners that run apps
// there as soon as it changes and whenever they connect.
package environments

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/runners"
	"github.com/cameleer/cameleer/controlplane/secrets"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// tierEnvironments are the environments a tier may have; nil: any names
// (high adds custom ones to dev, staging and prod).
var tierEnvironments = map[string][]string{
	"low": {"prod"},
	"mid": {"dev", "prod"},
}

// Options configure the service.
type Options struct {
	Store   *store.Store
	Runners *runners.Hub
	Secrets *secrets.Box
	Log     *slog.Logger
}

// Service is every tenant's environments.
type Service struct{ opts Options }

// New makes the service.
func New(opts Options) *Service { return &Service{opts: opts} }

// Create adds an environment to a tenant, within its tier.
func (s *Service) Create(tenant, name string) (store.Environment, error) {
	if err := api.ValidName(name); err != nil {
		return store.Environment{}, httpjson.Errorf(http.StatusBadRequest, "%v", err)
	}
	e := store.Environment{Tenant: tenant, Name: name, Created: time.Now().UTC()}
	err := s.opts.Store.CreateEnvironment(e, func(t store.Tenant, _ []store.Environment) error {
		allowed, limited := tierEnvironments[t.Tier]
		if limited && !slices.Contains(allowed, name) {
			return httpjson.Errorf(http.StatusForbidden, "tier %s allows only the environments %s; %q needs a higher tier", t.Tier, strings.Join(allowed, ", "), name)
		}
		return nil
	})
	if errors.Is(err, store.ErrExists) {
		return e, httpjson.Errorf(http.StatusConflict, "environment %s exists", name)
	}
	return e, err
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// PutConfig replaces an environment's overlay: plain values and secrets.
// Secrets are sealed before they are stored and never shown again; keep
// names secrets set before that stay as they are (who edits the overlay
// need not know them).
func (s *Service) PutConfig(e store.Environment, env, plain map[string]string, keep []string) (store.Environment, error) {
	for name := range env {
		if !envName.MatchString(name) {
			return e, httpjson.Errorf(http.StatusBadRequest, "env name %q is not a valid environment variable name", name)
		}
	}
	sealed := map[string]string{}
	for name, value := range plain {
		if !envName.MatchString(name) {
			return e, httpjson.Errorf(http.StatusBadRequest, "secret name %q is not a valid environment variable name", name)
		}
		if _, clash := env[name]; clash {
			return e, httpjson.Errorf(http.StatusBadRequest, "%q is both a value and a secret", name)
		}
		v, err := s.opts.Secrets.Seal([]byte(value), secrets.Name{Tenant: e.Tenant, Environment: e.Name, Name: name})
		if err != nil {
			return e, fmt.Errorf("seal secret %s: %w", name, err)
		}
		sealed[name] = v
	}
	e, err := s.opts.Store.UpdateEnvironment(e.Tenant, e.Name, func(stored *store.Environment) error {
		for _, name := range keep {
			v, ok := stored.Secrets[name]
			switch {
			case !ok:
				return httpjson.Errorf(http.StatusBadRequest, "secret %q is not set, so it cannot be kept: give its value", name)
			case sealed[name] != "":
				return httpjson.Errorf(http.StatusBadRequest, "secret %q is both given and kept", name)
			}
			if _, clash := env[name]; clash {
				return httpjson.Errorf(http.StatusBadRequest, "%q is both a value and a secret", name)
			}
			sealed[name] = v
		}
		stored.Env, stored.Secrets = env, sealed
		return nil
	})
	if err != nil {
		return e, fmt.Errorf("replace the config of %s: %w", e.Name, err)
	}
	s.opts.Log.Info("environment config replaced", "tenant", e.Tenant, "env", e.Name, "values", len(e.Env), "secrets", len(e.Secrets))
	return e, nil
}

// PutEgress replaces what an environment's apps may reach outside it, and
// sends it to the connected runners that run apps there; the others get it
// when they connect, and with every deployment.
func (s *Service) PutEgress(e store.Environment, allow []api.EgressRule) (store.Environment, error) {
	allow, err := api.CheckEgress(allow)
	if err != nil {
		return e, httpjson.Errorf(http.StatusBadRequest, "%v", err)
	}
	e, err = s.opts.Store.UpdateEnvironment(e.Tenant, e.Name, func(stored *store.Environment) error {
		stored.Egress = api.Egress{Revision: stored.Egress.Revision + 1, Allow: allow}
		return nil
	})
	if err != nil {
		return e, fmt.Errorf("replace the egress of %s: %w", e.Name, err)
	}
	s.opts.Log.Info("environment egress replaced", "tenant", e.Tenant, "env", e.Name, "rules", len(allow), "revision", e.Egress.Revision)
	ids, err := s.runnersIn(e)
	if err != nil {
		s.opts.Log.Warn("egress not sent: runners of the environment", "tenant", e.Tenant, "env", e.Name, "err", err)
	}
	for _, id := range ids {
		if rc := s.opts.Runners.Live(id); rc != nil {
			go s.sendEgress(rc, e)
		}
	}
	return e, nil
}

// runnersIn names the runners that run apps in an environment.
func (s *Service) runnersIn(e store.Environment) ([]string, error) {
	apps, err := s.opts.Store.Apps(e.Tenant, e.Name)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, a := range apps {
		if !slices.Contains(ids, a.Runner) {
			ids = append(ids, a.Runner)
		}
	}
	return ids, nil
}

// sendEgress tells a runner an environment's egress. One that misses it
// gets it again when it next connects.
func (s *Service) sendEgress(rc *runners.Conn, e store.Environment) {
	err := rc.CallTimeout(time.Minute, http.MethodPut, api.RunnerAppsPath+e.Name+api.RunnerEgressPath, e.Egress, nil)
	var se *httpjson.StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound && rc.APIVersion() < api.VersionEgress {
		s.opts.Log.Warn("the runner is too old to take an environment's egress: upgrade it", "runner", rc.ID,
			"apiVersion", rc.APIVersion(), "needs", api.VersionEgress, "tenant", e.Tenant, "env", e.Name)
		return
	}
	if err != nil {
		s.opts.Log.Warn("egress not taken by the runner; it is sent again when the runner connects", "runner", rc.ID,
			"tenant", e.Tenant, "env", e.Name, "revision", e.Egress.Revision, "err", err)
		return
	}
	s.opts.Log.Info("egress sent", "runner", rc.ID, "tenant", e.Tenant, "env", e.Name, "revision", e.Egress.Revision)
}

// Connected tells a runner that just connected the egress of every
// environment it runs apps in: a change made while it was away, or lost,
// is made good.
func (s *Service) Connected(rc *runners.Conn) {
	envs, err := s.opts.Store.Environments(rc.Tenant)
	if err != nil {
		s.opts.Log.Warn("egress not sent: environments", "runner", rc.ID, "err", err)
		return
	}
	for _, e := range envs {
		ids, err := s.runnersIn(e)
		if err != nil {
			s.opts.Log.Warn("egress not sent: runners of the environment", "tenant", rc.Tenant, "env", e.Name, "err", err)
			continue
		}
		if slices.Contains(ids, rc.ID) {
			s.sendEgress(rc, e)
		}
	}
}
