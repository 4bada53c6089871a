package server

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// audited records every call of pattern that may change something (any
// method but GET and HEAD), refused or not, once it is answered: who, when,
// what, how it ended. A tenant token's calls go in its tenant's log; the
// control plane admin's in the log of the tenant it named, or the control
// plane's own. Nothing of the request's body is kept.
func (s *Server) audited(pattern string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			h(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h(sw, r)
		p := who(r)
		tenant := p.Tenant
		if p.Role == controlPlane {
			tenant = r.PathValue("tenant")
		}
		action := pattern
		if strings.HasPrefix(pattern, "/") { // a pattern of any method
			action = r.Method + " " + pattern
		}
		rec := store.AuditRecord{Time: time.Now().UTC(), Tenant: tenant, Token: p.Token, Role: p.Role.String(),
			Action: action, Path: r.URL.Path, Status: sw.status, Detail: sw.detail}
		if _, err := s.store.AppendAudit(rec, s.opts.Limits.AuditRecords); err != nil {
			s.log.Error("a call is missing from the audit log", "requestId", requestID(r), "action", action, "path", r.URL.Path, "status", sw.status, "err", err)
		}
	}
}

// statusWriter remembers the status a handler answered, and what it
// added for the audit log.
type statusWriter struct {
	http.ResponseWriter
	status int
	detail map[string]string
}

// auditDetail adds key and value to the audit record of the call w
// answers (a replay's original and outcome): nothing when it has none.
func auditDetail(w http.ResponseWriter, key, value string) {
	sw, ok := w.(*statusWriter)
	if !ok {
		return
	}
	if sw.detail == nil {
		sw.detail = map[string]string{}
	}
	sw.detail[key] = value
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the writer beneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) tenantAudit(w http.ResponseWriter, r *http.Request, t store.Tenant) {
	s.listAudit(w, r, t.Name)
}

func (s *Server) controlPlaneAudit(w http.ResponseWriter, r *http.Request) { s.listAudit(w, r, "") }

// listAudit answers a page of tenant's audit log ("": the control
// plane's), oldest first, after the record ?after= (0: from the oldest
// kept), at most ?limit= (100, at most 1000) records; with ?order=newest,
// newest first, before the record ?before= (none: from the newest).
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, tenant string) {
	after, err := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	if err != nil && r.URL.Query().Get("after") != "" {
		httpjson.Error(w, http.StatusBadRequest, "after must be a record id")
		return
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			httpjson.Error(w, http.StatusBadRequest, "limit must be from 1 to 1000")
			return
		}
	}
	switch r.URL.Query().Get("order") {
	case "", "oldest":
		recs, err := s.store.Audit(tenant, after, limit)
		s.answer(w, r, recs, err)
	case "newest":
		before, err := strconv.ParseUint(r.URL.Query().Get("before"), 10, 64)
		if err != nil && r.URL.Query().Get("before") != "" {
			httpjson.Error(w, http.StatusBadRequest, "before must be a record id")
			return
		}
		recs, err := s.store.AuditNewest(tenant, before, limit)
		s.answer(w, r, recs, err)
	default:
		httpjson.Error(w, http.StatusBadRequest, "order must be oldest or newest")
	}
}
