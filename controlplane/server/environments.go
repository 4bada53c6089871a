package server

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// tierEnvironments are the environments a tier may have; nil: any names
// (high adds custom ones to dev, staging and prod).
var tierEnvironments = map[string][]string{
	"low": {"prod"},
	"mid": {"dev", "prod"},
}

// allowEnvironment says whether tenant t may add an environment called name.
func allowEnvironment(name string) func(store.Tenant, []store.Environment) error {
	return func(t store.Tenant, _ []store.Environment) error {
		allowed, limited := tierEnvironments[t.Tier]
		if limited && !slices.Contains(allowed, name) {
			return &forbidden{fmt.Sprintf("tier %s allows only the environments %s; %q needs a higher tier", t.Tier, strings.Join(allowed, ", "), name)}
		}
		return nil
	}
}

type forbidden struct{ msg string }

func (f *forbidden) Error() string { return f.msg }

// envView is an environment as the API shows it: secret names, never
// values.
type envView struct {
	Name    string            `json:"name"`
	Created time.Time         `json:"created"`
	Env     map[string]string `json:"env"`
	Secrets []string          `json:"secrets"`
}

func view(e store.Environment) envView {
	v := envView{Name: e.Name, Created: e.Created, Env: e.Env, Secrets: []string{}}
	if v.Env == nil {
		v.Env = map[string]string{}
	}
	for name := range e.Secrets {
		v.Secrets = append(v.Secrets, name)
	}
	sort.Strings(v.Secrets)
	return v
}

func (s *Server) createEnvironment(w http.ResponseWriter, r *http.Request, t store.Tenant) {
	var req struct {
		Name string `json:"name"`
	}
	if !decode(w, r, &req) {
		return
	}
	if err := api.ValidName(req.Name); err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	e := store.Environment{Tenant: t.Name, Name: req.Name, Created: time.Now().UTC()}
	err := s.store.CreateEnvironment(e, allowEnvironment(req.Name))
	var fb *forbidden
	switch {
	case errors.As(err, &fb):
		httpjson.Error(w, http.StatusForbidden, fb.msg)
	case errors.Is(err, store.ErrExists):
		httpjson.Error(w, http.StatusConflict, "environment "+req.Name+" exists")
	case err != nil:
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
	default:
		httpjson.Write(w, http.StatusCreated, view(e))
	}
}

func (s *Server) listEnvironments(w http.ResponseWriter, _ *http.Request, t store.Tenant) {
	es, err := s.store.Environments(t.Name)
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []envView{}
	for _, e := range es {
		out = append(out, view(e))
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (s *Server) environmentScoped(h func(http.ResponseWriter, *http.Request, store.Environment)) http.HandlerFunc {
	return s.tenantScoped(func(w http.ResponseWriter, r *http.Request, t store.Tenant) {
		e, err := s.store.Environment(t.Name, r.PathValue("env"))
		if err != nil {
			httpjson.Error(w, http.StatusNotFound, "environment not found")
			return
		}
		h(w, r, e)
	})
}

func (s *Server) getEnvironment(w http.ResponseWriter, _ *http.Request, e store.Environment) {
	httpjson.Write(w, http.StatusOK, view(e))
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// putConfig replaces an environment's overlay: plain values and secrets.
// Secrets are sealed before they are stored and never shown again.
func (s *Server) putConfig(w http.ResponseWriter, r *http.Request, e store.Environment) {
	var req struct {
		Env     map[string]string `json:"env"`
		Secrets map[string]string `json:"secrets"`
	}
	if !decode(w, r, &req) {
		return
	}
	for name := range req.Env {
		if !envName.MatchString(name) {
			httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("env name %q is not a valid environment variable name", name))
			return
		}
	}
	sealed := map[string]string{}
	for name, value := range req.Secrets {
		if !envName.MatchString(name) {
			httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("secret name %q is not a valid environment variable name", name))
			return
		}
		if _, clash := req.Env[name]; clash {
			httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("%q is both a value and a secret", name))
			return
		}
		v, err := s.secrets.Seal([]byte(value), e.Tenant, e.Name, name)
		if err != nil {
			httpjson.Error(w, http.StatusInternalServerError, err.Error())
			return
		}
		sealed[name] = v
	}
	e, err := s.store.UpdateEnvironment(e.Tenant, e.Name, func(env *store.Environment) error {
		env.Env, env.Secrets = req.Env, sealed
		return nil
	})
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.log.Info("environment config replaced", "tenant", e.Tenant, "env", e.Name, "values", len(e.Env), "secrets", len(e.Secrets))
	httpjson.Write(w, http.StatusOK, view(e))
}
