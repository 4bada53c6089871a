package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/collector"
	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/deploy"
	"github.com/cameleer/cameleer/appliance/egress"
	"github.com/cameleer/cameleer/appliance/engine"
	"github.com/cameleer/cameleer/appliance/imagebuild"
	"github.com/cameleer/cameleer/appliance/images"
	"github.com/cameleer/cameleer/appliance/orchestrator"
	"github.com/cameleer/cameleer/appliance/originals"
	"github.com/cameleer/cameleer/appliance/supportbundle"
	"github.com/cameleer/cameleer/appliance/tunnelclient"
	"github.com/cameleer/cameleer/internal/httpjson"
	"github.com/cameleer/cameleer/version"
)

// localAPI is what the control plane may call on the runner, through the
// tunnel. nodeStatus is nil without the engine, apps nil without an
// orchestrator.
func localAPI(id tunnelclient.Identity, since time.Time, nodeStatus func(context.Context) Status, orch Orchestrator, apps http.Handler, supportBundle, upgrade http.HandlerFunc) http.Handler {
	host, _ := os.Hostname()
	// The control plane knows a runner without one as "".
	name := string(orch)
	if orch == None {
		name = ""
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.StatusPath, func(w http.ResponseWriter, r *http.Request) {
		st := api.RunnerStatus{RunnerID: id.RunnerID, Name: id.Name, Tenant: id.Tenant, Version: version.Version,
			Hostname: host, Engine: nodeStatus != nil, Orchestrator: name, Since: since}
		if nodeStatus != nil {
			st.Node = nodeStatus(r.Context())
		}
		httpjson.Write(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET "+api.SupportBundlePath, supportBundle)
	if upgrade != nil {
		mux.HandleFunc("POST "+api.RunnerUpgradePath, upgrade)
	} else {
		mux.HandleFunc("POST "+api.RunnerUpgradePath, func(w http.ResponseWriter, _ *http.Request) {
			httpjson.Error(w, http.StatusNotImplemented, "this runner runs no node of its own to upgrade (--no-engine, or Docker)")
		})
	}
	if apps != nil {
		mux.Handle("/v1/", apps)
	} else {
		mux.HandleFunc("/v1/", func(w http.ResponseWriter, _ *http.Request) {
			httpjson.Error(w, http.StatusNotImplemented, "this runner runs without an engine (--no-engine): it cannot run apps")
		})
	}
	return mux
}

// registrationPoll is how often a node that is not registered looks for a
// registration (`cameleer token redeem` while it runs).
const registrationPoll = 2 * time.Second

// tunnelOptions say how runTunnel runs.
type tunnelOptions struct {
	DataDir string
	// Wait has a host that is not registered yet wait for `cameleer token
	// redeem`; without it, runTunnel returns at once.
	Wait bool
	// NodeStatus reports the engine; nil without one.
	NodeStatus   func(context.Context) Status
	Orchestrator Orchestrator
	// Apps serves the control plane's app routes for the runner's tenant,
	// through the tunnel's client to the control plane, until ctx is done;
	// nil: the runner runs no apps.
	Apps func(ctx context.Context, tenant string, controlPlane *http.Client) http.Handler
	// View, when not nil, shows the tunnel's status.
	View *tunnelView
	// Upgradable is the node an upgrade from the control plane moves
	// (nil: none, on Docker or without an engine).
	Upgradable *config.Config
}

// runTunnel keeps the tunnel to the control plane open once this host is
// registered.
func runTunnel(ctx context.Context, log *slog.Logger, o tunnelOptions) error {
	id, err := tunnelclient.LoadIdentity(tunnelclient.IdentityDir(o.DataDir))
	var said string
	for o.Wait && err != nil {
		// A damaged identity is said once (log and status) and waited
		// out like a missing one: fixed or removed and redeemed, the
		// tunnel comes up without a restart.
		if !errors.Is(err, tunnelclient.ErrNotRegistered) && err.Error() != said {
			said = err.Error()
			log.Warn("the runner's identity cannot be read: fix it, or remove it and run `cameleer token redeem` again", "err", err)
		}
		if o.View != nil {
			o.View.setProblem(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(registrationPoll):
		}
		id, err = tunnelclient.LoadIdentity(tunnelclient.IdentityDir(o.DataDir))
	}
	if err != nil {
		return err
	}
	c := tunnelclient.New(tunnelclient.Options{Identity: id, Engine: o.NodeStatus != nil, Log: log.With("component", "tunnel"),
		LocalAPI: func(cp *http.Client) http.Handler {
			var apps http.Handler
			if o.Apps != nil {
				apps = o.Apps(ctx, id.Tenant, cp)
			}
			var upgrade http.HandlerFunc
			if o.Upgradable != nil {
				upgrade = runnerUpgrade(*o.Upgradable, cp)
			}
			return localAPI(id, time.Now(), o.NodeStatus, o.Orchestrator, apps, supportBundle(o.DataDir, o.NodeStatus), upgrade)
		}})
	if o.View != nil {
		o.View.set(id, c)
	}
	return c.Run(ctx)
}

// TunnelStatus is the node's link to its control plane.
type TunnelStatus struct {
	// Registered says whether `cameleer token redeem` was run here.
	Registered bool   `json:"registered"`
	URL        string `json:"url,omitempty"`
	RunnerID   string `json:"runnerId,omitempty"`
	tunnelclient.State
}

// ControlPlaneLine says in a line how the node stands with its control
// plane (cp is nil before the node has looked).
func ControlPlaneLine(cp *TunnelStatus) string {
	switch {
	case cp != nil && !cp.Registered && cp.LastError != "":
		return "registration unreadable: " + cp.LastError
	case cp == nil || !cp.Registered:
		return "not registered (cameleer token redeem)"
	case cp.Connected && cp.Refused != "":
		return fmt.Sprintf("%s, connected as runner %s but refused: %s", cp.URL, cp.RunnerID, cp.Refused)
	case cp.Connected:
		return fmt.Sprintf("%s, connected since %s as runner %s", cp.URL, cp.Since.Format(time.RFC3339), cp.RunnerID)
	case cp.LastError != "":
		return fmt.Sprintf("%s, not connected: %s", cp.URL, cp.LastError)
	default:
		return fmt.Sprintf("%s, connecting", cp.URL)
	}
}

// tunnelView shows the status the tunnel runTunnel keeps, once it keeps
// one.
type tunnelView struct {
	mu sync.Mutex
	id tunnelclient.Identity
	c  *tunnelclient.Client
	// problem is why there is no tunnel yet, when it is not only that the
	// host is not registered.
	problem string
}

func (v *tunnelView) setProblem(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.problem = ""
	if !errors.Is(err, tunnelclient.ErrNotRegistered) {
		v.problem = err.Error()
	}
}

func (v *tunnelView) set(id tunnelclient.Identity, c *tunnelclient.Client) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.id, v.c = id, c
}

func (v *tunnelView) status() *TunnelStatus {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.c == nil {
		return &TunnelStatus{State: tunnelclient.State{LastError: v.problem}}
	}
	return &TunnelStatus{Registered: true, URL: v.id.URL, RunnerID: v.id.RunnerID, State: v.c.State()}
}

// apps runs the control plane's deployments and app operations on rt,
// with images built from the payload's Java runtime and agent, pushed to
// the node's registry and named in references by imageHost.
func apps(log *slog.Logger, c config.Config, p engine.Paths, rt orchestrator.Runtime, imageHost string) func(context.Context, string, *http.Client) http.Handler {
	base := sync.OnceValues(func() (v1.Image, error) {
		img, _, err := images.OpenArchive(filepath.Join(p.Payload, "images", "jre.tar"))
		return img, err
	})
	return func(ctx context.Context, tenant string, cp *http.Client) http.Handler {
		keeper := &egress.Keeper{Log: log.With("component", "egress"),
			Apply: func(ctx context.Context, env string, rules []orchestrator.EgressRule) error {
				return rt.Egress(ctx, tenant, env, rules)
			}}
		go keeper.Run(ctx)
		nudged, col := collect(ctx, log.With("component", "collector"), c, cp, tenant, rt)
		var replay func(context.Context, string, string, api.RunnerReplay) (api.RunnerReplayed, error)
		if col != nil {
			replay = col.Replay
		}
		w := deploy.New(deploy.Options{
			Tenant:       tenant,
			Runtime:      nudged,
			Replay:       replay,
			Registry:     p.RegistryAddr(),
			ImageHost:    imageHost,
			Base:         base,
			Agent:        func() ([]byte, error) { return os.ReadFile(filepath.Join(p.Payload, "agent", "cameleer-agent.jar")) },
			ControlPlane: cp,
			CacheDir:     c.Path("cache", "artifacts"),
			Layers:       &imagebuild.Cache{},
			URL:          func(a orchestrator.App) string { return AppURL(c, a) },
			Egress:       keeper,
			Log:          log.With("component", "deploy"),
		})
		return w.Handler(ctx)
	}
}

// collect brings the telemetry of the runner's apps to the control plane
// and keeps their originals until ctx is done. It answers rt, which has the
// collector look for new instances as soon as it changes an app's, and the
// collector (nil when there is none).
func collect(ctx context.Context, log *slog.Logger, c config.Config, cp *http.Client, tenant string, rt orchestrator.Runtime) (orchestrator.Runtime, *collector.Collector) {
	dir := c.Path("telemetry")
	spool, err := collector.OpenSpool(dir, c.SpoolBytes(), log)
	if err != nil {
		log.Error("no telemetry from this runner's apps", "err", err)
		return rt, nil
	}
	tokens, err := collector.LoadTokens(filepath.Join(dir, "agent.key"))
	if err != nil {
		spool.Close()
		log.Error("no telemetry from this runner's apps", "err", err)
		return rt, nil
	}
	bounds := originals.Bounds{MaxBytes: c.OriginalsBytes(), MaxAge: c.OriginalsAge()}
	orig, err := originals.Open(c.Path("originals"), filepath.Join(dir, "originals.key"), func(string) originals.Bounds { return bounds })
	if err != nil {
		// Telemetry flows on; failed exchanges are then not replayable.
		log.Error("no originals kept for replay", "err", err)
		orig = nil
	}
	col := collector.New(collector.Options{Spool: spool, ControlPlane: cp, Log: log, Tokens: tokens, Originals: orig,
		Instances: func(ctx context.Context) ([]orchestrator.Instance, error) { return rt.Instances(ctx, tenant) }})
	go func() {
		defer spool.Close()
		col.Run(ctx)
	}()
	return nudging{Runtime: rt, changed: col.Refresh, tokens: tokens, forget: col.ForgetApp}, col
}

// nudging is a Runtime that gives each app its agent's token, says when
// it changed an app's instances, and forgets a deleted app's originals.
type nudging struct {
	orchestrator.Runtime
	changed func()
	tokens  collector.Tokens
	// forget removes a deleted app's originals.
	forget func(env, app string) error
}

func (n nudging) Deploy(ctx context.Context, a orchestrator.App) error {
	defer n.changed()
	// A secret: it reaches the app as a variable and shows nowhere else.
	secrets := maps.Clone(a.Secrets)
	if secrets == nil {
		secrets = map[string]string{}
	}
	secrets[api.AgentTokenEnv] = n.tokens.For(a.Environment, a.Name)
	a.Secrets = secrets
	return n.Runtime.Deploy(ctx, a)
}

func (n nudging) Start(ctx context.Context, a orchestrator.App) error {
	defer n.changed()
	return n.Runtime.Start(ctx, a)
}

func (n nudging) Restart(ctx context.Context, a orchestrator.App) error {
	defer n.changed()
	return n.Runtime.Restart(ctx, a)
}

func (n nudging) Stop(ctx context.Context, a orchestrator.App) error {
	defer n.changed()
	return n.Runtime.Stop(ctx, a)
}

// Delete deletes the app, then the originals kept of it: they can no
// longer be replayed.
func (n nudging) Delete(ctx context.Context, a orchestrator.App) error {
	defer n.changed()
	if err := n.Runtime.Delete(ctx, a); err != nil {
		return err
	}
	if err := n.forget(a.Environment, a.Name); err != nil {
		return fmt.Errorf("remove the originals of %s: %w", a.Name, err)
	}
	return nil
}

// AppURL is where an app answers through Traefik on this node.
func AppURL(c config.Config, a orchestrator.App) string {
	host := orchestrator.Host(a, c.AppsDomain)
	if c.HTTPPort != 80 {
		host += ":" + strconv.Itoa(c.HTTPPort)
	}
	return fmt.Sprintf("http://%s/", host)
}

// supportBundle answers the node's support bundle, made as it is sent.
// nodeStatus is nil without the engine.
func supportBundle(dataDir string, nodeStatus func(context.Context) Status) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status := func(ctx context.Context) (any, error) {
			if nodeStatus == nil {
				return nil, errors.New("this runner runs without an engine (--no-engine)")
			}
			return nodeStatus(ctx), nil
		}
		w.Header().Set("Content-Type", "application/gzip")
		w.Header().Set("Content-Disposition", `attachment; filename="`+supportbundle.FileName(time.Now())+`"`)
		if err := supportbundle.Write(r.Context(), w, dataDir, status); err != nil {
			// The answer has begun: a cut body is how the caller learns.
			panic(http.ErrAbortHandler)
		}
	}
}
