// Package replay runs replays of failed exchanges from the control plane,
// whose originals only their runners hold: it keeps what the runners say of
// the originals they keep (until when, evicted), admits a replay (once per
// Idempotency-Key; not again after one completed unless forced; not while
// another runs), sends it through the tunnel to the app's runner, and
// records how it ended. docs/replay.md describes the whole.
package replay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/runners"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/controlplane/telemetry"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// Timeout bounds one replay's round trip: the runner answers when the
// route has run to its end (its own bound is two minutes).
const Timeout = 150 * time.Second

// MaxKey bounds an Idempotency-Key.
const MaxKey = 256

// Options configure the service.
type Options struct {
	Store   *store.Store
	Runners *runners.Hub
	Log     *slog.Logger
	// Exchanges lists exchanges as the telemetry API does: what a bulk
	// replay walks.
	Exchanges func(context.Context, telemetry.ExchangeQuery) (telemetry.ExchangePage, error)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Service is the replays of every tenant.
type Service struct {
	opts Options

	mu sync.Mutex
	// ctx is Run's: the bulk replays' workers run until it is done.
	ctx     context.Context
	running map[string]bool // tenant/bulk with a worker
	workers sync.WaitGroup
}

// New makes the service. Replays a control plane left running when it
// stopped are ended as errors: their outcome is not known.
func New(o Options) (*Service, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	n, err := o.Store.EndRunningReplays(o.Now(), "the control plane stopped during the replay: its outcome is not known; look for the exchange replaying it, then replay again with force if it is not there")
	if err != nil {
		return nil, err
	}
	if n > 0 {
		o.Log.Warn("replays left running by the last run were ended", "replays", n)
	}
	return &Service{opts: o, running: map[string]bool{}}, nil
}

// Note records what a runner said of its originals: telemetry's
// Options.Originals.
func (s *Service) Note(_ context.Context, tenant, runner string, notes []telemetry.OriginalNote) error {
	out := make([]store.OriginalNote, 0, len(notes))
	for _, n := range notes {
		o := store.OriginalNote{Environment: n.Environment, App: n.App, At: n.Received}
		switch {
		case n.Kept != nil:
			o.Exchange, o.Route, o.Start, o.FailedAt, o.Until = n.Kept.Exchange, n.Kept.Route, n.Kept.Start, n.Kept.At, time.UnixMilli(n.Kept.Until)
		case n.Evicted != nil:
			o.Exchange, o.Evicted = n.Evicted.Exchange, n.Evicted.Reason
		default:
			continue
		}
		out = append(out, o)
	}
	return s.opts.Store.NoteOriginals(tenant, runner, out)
}

// Request is one replay asked for.
type Request struct {
	Tenant, Environment, App, Exchange string
	// Key is the caller's Idempotency-Key ("": none).
	Key string
	// Token and Role are the caller's.
	Token, Role string
	// At is where it re-enters: api.ReplayAtRoute ("" too) or
	// api.ReplayAtNode.
	At string
	// Edit, when set, replaces the original's body (and headers); the
	// caller's role must allow it (the API checks).
	Edit *api.ReplayEdit
	// Force replays again what a replay completed.
	Force bool
	// Bulk is the bulk replay it is part of ("": none).
	Bulk string
}

// Replay runs one replay to its end and answers its record, with again
// true when the Idempotency-Key named one made before (which is answered
// as it stands, and nothing is run). Refusals are *httpjson.StatusError,
// the control plane's before anything is sent, or the runner's (no such
// original, no instance), whose replay is recorded as an error. A replay
// that ran and failed is no error: its record says so.
func (s *Service) Replay(ctx context.Context, req Request) (store.Replay, bool, error) {
	if len(req.Key) > MaxKey {
		return store.Replay{}, false, httpjson.Errorf(http.StatusBadRequest, "Idempotency-Key over %d bytes", MaxKey)
	}
	if req.Exchange == "" || len(req.Exchange) > telemetry.MaxName {
		return store.Replay{}, false, httpjson.Errorf(http.StatusBadRequest, "exchange id of %d bytes (1 to %d)", len(req.Exchange), telemetry.MaxName)
	}
	app, err := s.opts.Store.App(req.Tenant, req.Environment, req.App)
	if errors.Is(err, store.ErrNotFound) {
		if _, oerr := s.opts.Store.Original(req.Tenant, req.Environment, req.App, req.Exchange); oerr == nil {
			return store.Replay{}, false, httpjson.Errorf(http.StatusGone, "app %s in environment %s was deleted, and the original of exchange %s with it: nothing was sent", req.App, req.Environment, req.Exchange)
		}
		return store.Replay{}, false, httpjson.Errorf(http.StatusNotFound, "no app %s in environment %s: nothing was sent", req.App, req.Environment)
	}
	if err != nil {
		return store.Replay{}, false, err
	}
	now := s.opts.Now().UTC()
	if req.At == api.ReplayAtRoute {
		req.At = ""
	}
	r := store.Replay{ID: newID(now), Tenant: req.Tenant, Environment: req.Environment, App: req.App, Exchange: req.Exchange,
		Key: req.Key, Token: req.Token, Role: req.Role, Edited: req.Edit != nil, Forced: req.Force, Bulk: req.Bulk, At: req.At, Created: now}
	if o, err := s.opts.Store.Original(req.Tenant, req.Environment, req.App, req.Exchange); err == nil {
		r.Warning = s.redeployed(app, o)
		if req.At == api.ReplayAtNode && o.FailedAt != nil {
			r.Node = o.FailedAt.Node
		}
	}
	rc := s.opts.Runners.Live(app.Runner)
	r, again, err := s.opts.Store.BeginReplay(r, func(o store.Original, found bool, prior []store.Replay) error {
		if err := admit(req, o, found, prior, now); err != nil {
			return err
		}
		// Asked last: a replay refused for what it is says so even while the runner is away.
		if rc == nil {
			return httpjson.Errorf(http.StatusServiceUnavailable, "runner %s of app %s is not connected: nothing was sent", app.Runner, req.App)
		}
		return nil
	})
	if err != nil || again {
		if again && (r.Environment != req.Environment || r.App != req.App || r.Exchange != req.Exchange) {
			return store.Replay{}, false, httpjson.Errorf(http.StatusUnprocessableEntity, "this Idempotency-Key was used for a replay of another exchange")
		}
		return r, again, err
	}
	s.opts.Log.Info("replay", "tenant", r.Tenant, "env", r.Environment, "app", r.App, "exchange", r.Exchange, "replay", r.ID, "edited", r.Edited, "forced", r.Forced)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), Timeout)
	defer cancel()
	var res api.RunnerReplayed
	callErr := rc.Call(ctx, http.MethodPost, api.RunnerAppsPath+r.Environment+"/apps/"+r.App+"/replay",
		api.RunnerReplay{Exchange: r.Exchange, At: req.At, Edit: req.Edit}, &res)
	return s.finish(r.Tenant, r.ID, res, callErr)
}

