package server

import (
	"net/http"
	"sort"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// envView is an environment as the API shows it: secret names, never
// values.
type envView struct {
	Name    string            `json:"name"`
	Created time.Time         `json:"created"`
	Env     map[string]string `json:"env"`
	Secrets []string          `json:"secrets"`
	// Egress is what its apps may reach outside it.
	Egress []api.EgressRule `json:"egress"`
}

func view(e store.Environment) envView {
	v := envView{Name: e.Name, Created: e.Created, Env: e.Env, Secrets: []string{}, Egress: allowList(e)}
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
	if !s.decode(w, r, &req, false) {
		return
	}
	e, err := s.environments.Create(t.Name, req.Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, view(e))
}

func (s *Server) listEnvironments(w http.ResponseWriter, r *http.Request, t store.Tenant) {
	es, err := s.store.Environments(t.Name)
	if err != nil {
		s.fail(w, r, err)
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

// putConfig replaces an environment's overlay: plain values and secrets,
// which are never shown again, but for those it keeps as they were.
func (s *Server) putConfig(w http.ResponseWriter, r *http.Request, e store.Environment) {
	var req struct {
		Env     map[string]string `json:"env"`
		Secrets map[string]string `json:"secrets"`
		// KeepSecrets are secrets set before that stay as they are.
		KeepSecrets []string `json:"keepSecrets"`
	}
	if !s.decode(w, r, &req, false) {
		return
	}
	e, err := s.environments.PutConfig(e, req.Env, req.Secrets, req.KeepSecrets)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, view(e))
}

// egressBody is the API's form of an environment's egress.
type egressBody struct {
	Allow []api.EgressRule `json:"allow"`
}

func allowList(e store.Environment) []api.EgressRule {
	return append([]api.EgressRule{}, e.Egress.Allow...)
}

func (s *Server) getEgress(w http.ResponseWriter, _ *http.Request, e store.Environment) {
	httpjson.Write(w, http.StatusOK, egressBody{Allow: allowList(e)})
}

// putEgress replaces what an environment's apps may reach outside it.
func (s *Server) putEgress(w http.ResponseWriter, r *http.Request, e store.Environment) {
	var req egressBody
	if !s.decode(w, r, &req, false) {
		return
	}
	e, err := s.environments.PutEgress(e, req.Allow)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, egressBody{Allow: allowList(e)})
}
