package replay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/controlplane/telemetry"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// Bounds of a bulk replay's rate, in replays a second.
const (
	DefaultRate = 10
	MaxRate     = 100
)

// Keep is how long the control plane keeps what it knew of an original
// once it is gone from its runner (with its replays), and a bulk replay
// once it ended: the audit log keeps the calls longer.
const Keep = 30 * 24 * time.Hour

// retryAfter is how long a bulk replay waits before it tries an exchange
// again whose runner was away or did not answer.
const retryAfter = 5 * time.Second

// BulkRequest is a bulk replay asked for: the exchanges of Route of an app
// with Status (failed, or handled) that began from From to To, at Rate a
// second.
type BulkRequest struct {
	Tenant, Environment, App string
	Route, Status            string
	From, To                 time.Time
	Rate                     int
	Force                    bool
	Token, Role              string
}

// StartBulk records a bulk replay and starts it. Refusals are
// *httpjson.StatusError.
func (s *Service) StartBulk(req BulkRequest) (store.Bulk, error) {
	if req.Route == "" || len(req.Route) > telemetry.MaxName {
		return store.Bulk{}, httpjson.Errorf(http.StatusBadRequest, "a bulk replay names a route (at most %d bytes)", telemetry.MaxName)
	}
	switch req.Status {
	case "":
		req.Status = api.StatusFailed
	case api.StatusFailed, api.StatusHandled:
	default:
		return store.Bulk{}, httpjson.Errorf(http.StatusBadRequest, "status %q: a bulk replay takes %s or %s exchanges", req.Status, api.StatusFailed, api.StatusHandled)
	}
	if req.Rate == 0 {
		req.Rate = DefaultRate
	}
	if req.Rate < 1 || req.Rate > MaxRate {
		return store.Bulk{}, httpjson.Errorf(http.StatusBadRequest, "rate %d not in 1..%d replays a second", req.Rate, MaxRate)
	}
	now := s.opts.Now().UTC()
	if req.From.IsZero() {
		req.From = now.Add(-24 * time.Hour)
		if !req.To.IsZero() {
			req.From = req.To.Add(-24 * time.Hour)
		}
	}
	// No end by default, and none is needed: the walk goes from the newest
	// exchange to older ones, so a replay that fails again, newer than where
	// the walk stands, is never taken up; and a runner's clock ahead of
	// this one's loses no exchange to an end set at now.
	end := req.To
	if end.IsZero() {
		end = now
	}
	if !req.From.Before(end) || end.Sub(req.From) > telemetry.MaxWindow {
		return store.Bulk{}, httpjson.Errorf(http.StatusBadRequest, "from must be before to (or now), at most %s before", telemetry.MaxWindow)
	}
	if _, err := s.opts.Store.App(req.Tenant, req.Environment, req.App); errors.Is(err, store.ErrNotFound) {
		return store.Bulk{}, httpjson.Errorf(http.StatusNotFound, "no app %s in environment %s", req.App, req.Environment)
	} else if err != nil {
		return store.Bulk{}, err
	}
	b := store.Bulk{ID: newID(now), Tenant: req.Tenant, Environment: req.Environment, App: req.App, Route: req.Route,
		Status: req.Status, From: req.From, To: req.To, Rate: req.Rate, Force: req.Force, Token: req.Token, Role: req.Role,
		State: store.BulkRunning, Created: now, Updated: now}
	err := s.opts.Store.CreateBulk(b, func(others []store.Bulk) error {
		i := slices.IndexFunc(others, func(o store.Bulk) bool {
			return o.Environment == b.Environment && o.App == b.App && (o.State == store.BulkRunning || o.State == store.BulkPaused)
		})
		if i >= 0 {
			return httpjson.Errorf(http.StatusConflict, "bulk replay %s of app %s is %s: cancel it first", others[i].ID, b.App, others[i].State)
		}
		return nil
	})
	if err != nil {
		return store.Bulk{}, err
	}
	s.opts.Log.Info("bulk replay", "tenant", b.Tenant, "env", b.Environment, "app", b.App, "route", b.Route, "bulk", b.ID, "rate", b.Rate)
	s.run(b)
	return b, nil
}

// Bulk is one bulk replay of an app.
func (s *Service) Bulk(tenant, env, app, id string) (store.Bulk, error) {
	b, err := s.opts.Store.Bulk(tenant, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && (b.Environment != env || b.App != app) {
		return store.Bulk{}, httpjson.Errorf(http.StatusNotFound, "app %s in %s has no bulk replay %s", app, env, id)
	}
	return b, err
}

// Bulks are the bulk replays of an app, newest first.
func (s *Service) Bulks(tenant, env, app string) ([]store.Bulk, error) {
	bs, err := s.opts.Store.Bulks(func(b store.Bulk) bool { return b.Tenant == tenant && b.Environment == env && b.App == app })
	slices.Reverse(bs)
	return bs, err
}

// Control pauses, resumes or cancels a bulk replay (op "pause", "resume",
// "cancel"). What it is replaying when paused or cancelled runs to its end;
// nothing after it starts. A cancelled one may be resumed: it goes on from
// where it stood.
func (s *Service) Control(tenant, env, app, id, op string) (store.Bulk, error) {
	if _, err := s.Bulk(tenant, env, app, id); err != nil {
		return store.Bulk{}, err
	}
	b, err := s.opts.Store.UpdateBulk(tenant, id, func(b *store.Bulk) error {
		switch {
		case op == "pause" && b.State == store.BulkRunning:
			b.State = store.BulkPaused
		case op == "cancel" && (b.State == store.BulkRunning || b.State == store.BulkPaused):
			b.State = store.BulkCancelled
		case op == "resume" && (b.State == store.BulkPaused || b.State == store.BulkCancelled):
			b.State = store.BulkRunning
		case op != "pause" && op != "cancel" && op != "resume":
			return httpjson.Errorf(http.StatusNotFound, "no such operation: %s (pause, resume, cancel)", op)
		default:
			return httpjson.Errorf(http.StatusConflict, "bulk replay %s is %s: it cannot %s", b.ID, b.State, op)
		}
		b.Updated = s.opts.Now().UTC()
		return nil
	})
	if err != nil {
		return store.Bulk{}, err
	}
	if b.State == store.BulkRunning {
		s.run(b)
	}
	s.opts.Log.Info("bulk replay "+op, "tenant", tenant, "bulk", id)
	return b, nil
}

// Run resumes the bulk replays that were running when the control plane
// stopped, and runs them and those started later until ctx is done; it
// prunes, every hour, what is older than Keep.
func (s *Service) Run(ctx context.Context) {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	bs, err := s.opts.Store.Bulks(func(b store.Bulk) bool { return b.State == store.BulkRunning })
	if err != nil {
		s.opts.Log.Error("resume the bulk replays", "err", err)
	}
	for _, b := range bs {
		s.run(b)
	}
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		if n, err := s.opts.Store.PruneReplays(s.opts.Now().Add(-Keep)); err != nil {
			s.opts.Log.Error("prune the replays", "err", err)
		} else if n > 0 {
			s.opts.Log.Info("pruned what was known of originals gone", "originals", n)
		}
		select {
		case <-ctx.Done():
			s.workers.Wait()
			return
		case <-tick.C:
		}
	}
}

