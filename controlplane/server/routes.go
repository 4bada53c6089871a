package server

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/enrollment"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
	"github.com/cameleer/cameleer/web"
)

// Tiers a tenant can be on.
var tiers = []string{"low", "mid", "high"}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.store.Meta("admin-token-created"); err != nil {
			s.log.Error("not ready: the state file does not answer", "requestId", requestID(r), "err", err)
			httpjson.Error(w, http.StatusServiceUnavailable, "the state file does not answer")
			return
		}
		w.Write([]byte("ok\n"))
	})
	// The metrics count across tenants: the admin's to see.
	mux.Handle("GET /metrics", s.authenticate(needs(controlPlane, promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP)))
	mux.HandleFunc("POST "+api.EnrollPath, s.enroll)
	s.installRoutes(mux)

	authed := http.NewServeMux()
	for _, rt := range s.apiRoutes() {
		authed.HandleFunc(rt.pattern, s.audited(rt.pattern, needs(rt.needs, rt.h)))
	}
	mux.Handle("/api/v1/", s.authenticate(jsonErrors(authed)))
	// Every other page is the console's: it routes in the browser, and
	// sets its own content policy (it runs its script).
	console := web.Handler()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpjson.Error(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
			return
		}
		console.ServeHTTP(w, r)
	})
	return withRequestID(secureHeaders(jsonErrors(mux)))
}

// apiRoute is one route of the API with the role it needs.
type apiRoute struct {
	pattern string
	needs   role
	h       http.HandlerFunc
}

// apiRoutes are the routes a token reaches, each with the least role that
// may call it: reads are a viewer's, changes to apps an operator's, the
// tenant's own setup an admin's (docs/controlplane.md, Roles).
func (s *Server) apiRoutes() []apiRoute {
	t := "/api/v1/tenants/{tenant}"
	env := t + "/environments/{env}"
	app := env + "/apps/{app}"
	return []apiRoute{
		{"GET /api/v1/admin-tokens", controlPlane, s.listAdminTokens},
		{"POST /api/v1/admin-tokens", controlPlane, s.createAdminToken},
		{"DELETE /api/v1/admin-tokens/{id}", controlPlane, s.revokeAdminToken},
		{"POST /api/v1/tenants", controlPlane, s.createTenant},
		{"GET /api/v1/audit", controlPlane, s.controlPlaneAudit},
		{"GET /api/v1/tenants", viewer, s.listTenants},
		{"GET " + t, viewer, s.tenantScoped(s.getTenant)},
		// A tenant's own token must not keep more than the operator of the
		// control plane agreed to store.
		{"PUT " + t + "/retention", controlPlane, s.tenantScoped(s.putRetention)},
		{"POST " + t + "/api-tokens", admin, s.tenantScoped(s.createAPIToken)},
		{"GET " + t + "/api-tokens", admin, s.tenantScoped(s.listAPITokens)},
		{"DELETE " + t + "/api-tokens/{id}", admin, s.tenantScoped(s.revokeAPIToken)},
		{"POST " + t + "/runner-tokens", admin, s.tenantScoped(s.createRunnerToken)},
		{"GET " + t + "/audit", admin, s.tenantScoped(s.tenantAudit)},
		{"GET " + t + "/runners", viewer, s.tenantScoped(s.listRunners)},
		{"GET " + t + "/runners/{id}", viewer, s.runnerScoped(s.getRunner)},
		{"DELETE " + t + "/runners/{id}", admin, s.runnerScoped(s.revokeRunner)},
		// Logs and the host's facts: the tenant's admin's, not a viewer's.
		{"GET " + t + "/runners/{id}/support-bundle", admin, s.runnerScoped(s.supportBundle)},
		{"POST " + t + "/runners/{id}/upgrade", admin, s.runnerScoped(s.upgradeRunner)},
		// The proxy reaches only the runner's read-only paths (proxyReads).
		{t + "/runners/{id}/proxy/{path...}", viewer, s.runnerScoped(s.proxy)},
		{"POST " + t + "/environments", admin, s.tenantScoped(s.createEnvironment)},
		{"GET " + t + "/environments", viewer, s.tenantScoped(s.listEnvironments)},
		{"GET " + env, viewer, s.environmentScoped(s.getEnvironment)},
		{"GET " + env + "/config", viewer, s.environmentScoped(s.getEnvironment)},
		{"PUT " + env + "/config", admin, s.environmentScoped(s.putConfig)},
		{"GET " + env + "/egress", viewer, s.environmentScoped(s.getEgress)},
		{"PUT " + env + "/egress", admin, s.environmentScoped(s.putEgress)},
		{"POST " + env + "/deployments", operator, s.environmentScoped(s.createDeployment)},
		{"GET " + env + "/deployments", viewer, s.environmentScoped(s.listDeployments)},
		{"GET " + env + "/deployments/{id}", viewer, s.environmentScoped(s.getDeployment)},
		{"POST " + env + "/promotions", operator, s.environmentScoped(s.promote)},
		{"GET " + env + "/apps", viewer, s.environmentScoped(s.listApps)},
		{"GET " + app + "/status", viewer, s.appScoped(s.appStatus)},
		{"GET " + app + "/logs", viewer, s.appScoped(s.appLogs)},
		{"POST " + app + "/{op}", operator, s.appScoped(s.appOp)},
		{"DELETE " + app, operator, s.environmentScoped(s.deleteApp)},
		{"GET " + app + "/exchanges", viewer, s.appRecords(s.listExchanges)},
		{"GET " + app + "/exchanges/{id}", viewer, s.appRecords(s.getExchange)},
		// An edited message is an admin's alone: the handler checks.
		{"POST " + app + "/exchanges/{id}/replay", operator, s.environmentScoped(s.replayExchange)},
		{"GET " + app + "/exchanges/{id}/replays", viewer, s.appRecords(s.listReplays)},
		{"POST " + app + "/bulk-replays", operator, s.appScoped(s.startBulk)},
		{"GET " + app + "/bulk-replays", viewer, s.appScoped(s.listBulks)},
		{"GET " + app + "/bulk-replays/{id}", viewer, s.appScoped(s.getBulk)},
		{"POST " + app + "/bulk-replays/{id}/{op}", operator, s.appScoped(s.controlBulk)},
		{"GET " + app + "/routes", viewer, s.appRecords(s.listRoutes)},
		{"GET " + app + "/series", viewer, s.appRecords(s.series)},
		{"POST " + t + "/apps/{app}/artifacts", operator, s.tenantScoped(s.uploadArtifact)},
		{"GET " + t + "/apps/{app}/artifacts", viewer, s.tenantScoped(s.listArtifacts)},
	}
}