// finish records the runner's answer to replay id (or why there was
// none), and answers a refusal of the runner's as the caller's error.
func (s *Service) finish(tenant, id string, res api.RunnerReplayed, callErr error) (store.Replay, bool, error) {
	var refused *httpjson.StatusError
	errors.As(callErr, &refused)
	r, err := s.opts.Store.FinishReplay(tenant, id, func(r *store.Replay) {
		r.Finished = s.opts.Now().UTC()
		if callErr != nil {
			r.Status = store.ReplayError
			if refused != nil {
				r.Error = refused.Msg
			} else {
				r.Error = "the runner did not answer: " + callErr.Error()
			}
			return
		}
		r.Status, r.Replay, r.Error = res.Status, res.Exchange, res.Error
	})
	switch {
	case err != nil:
		return r, false, err
	case refused != nil:
		return r, false, refused
	case callErr != nil:
		return r, false, httpjson.Errorf(http.StatusBadGateway, "%s", r.Error)
	}
	return r, false, nil
}

// runningSuffix ends the refusal of a replay while another of the same
// exchange runs: a bulk replay tries that one again.
const runningSuffix = " is running: wait for its end"

// admit refuses a replay of an original that is gone, that a replay
// completed (unless forced), or that a replay is running for.
func admit(req Request, o store.Original, found bool, prior []store.Replay, now time.Time) error {
	if found && o.Evicted == api.EvictedDeleted {
		return httpjson.Errorf(http.StatusGone, "the original of exchange %s went when its app was deleted (%s): nothing was sent",
			req.Exchange, o.EvictedAt.UTC().Format(time.RFC3339))
	}
	if found && o.Evicted != "" {
		return httpjson.Errorf(http.StatusGone, "the original of exchange %s is no longer kept on its runner (evicted for %s at %s): nothing was sent",
			req.Exchange, o.Evicted, o.EvictedAt.UTC().Format(time.RFC3339))
	}
	if found && !o.Until.IsZero() && now.After(o.Until) {
		return httpjson.Errorf(http.StatusGone, "the original of exchange %s was kept until %s: nothing was sent", req.Exchange, o.Until.UTC().Format(time.RFC3339))
	}
	if found && req.At == api.ReplayAtNode && o.FailedAt == nil {
		return httpjson.Errorf(http.StatusConflict, "exchange %s did not fail at a node that sends to an endpoint: replay it from its route's start; nothing was sent", req.Exchange)
	}
	for _, p := range prior {
		switch {
		case p.Status == store.ReplayRunning:
			return httpjson.Errorf(http.StatusConflict, "replay %s of exchange %s"+runningSuffix, p.ID, req.Exchange)
		case p.Status == api.StatusCompleted && !req.Force:
			return httpjson.Errorf(http.StatusConflict, "exchange %s was replayed successfully (replay %s, exchange %s): send force to replay it again", req.Exchange, p.ID, p.Replay)
		}
	}
	return nil
}

// redeployed says which version a replay runs on when the app was
// deployed again since its original ran ("" when not, or not known).
func (s *Service) redeployed(app store.App, o store.Original) string {
	if o.Start == 0 || app.RunningDeployment == "" {
		return ""
	}
	d, err := s.opts.Store.Deployment(app.Tenant, app.RunningDeployment)
	if err != nil || !d.Updated.After(time.UnixMicro(o.Start)) {
		return ""
	}
	return fmt.Sprintf("app %s was deployed again since this exchange ran: the replay runs on deployment %s (image %s)", app.Name, d.ID, d.Image)
}

// newID is a replay's id: it sorts by when it was made.
func newID(now time.Time) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "r" + strconv.FormatInt(now.UnixMilli(), 36) + hex.EncodeToString(b)
}

// Of is what is known of an exchange's original (Original nil: nothing)
// and its replays, oldest first.
type Of struct {
	Original *store.Original `json:"original"`
	Replays  []store.Replay  `json:"replays"`
}

// Of answers what is known of the original of app's exchange id in env.
func (s *Service) Of(tenant, env, app, id string) (Of, error) {
	var out Of
	o, err := s.opts.Store.Original(tenant, env, app, id)
	switch {
	case err == nil:
		out.Original = &o
	case !errors.Is(err, store.ErrNotFound):
		return Of{}, err
	}
	out.Replays, err = s.opts.Store.Replays(tenant, env, app, id)
	return out, err
}