// run starts b's worker unless it has one.
func (s *Service) run(b store.Bulk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := b.Tenant + "/" + b.ID
	if s.ctx == nil || s.running[key] {
		return
	}
	s.running[key] = true
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		defer func() {
			s.mu.Lock()
			delete(s.running, key)
			s.mu.Unlock()
		}()
		s.walk(s.ctx, b.Tenant, b.ID)
	}()
}

// walk replays a bulk's exchanges one by one, at its rate, while it runs:
// each with an Idempotency-Key of the bulk's and the exchange's, and the
// walk's place saved after each, so a control plane stopped at any point
// neither skips one nor runs one twice when it goes on.
func (s *Service) walk(ctx context.Context, tenant, id string) {
	var last time.Time
	for ctx.Err() == nil {
		b, err := s.opts.Store.Bulk(tenant, id)
		if err != nil || b.State != store.BulkRunning {
			return
		}
		q := telemetry.ExchangeQuery{Tenant: b.Tenant, Environment: b.Environment, App: b.App, Route: b.Route,
			Status: b.Status, From: b.From, To: b.To, Limit: 1}
		if b.AfterID != "" {
			q.Cursor = telemetry.After(b.AfterStart, b.AfterID)
		}
		page, err := s.opts.Exchanges(ctx, q)
		if err != nil {
			s.note(b, "list the exchanges: "+err.Error())
			sleep(ctx, retryAfter)
			continue
		}
		if len(page.Exchanges) == 0 {
			s.opts.Store.UpdateBulk(tenant, id, func(b *store.Bulk) error {
				if b.State == store.BulkRunning {
					b.State, b.Updated = store.BulkDone, s.opts.Now().UTC()
				}
				return nil
			})
			s.opts.Log.Info("bulk replay done", "tenant", tenant, "bulk", id)
			return
		}
		x := page.Exchanges[0]
		// At most Rate a second, counted from each replay's start.
		sleep(ctx, time.Until(last.Add(time.Second/time.Duration(b.Rate))))
		if ctx.Err() != nil {
			return
		}
		if cur, err := s.opts.Store.Bulk(tenant, id); err != nil || cur.State != store.BulkRunning {
			return
		}
		last = time.Now()
		rep, _, err := s.Replay(ctx, Request{Tenant: b.Tenant, Environment: b.Environment, App: b.App, Exchange: x.ID,
			Key: "bulk:" + b.ID + ":" + x.ID, Token: b.Token, Role: b.Role, Force: b.Force, Bulk: b.ID})
		var se *httpjson.StatusError
		errors.As(err, &se)
		if err != nil && (se == nil || se.Status == http.StatusServiceUnavailable || se.Status == http.StatusBadGateway ||
			se.Status == http.StatusConflict && rep.ID == "" && isRunning(se)) {
			// The runner away, or a replay of it running: the same one again, later.
			s.note(b, fmt.Sprintf("exchange %s: %v: trying again", x.ID, err))
			sleep(ctx, retryAfter)
			continue
		}
		s.opts.Store.UpdateBulk(tenant, id, func(b *store.Bulk) error {
			b.AfterStart, b.AfterID, b.Updated = x.Start.UnixMicro(), x.ID, s.opts.Now().UTC()
			switch {
			case err == nil && rep.Status == api.StatusCompleted:
				b.Completed++
			case err == nil:
				b.Failed++
			case se.Status == http.StatusConflict || se.Status == http.StatusGone:
				b.Skipped++
			default:
				b.Errors++
				b.LastError = fmt.Sprintf("exchange %s: %s", x.ID, se.Msg)
			}
			return nil
		})
	}
}

// isRunning says whether a 409 is for a replay of the exchange that runs
// (tried again) rather than one that completed (skipped).
func isRunning(se *httpjson.StatusError) bool {
	return se.Status == http.StatusConflict && strings.HasSuffix(se.Msg, runningSuffix)
}

// note says why a bulk replay waits.
func (s *Service) note(b store.Bulk, msg string) {
	s.opts.Store.UpdateBulk(b.Tenant, b.ID, func(b *store.Bulk) error {
		b.LastError, b.Updated = msg, s.opts.Now().UTC()
		return nil
	})
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
