package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// Tiers a tenant can be on.
var tiers = []string{"low", "mid", "high"}

// Bounds of a one-time token's lifetime.
const (
	defaultTokenTTL = 15 * time.Minute
	maxTokenTTL     = 24 * time.Hour
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if _, err := s.store.Meta("admin-token-created"); err != nil {
			httpjson.Error(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST "+api.EnrollPath, s.enroll)

	authed := http.NewServeMux()
	authed.HandleFunc("POST /api/v1/tenants", s.createTenant)
	authed.HandleFunc("GET /api/v1/tenants", s.listTenants)
	authed.HandleFunc("GET /api/v1/tenants/{tenant}", s.tenantScoped(s.getTenant))
	authed.HandleFunc("POST /api/v1/tenants/{tenant}/api-tokens", s.tenantScoped(s.createAPIToken))
	authed.HandleFunc("GET /api/v1/tenants/{tenant}/api-tokens", s.tenantScoped(s.listAPITokens))
	authed.HandleFunc("DELETE /api/v1/tenants/{tenant}/api-tokens/{id}", s.tenantScoped(s.revokeAPIToken))
	authed.HandleFunc("POST /api/v1/tenants/{tenant}/runner-tokens", s.tenantScoped(s.createRunnerToken))
	authed.HandleFunc("GET /api/v1/tenants/{tenant}/runners", s.tenantScoped(s.listRunners))
	authed.HandleFunc("POST /api/v1/tenants/{tenant}/environments", s.tenantScoped(s.createEnvironment))
	authed.HandleFunc("GET /api/v1/tenants/{tenant}/environments", s.tenantScoped(s.listEnvironments))
	authed.HandleFunc("GET /api/v1/tenants/{tenant}/environments/{env}", s.environmentScoped(s.getEnvironment))
	authed.HandleFunc("GET /api/v1/tenants/{tenant}/environments/{env}/config", s.environmentScoped(s.getEnvironment))
	authed.HandleFunc("PUT /api/v1/tenants/{tenant}/environments/{env}/config", s.environmentScoped(s.putConfig))
	env := "/api/v1/tenants/{tenant}/environments/{env}"
	authed.HandleFunc("POST "+env+"/deployments", s.environmentScoped(s.createDeployment))
	authed.HandleFunc("GET "+env+"/deployments", s.environmentScoped(s.listDeployments))
	authed.HandleFunc("GET "+env+"/deployments/{id}", s.environmentScoped(s.getDeployment))
	authed.HandleFunc("POST "+env+"/promotions", s.environmentScoped(s.promote))
	authed.HandleFunc("GET "+env+"/apps", s.environmentScoped(s.listApps))
	authed.HandleFunc("GET "+env+"/apps/{app}/status", s.appScoped(s.appStatus))
	authed.HandleFunc("GET "+env+"/apps/{app}/logs", s.appScoped(s.appLogs))
	authed.HandleFunc("POST "+env+"/apps/{app}/{op}", s.appScoped(s.appOp))
	authed.HandleFunc("POST /api/v1/tenants/{tenant}/apps/{app}/artifacts", s.tenantScoped(s.uploadArtifact))
	authed.HandleFunc("GET /api/v1/tenants/{tenant}/apps/{app}/artifacts", s.tenantScoped(s.listArtifacts))
	authed.HandleFunc("GET /api/v1/tenants/{tenant}/runners/{id}", s.runnerScoped(s.getRunner))
	authed.HandleFunc("DELETE /api/v1/tenants/{tenant}/runners/{id}", s.runnerScoped(s.revokeRunner))
	authed.HandleFunc("/api/v1/tenants/{tenant}/runners/{id}/proxy/{path...}", s.runnerScoped(s.proxy))
	mux.Handle("/api/v1/", s.authenticate(jsonErrors(authed)))
	return jsonErrors(mux)
}

// jsonErrors answers in JSON, like every other error, where mux itself
// would answer in text: a path it does not know (404) or a method the path
// does not take (405, with its Allow header).
func jsonErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		var code codeOnly
		h.ServeHTTP(&code, r)
		if allow := code.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		switch {
		case code.status == http.StatusMethodNotAllowed:
			httpjson.Error(w, code.status, r.Method+" is not allowed on "+r.URL.Path)
		case code.status == http.StatusNotFound:
			httpjson.Error(w, code.status, "no such path: "+r.URL.Path)
		default:
			// A redirect (a path cleaned, a trailing slash added).
			for k, v := range code.header {
				w.Header()[k] = v
			}
			w.WriteHeader(code.status)
		}
	})
}

// codeOnly keeps what a handler answers but its body.
type codeOnly struct {
	header http.Header
	status int
}

func (c *codeOnly) Header() http.Header {
	if c.header == nil {
		c.header = http.Header{}
	}
	return c.header
}

func (c *codeOnly) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return len(b), nil
}

func (c *codeOnly) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

