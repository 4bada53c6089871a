package server

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/replay"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// replayBody is what POST …/exchanges/{id}/replay takes; all of it is
// optional. Body (text) or BodyBase64 (bytes), and Headers, edit the
// original: an admin's alone.
type replayBody struct {
	// At is where the exchange enters again: "route", its route's start
	// (the default), or "node", the endpoint of the node where it failed.
	At         string            `json:"at"`
	Body       *string           `json:"body"`
	BodyBase64 *string           `json:"bodyBase64"`
	Headers    map[string]string `json:"headers"`
	Force      bool              `json:"force"`
}

// replayExchange answers POST …/apps/{app}/exchanges/{id}/replay: the
// replay's record once it ran (its status says how), or why it may not.
func (s *Server) replayExchange(w http.ResponseWriter, r *http.Request, e store.Environment) {
	var b replayBody
	if !s.decode(w, r, &b, true) {
		return
	}
	if b.At != "" && b.At != api.ReplayAtRoute && b.At != api.ReplayAtNode {
		httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("at %q: an exchange enters again at its route's start (\"route\") or at the node where it failed (\"node\")", b.At))
		return
	}
	edit, err := b.edit()
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, "bad replay: "+err.Error())
		return
	}
	id := r.PathValue("id")
	auditDetail(w, "exchange", id)
	if edit != nil {
		auditDetail(w, "edited", "true")
	}
	p := who(r)
	if edit != nil && p.Role < admin {
		httpjson.Error(w, http.StatusForbidden, fmt.Sprintf("a replay with an edited message needs the %s role; this token's is %s", admin, p.Role))
		return
	}
	if b.Force {
		auditDetail(w, "forced", "true")
	}
	if b.At == api.ReplayAtNode {
		auditDetail(w, "at", b.At)
	}
	// Not app-scoped: the service tells a deleted app from one never deployed.
	rep, again, err := s.replays.Replay(r.Context(), replay.Request{Tenant: e.Tenant, Environment: e.Name, App: r.PathValue("app"),
		Exchange: id, Key: strings.TrimSpace(r.Header.Get("Idempotency-Key")), Token: p.Token, Role: p.Role.String(),
		At: b.At, Edit: edit, Force: b.Force})
	if err != nil {
		auditDetail(w, "outcome", "refused")
		s.fail(w, r, err)
		return
	}
	auditDetail(w, "replay", rep.ID)
	auditDetail(w, "outcome", rep.Status)
	if rep.Replay != "" {
		auditDetail(w, "replayExchange", rep.Replay)
	}
	if again {
		auditDetail(w, "idempotent", "an earlier replay with this Idempotency-Key")
	}
	httpjson.Write(w, http.StatusOK, rep)
}

// edit is the edit b asks for, nil when none.
func (b replayBody) edit() (*api.ReplayEdit, error) {
	if b.Body != nil && b.BodyBase64 != nil {
		return nil, errors.New("body and bodyBase64 both given: one at most")
	}
	if b.Body == nil && b.BodyBase64 == nil && b.Headers == nil {
		return nil, nil
	}
	e := &api.ReplayEdit{Headers: b.Headers}
	switch {
	case b.Body != nil:
		e.Body = []byte(*b.Body)
	case b.BodyBase64 != nil:
		raw, err := base64.StdEncoding.DecodeString(*b.BodyBase64)
		if err != nil {
			return nil, fmt.Errorf("bodyBase64: %w", err)
		}
		e.Body = raw
	default:
		// Headers alone: the body stays the original's, which only the runner has.
		return nil, errors.New("an edit gives the body (body or bodyBase64) with the headers: the original's body is not known here")
	}
	return e, nil
}

// listReplays answers GET …/apps/{app}/exchanges/{id}/replays: what is
// known of the exchange's original and its replays, oldest first.
func (s *Server) listReplays(w http.ResponseWriter, r *http.Request, a store.App) {
	o, err := s.replays.Of(a.Tenant, a.Environment, a.Name, r.PathValue("id"))
	s.answer(w, r, o, err)
}

// bulkBody is what POST …/apps/{app}/bulk-replays takes.
type bulkBody struct {
	Route  string    `json:"route"`
	Status string    `json:"status"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Rate   int       `json:"rate"`
	Force  bool      `json:"force"`
}

// startBulk answers POST …/apps/{app}/bulk-replays: 202 with the bulk
// replay, which runs on in the control plane.
func (s *Server) startBulk(w http.ResponseWriter, r *http.Request, a store.App) {
	var b bulkBody
	if !s.decode(w, r, &b, false) {
		return
	}
	p := who(r)
	bulk, err := s.replays.StartBulk(replay.BulkRequest{Tenant: a.Tenant, Environment: a.Environment, App: a.Name,
		Route: b.Route, Status: b.Status, From: b.From, To: b.To, Rate: b.Rate, Force: b.Force, Token: p.Token, Role: p.Role.String()})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	auditDetail(w, "bulk", bulk.ID)
	auditDetail(w, "route", bulk.Route)
	auditDetail(w, "window", bulk.From.Format(time.RFC3339)+"/"+bulk.To.Format(time.RFC3339))
	httpjson.Write(w, http.StatusAccepted, bulk)
}

func (s *Server) listBulks(w http.ResponseWriter, r *http.Request, a store.App) {
	bs, err := s.replays.Bulks(a.Tenant, a.Environment, a.Name)
	s.answer(w, r, bs, err)
}

func (s *Server) getBulk(w http.ResponseWriter, r *http.Request, a store.App) {
	b, err := s.replays.Bulk(a.Tenant, a.Environment, a.Name, r.PathValue("id"))
	s.answer(w, r, b, err)
}

// controlBulk answers POST …/bulk-replays/{id}/{op}: pause, resume, cancel.
func (s *Server) controlBulk(w http.ResponseWriter, r *http.Request, a store.App) {
	auditDetail(w, "bulk", r.PathValue("id"))
	b, err := s.replays.Control(a.Tenant, a.Environment, a.Name, r.PathValue("id"), r.PathValue("op"))
	s.answer(w, r, b, err)
}
