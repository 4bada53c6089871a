package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/orchestrator"
	"github.com/cameleer/cameleer/appliance/originals"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// replayTimeout bounds one replay: the agent answers when the route ends.
const replayTimeout = 2 * time.Minute

// Replay replays the original the runner keeps of app's exchange in env,
// from its route's start or at the node where it failed (r.At), edited by
// r.Edit if given, through an instance of the app, and answers how it
// ended. The original stays, whatever the outcome, until the store's
// bounds evict it: the control plane decides whether it may be replayed
// again. Refusals are *httpjson.StatusError: 404 no such original, 409 no
// node to re-enter at, 503 no instance to run it.
func (c *Collector) Replay(ctx context.Context, env, app string, r api.RunnerReplay) (api.RunnerReplayed, error) {
	if c.opts.Originals == nil {
		return api.RunnerReplayed{}, httpjson.Errorf(http.StatusServiceUnavailable, "this runner keeps no originals")
	}
	st, err := c.opts.Originals.Get(env, app, r.Exchange)
	if errors.Is(err, originals.ErrNotFound) {
		return api.RunnerReplayed{}, httpjson.Errorf(http.StatusNotFound, "this runner keeps no original of exchange %s of %s in %s: never kept, or evicted", r.Exchange, app, env)
	}
	if err != nil {
		return api.RunnerReplayed{}, err
	}
	req := api.ReplayRequest{Context: st.Context, Route: st.Route, ReplayOf: st.Exchange, Headers: st.Headers, Body: st.Body}
	switch r.At {
	case "", api.ReplayAtRoute:
	case api.ReplayAtNode:
		if st.At == nil {
			return api.RunnerReplayed{}, httpjson.Errorf(http.StatusConflict, "exchange %s did not fail at a node that sends to an endpoint: replay it from its route's start", r.Exchange)
		}
		req.Route, req.Node, req.Headers, req.Body = st.At.Route, st.At.Node, st.At.Headers, st.At.Body
	default:
		return api.RunnerReplayed{}, httpjson.Errorf(http.StatusBadRequest, "replay at %q: route or node", r.At)
	}
	in, err := c.instanceOf(ctx, env, app)
	if err != nil {
		return api.RunnerReplayed{}, err
	}
	if r.Edit != nil {
		req.Body = r.Edit.Body
		if r.Edit.Headers != nil {
			req.Headers = r.Edit.Headers
		}
	}
	res, err := c.replayThrough(ctx, in, req)
	if err != nil {
		return api.RunnerReplayed{}, err
	}
	return api.RunnerReplayed{ReplayResult: res, Instance: in.Name}, nil
}

// instanceOf is a running instance of app in env: from the last listing,
// or a new one when that has none.
func (c *Collector) instanceOf(ctx context.Context, env, app string) (orchestrator.Instance, error) {
	find := func(ins []orchestrator.Instance) (orchestrator.Instance, bool) {
		for _, in := range ins {
			if in.Environment == env && in.App == app && in.Address != "" {
				return in, true
			}
		}
		return orchestrator.Instance{}, false
	}
	c.mu.Lock()
	in, ok := find(c.instances)
	c.mu.Unlock()
	if ok {
		return in, nil
	}
	ins, err := c.opts.Instances(ctx)
	if err != nil {
		return orchestrator.Instance{}, fmt.Errorf("list the apps' instances: %w", err)
	}
	if in, ok := find(ins); ok {
		return in, nil
	}
	return orchestrator.Instance{}, httpjson.Errorf(http.StatusServiceUnavailable, "app %s in %s has no running instance to replay into: start it", app, env)
}

// replayThrough hands req to the agent of in and waits for the replay's end.
func (c *Collector) replayThrough(ctx context.Context, in orchestrator.Instance, req api.ReplayRequest) (api.ReplayResult, error) {
	body, err := req.MarshalBinary()
	if err != nil {
		return api.ReplayResult{}, httpjson.Errorf(http.StatusBadRequest, "%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, replayTimeout)
	defer cancel()
	path := api.AgentReplayPath
	if req.Node != "" {
		path = api.AgentResendPath
	}
	u := "http://" + net.JoinHostPort(in.Address, strconv.Itoa(c.opts.AgentPort)) + path
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return api.ReplayResult{}, err
	}
	hr.Header.Set("Content-Type", "application/octet-stream")
	if tok := c.opts.Tokens.For(in.Environment, in.App); tok != "" {
		hr.Header.Set("Authorization", "Bearer "+tok)
	}
	// Not c.agent: its timeout is a pull's, and a route may take longer.
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return api.ReplayResult{}, fmt.Errorf("replay through %s: %w", in.Name, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return api.ReplayResult{}, fmt.Errorf("replay through %s: %w", in.Name, err)
	}
	var res api.ReplayResult
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(raw, &e)
		status := http.StatusBadGateway
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusBadRequest {
			status = http.StatusConflict // the app is not what the original came from
		}
		if e.Error == "" && resp.StatusCode == http.StatusNotFound && req.Node != "" {
			e.Error = "its agent cannot re-enter at a node (it is older than this runner): deploy the app again"
		}
		return api.ReplayResult{}, httpjson.Errorf(status, "the agent of %s refused the replay (%s): %s", in.Name, resp.Status, e.Error)
	}
	if err := json.Unmarshal(raw, &res); err != nil || res.Exchange == "" {
		return api.ReplayResult{}, fmt.Errorf("replay through %s: the agent's answer: %q", in.Name, raw)
	}
	return res, nil
}