// tenantScoped answers 404 for a tenant the caller may not see, as for one
// that does not exist: a tenant token learns nothing of other tenants.
func (s *Server) tenantScoped(h func(http.ResponseWriter, *http.Request, store.Tenant)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("tenant")
		if !who(r).canSee(name) {
			httpjson.Error(w, http.StatusNotFound, "tenant not found")
			return
		}
		t, err := s.store.Tenant(name)
		if errors.Is(err, store.ErrNotFound) {
			httpjson.Error(w, http.StatusNotFound, "tenant not found")
			return
		}
		if err != nil {
			httpjson.Error(w, http.StatusInternalServerError, err.Error())
			return
		}
		h(w, r, t)
	}
}

func (s *Server) runnerScoped(h func(http.ResponseWriter, *http.Request, store.Runner)) http.HandlerFunc {
	return s.tenantScoped(func(w http.ResponseWriter, r *http.Request, t store.Tenant) {
		rn, err := s.store.Runner(r.PathValue("id"))
		if err != nil || rn.Tenant != t.Name {
			httpjson.Error(w, http.StatusNotFound, "runner not found")
			return
		}
		h(w, r, rn)
	})
}

// decode reads the request body, one JSON object, into v; it answers 400
// and returns false if it cannot.
func decode(w http.ResponseWriter, r *http.Request, v any) bool { return decodeBody(w, r, v, false) }

// decodeIfAny is decode for an optional body: an empty one leaves v as it
// is.
func decodeIfAny(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeBody(w, r, v, true)
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	switch {
	case errors.Is(err, io.EOF) && optional:
		return true
	case errors.Is(err, io.EOF):
		err = errors.New("empty; want a JSON object")
	case err == nil && dec.Decode(&json.RawMessage{}) != io.EOF:
		err = errors.New("more after the JSON object")
	}
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, "bad request body: "+err.Error())
		return false
	}
	return true
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request) {
	if !who(r).admin() {
		httpjson.Error(w, http.StatusForbidden, "only the admin creates tenants")
		return
	}
	var req struct{ Name, Tier string }
	if !decode(w, r, &req) {
		return
	}
	if err := api.ValidName(req.Name); err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	if !slices.Contains(tiers, req.Tier) {
		httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("tier %q must be one of %v", req.Tier, tiers))
		return
	}
	t := store.Tenant{Name: req.Name, Tier: req.Tier, Created: time.Now().UTC()}
	if err := s.store.CreateTenant(t); errors.Is(err, store.ErrExists) {
		httpjson.Error(w, http.StatusConflict, "tenant "+req.Name+" exists")
		return
	} else if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	httpjson.Write(w, http.StatusCreated, t)
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) {
	all, err := s.store.Tenants()
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []store.Tenant{}
	for _, t := range all {
		if who(r).canSee(t.Name) {
			out = append(out, t)
		}
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (s *Server) getTenant(w http.ResponseWriter, _ *http.Request, t store.Tenant) {
	httpjson.Write(w, http.StatusOK, t)
}

func (s *Server) createAPIToken(w http.ResponseWriter, _ *http.Request, t store.Tenant) {
	tok, err := newAPIToken()
	hash := api.HashSecret([]byte(tok))
	if err == nil {
		err = s.store.CreateAPIToken(store.APIToken{Hash: hash, Tenant: t.Name, Created: time.Now().UTC()})
	}
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	httpjson.Write(w, http.StatusCreated, map[string]string{"tenant": t.Name, "token": tok, "id": store.APITokenID(hash)})
}

// apiTokenView is what the API shows of a token: never the token.
type apiTokenView struct {
	ID      string    `json:"id"`
	Tenant  string    `json:"tenant"`
	Created time.Time `json:"created"`
}

func (s *Server) listAPITokens(w http.ResponseWriter, _ *http.Request, t store.Tenant) {
	toks, err := s.store.APITokens(t.Name)
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]apiTokenView, 0, len(toks))
	for _, tok := range toks {
		out = append(out, apiTokenView{ID: store.APITokenID(tok.Hash), Tenant: tok.Tenant, Created: tok.Created})
	}
	slices.SortFunc(out, func(a, b apiTokenView) int { return a.Created.Compare(b.Created) })
	httpjson.Write(w, http.StatusOK, out)
}

func (s *Server) revokeAPIToken(w http.ResponseWriter, r *http.Request, t store.Tenant) {
	err := s.store.DeleteAPIToken(t.Name, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		httpjson.Error(w, http.StatusNotFound, "api token not found")
		return
	}
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.log.Info("api token revoked", "tenant", t.Name, "id", r.PathValue("id"))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) createRunnerToken(w http.ResponseWriter, r *http.Request, t store.Tenant) {
	var req struct {
		TTL string `json:"ttl"`
	}
	if !decodeIfAny(w, r, &req) {
		return
	}
	ttl := defaultTokenTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > maxTokenTTL {
			httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("ttl %q must be a duration up to %s", req.TTL, maxTokenTTL))
			return
		}
		ttl = d
	}
	tok, err := api.NewToken(s.CAHash(), s.opts.URL)
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	expires := time.Now().Add(ttl).UTC()
	if err := s.store.CreateRunnerToken(store.RunnerToken{Hash: tok.SecretHash(), Tenant: t.Name, Expires: expires}); err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	cmd := "cameleer token redeem " + tok.String()
	if s.opts.URL == "" {
		cmd += " --control-plane https://CONTROL-PLANE:PORT"
	}
	httpjson.Write(w, http.StatusCreated, map[string]any{"token": tok.String(), "expires": expires, "command": cmd})
}