// secureHeaders keeps a browser from reading any answer as anything but
// what it says it is, or framing it, or running what it holds: the API
// answers JSON, and proxied answers come from runners.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
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
			s.fail(w, r, err)
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

// decode reads the request's body into v (see httpjson.Decode), or
// answers why it cannot and returns false.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	if err := httpjson.Decode(w, r, v, optional); err != nil {
		s.fail(w, r, err)
		return false
	}
	return true
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name, Tier    string
		RetentionDays int
	}
	if !s.decode(w, r, &req, false) {
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
	if err := checkRetention(req.RetentionDays); err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	t := store.Tenant{Name: req.Name, Tier: req.Tier, Created: time.Now().UTC(), RetentionDays: req.RetentionDays}
	if err := s.store.CreateTenant(t); errors.Is(err, store.ErrExists) {
		httpjson.Error(w, http.StatusConflict, "tenant "+req.Name+" exists")
		return
	} else if err != nil {
		s.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, t)
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) {
	all, err := s.store.Tenants()
	if err != nil {
		s.fail(w, r, err)
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

// maxRetentionDays bounds a tenant's telemetry retention: ten years.
const maxRetentionDays = 3650

func checkRetention(days int) error {
	if days < 0 || days > maxRetentionDays {
		return fmt.Errorf("retentionDays %d must be from 1 to %d (0: the control plane's default)", days, maxRetentionDays)
	}
	return nil
}

// putRetention sets how long a tenant's telemetry is kept; what is older
// goes at the next retention pass.
func (s *Server) putRetention(w http.ResponseWriter, r *http.Request, t store.Tenant) {
	var req struct {
		Days int `json:"days"`
	}
	if !s.decode(w, r, &req, false) {
		return
	}
	if err := checkRetention(req.Days); err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	t, err := s.store.SetRetention(t.Name, req.Days)
	s.answer(w, r, t, err)
}

func (s *Server) createAPIToken(w http.ResponseWriter, r *http.Request, t store.Tenant) {
	var req struct {
		Role string `json:"role"`
	}
	if !s.decode(w, r, &req, true) {
		return
	}
	ro, err := parseRole(req.Role)
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	s.newAPIToken(w, r, t.Name, ro)
}

// newAPIToken makes an API token of tenant ("": a control plane admin
// token) with role and answers with it: the only time it is shown.
func (s *Server) newAPIToken(w http.ResponseWriter, r *http.Request, tenant string, ro role) {
	tok, err := newAPIToken()
	hash := api.HashSecret([]byte(tok))
	st := store.APIToken{Hash: hash, Tenant: tenant, Created: time.Now().UTC()}
	if tenant != "" {
		st.Role = ro.String()
	}
	if err == nil {
		err = s.store.CreateAPIToken(st, s.opts.Limits.APITokens)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := map[string]string{"token": tok, "id": store.APITokenID(hash)}
	if tenant != "" {
		out["tenant"] = tenant
		out["role"] = st.Role
	}
	s.log.Info("api token created", "tenant", tenant, "id", out["id"], "role", st.Role)
	httpjson.Write(w, http.StatusCreated, out)
}

// apiTokenView is what the API shows of a token: never the token.
type apiTokenView struct {
	ID      string    `json:"id"`
	Tenant  string    `json:"tenant,omitempty"`
	Role    string    `json:"role,omitempty"`
	Created time.Time `json:"created"`
}

func (s *Server) listAPITokens(w http.ResponseWriter, r *http.Request, t store.Tenant) {
	s.listTokens(w, r, t.Name)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, tenant string) {
	toks, err := s.store.APITokens(tenant)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]apiTokenView, 0, len(toks))
	for _, tok := range toks {
		v := apiTokenView{ID: store.APITokenID(tok.Hash), Tenant: tok.Tenant, Created: tok.Created}
		if tok.Tenant != "" {
			v.Role = storedRole(tok.Tenant, tok.Role).String()
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b apiTokenView) int { return a.Created.Compare(b.Created) })
	httpjson.Write(w, http.StatusOK, out)
}

func (s *Server) revokeAPIToken(w http.ResponseWriter, r *http.Request, t store.Tenant) {
	s.revokeToken(w, r, t.Name, r.PathValue("id"))
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, tenant, id string) {
	err := s.store.DeleteAPIToken(tenant, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		httpjson.Error(w, http.StatusNotFound, "api token not found")
	case errors.Is(err, store.ErrLastAdmin):
		httpjson.Error(w, http.StatusConflict, "this is the last admin token: create another first, or replace it with serve --rotate-admin-token")
	case err != nil:
		s.fail(w, r, err)
	default:
		s.log.Info("api token revoked", "tenant", tenant, "id", id)
		w.WriteHeader(http.StatusNoContent)
	}
}

// Admin tokens are API tokens of no tenant: listed, made and revoked like
// a tenant's, by the admin only.
func (s *Server) listAdminTokens(w http.ResponseWriter, r *http.Request) { s.listTokens(w, r, "") }

func (s *Server) createAdminToken(w http.ResponseWriter, r *http.Request) {
	s.newAPIToken(w, r, "", controlPlane)
}

func (s *Server) revokeAdminToken(w http.ResponseWriter, r *http.Request) {
	s.revokeToken(w, r, "", r.PathValue("id"))
}

func (s *Server) createRunnerToken(w http.ResponseWriter, r *http.Request, t store.Tenant) {
	var req struct {
		TTL string `json:"ttl"`
	}
	if !s.decode(w, r, &req, true) {
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("ttl %q must be a duration up to %s", req.TTL, enrollment.MaxTokenTTL))
			return
		}
		ttl = d
	}
	tok, err := s.enrollment.CreateToken(t.Name, ttl, time.Now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, tok)
}