// enroll redeems a one-time token: the runner's CSR is signed and the
// runner registered, or the request is refused with one line.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	req, tok, csr, err := api.ParseEnrollRequest(r.Body)
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	if tok.CAHash != s.CAHash() {
		httpjson.Error(w, http.StatusUnauthorized, "the token was made by another control plane")
		return
	}
	pub, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, "csr: "+err.Error())
		return
	}
	key := sha256.Sum256(pub)
	now := time.Now()
	var resp api.EnrollResponse
	_, err = s.store.Redeem(tok.SecretHash(), hex.EncodeToString(key[:]), now, func(tenant string, again *store.Runner) (store.Runner, error) {
		r := store.Runner{ID: newID(), Tenant: tenant, Name: req.Name, Created: now.UTC()}
		if again != nil {
			// The same host again, its first answer lost: the same runner,
			// a new certificate (the first one's serial is refused).
			r = *again
		}
		if r.Name == "" {
			r.Name = "runner-" + r.ID[:8]
		}
		cert, err := s.ca.SignRunner(csr.PublicKey, r.ID, tenant, now, s.opts.RunnerCertLifetime)
		if err != nil {
			return store.Runner{}, err
		}
		r.Serial, r.NotAfter = cert.SerialNumber.String(), cert.NotAfter
		resp = s.enrollment(r, cert)
		return r, nil
	})
	switch {
	case errors.Is(err, store.ErrTokenUnknown), errors.Is(err, store.ErrTokenUsed), errors.Is(err, store.ErrTokenExpired):
		httpjson.Error(w, http.StatusUnauthorized, err.Error())
	case errors.Is(err, store.ErrExists):
		httpjson.Error(w, http.StatusConflict, err.Error())
	case err != nil:
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
	default:
		s.log.Info("runner registered", "runner", resp.RunnerID, "tenant", resp.Tenant, "name", resp.Name)
		httpjson.Write(w, http.StatusCreated, resp)
	}
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// runnerView is a runner as the API shows it.
type runnerView struct {
	ID                string    `json:"id"`
	Name              string    `json:"name"`
	Connected         bool      `json:"connected"`
	LastSeen          time.Time `json:"lastSeen,omitzero"`
	Version           string    `json:"version,omitempty"`
	CertificateExpiry time.Time `json:"certificateExpiry"`
	Revoked           bool      `json:"revoked,omitempty"`
}

func (s *Server) view(r store.Runner) runnerView {
	v := runnerView{ID: r.ID, Name: r.Name, LastSeen: r.LastSeen, Version: r.Version, CertificateExpiry: r.NotAfter, Revoked: r.Revoked}
	if rc := s.live(r.ID); rc != nil {
		rc.mu.Lock()
		v.Connected, v.LastSeen, v.Version = true, rc.lastSeen, rc.version
		rc.mu.Unlock()
	}
	return v
}

func (s *Server) listRunners(w http.ResponseWriter, _ *http.Request, t store.Tenant) {
	rs, err := s.store.Runners(t.Name)
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []runnerView{}
	for _, r := range rs {
		out = append(out, s.view(r))
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (s *Server) getRunner(w http.ResponseWriter, _ *http.Request, r store.Runner) {
	httpjson.Write(w, http.StatusOK, s.view(r))
}

// revokeRunner refuses the runner's certificate from now on and closes its
// tunnel.
func (s *Server) revokeRunner(w http.ResponseWriter, _ *http.Request, r store.Runner) {
	r, err := s.store.UpdateRunner(r.ID, func(r *store.Runner) error { r.Revoked = true; return nil })
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.disconnect(r.ID)
	// Its unfinished deployments will not be taken by anyone.
	ds, err := s.store.Deployments(r.Tenant, func(d store.Deployment) bool { return d.Runner == r.ID && !api.Done(d.Phase) })
	if err != nil {
		s.log.Warn("deployments of a revoked runner", "runner", r.ID, "err", err)
	}
	for _, d := range ds {
		s.setPhase(d, api.DeployReport{Phase: api.PhaseFailed, Reason: "runner " + r.Name + " was revoked"})
	}
	s.log.Info("runner revoked", "runner", r.ID, "tenant", r.Tenant)
	httpjson.Write(w, http.StatusOK, s.view(r))
}