// enroll redeems a one-time token: the runner's CSR is signed and the
// runner registered, or the request is refused with one line.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	resp, err := s.enrollment.Register(r.Body, time.Now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, resp)
}

// runnerView is a runner as the API shows it.
type runnerView struct {
	ID                string    `json:"id"`
	Name              string    `json:"name"`
	Connected         bool      `json:"connected"`
	ConnectedSince    time.Time `json:"connectedSince,omitzero"`
	LastSeen          time.Time `json:"lastSeen,omitzero"`
	Version           string    `json:"version,omitempty"`
	CertificateExpiry time.Time `json:"certificateExpiry"`
	Revoked           bool      `json:"revoked,omitempty"`
}

func (s *Server) view(r store.Runner) runnerView {
	v := runnerView{ID: r.ID, Name: r.Name, LastSeen: r.LastSeen, Version: r.Version, CertificateExpiry: r.NotAfter, Revoked: r.Revoked}
	if rc := s.runners.Live(r.ID); rc != nil {
		v.Connected, v.ConnectedSince = true, rc.Since
		v.LastSeen, v.Version = rc.Seen()
	}
	return v
}

func (s *Server) listRunners(w http.ResponseWriter, r *http.Request, t store.Tenant) {
	rs, err := s.store.Runners(t.Name)
	if err != nil {
		s.fail(w, r, err)
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

// revokeRunner refuses the runner's certificate from now on, closes its
// tunnel, and fails its unfinished deployments.
func (s *Server) revokeRunner(w http.ResponseWriter, r *http.Request, rn store.Runner) {
	rn, err := s.runners.Revoke(rn.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.deployments.RunnerRevoked(rn)
	httpjson.Write(w, http.StatusOK, s.view(rn))
}
