package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/build"
	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/deploy"
	"github.com/cameleer/cameleer/appliance/engine"
	"github.com/cameleer/cameleer/appliance/images"
	"github.com/cameleer/cameleer/appliance/orchestrator"
	"github.com/cameleer/cameleer/appliance/tunnelclient"
	"github.com/cameleer/cameleer/internal/httpjson"
	"github.com/cameleer/cameleer/version"
)

// localAPI is what the control plane may call on the runner, through the
// tunnel. nodeStatus is nil without the engine, apps nil without an
// orchestrator (named by orch).
func localAPI(id tunnelclient.Identity, since time.Time, nodeStatus func(context.Context) Status, orch string, apps http.Handler) http.Handler {
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.StatusPath, func(w http.ResponseWriter, r *http.Request) {
		st := api.RunnerStatus{RunnerID: id.RunnerID, Name: id.Name, Tenant: id.Tenant, Version: version.Version,
			Hostname: host, Engine: nodeStatus != nil, Orchestrator: orch, Since: since}
		if nodeStatus != nil {
			st.Node = nodeStatus(r.Context())
		}
		httpjson.Write(w, http.StatusOK, st)
	})
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

// runTunnel keeps the tunnel to the control plane open once this host is
// registered; with wait, a host that is not registered yet waits for
// `cameleer token redeem`, else it returns at once. worker, when not nil,
// runs the control plane's deployments on the orchestrator orch.
func runTunnel(ctx context.Context, log *slog.Logger, dataDir string, wait bool, nodeStatus func(context.Context) Status, orch string, worker *deploy.Worker, view *tunnelView) error {
	id, err := tunnelclient.LoadIdentity(tunnelclient.IdentityDir(dataDir))
	var said string
	for wait && err != nil {
		// A damaged identity is said once (log and status) and waited
		// out like a missing one: fixed or removed and redeemed, the
		// tunnel comes up without a restart.
		if !errors.Is(err, tunnelclient.ErrNotRegistered) && err.Error() != said {
			said = err.Error()
			log.Warn("the runner's identity cannot be read: fix it, or remove it and run `cameleer token redeem` again", "err", err)
		}
		if view != nil {
			view.setProblem(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(registrationPoll):
		}
		id, err = tunnelclient.LoadIdentity(tunnelclient.IdentityDir(dataDir))
	}
	if err != nil {
		return err
	}
	c := &tunnelclient.Client{Identity: id, Engine: nodeStatus != nil, Log: log.With("component", "tunnel")}
	var apps http.Handler
	if worker != nil {
		worker.Tenant, worker.ControlPlane = id.Tenant, c.ControlPlane()
		apps = worker.Handler(ctx)
	}
	c.LocalAPI = localAPI(id, time.Now(), nodeStatus, orch, apps)
	if view != nil {
		view.set(id, c)
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

// appWorker runs the control plane's deployments on this node's cluster,
// building images from the payload's Java runtime and agent.
func appWorker(log *slog.Logger, c config.Config, p engine.Paths) *deploy.Worker {
	base := sync.OnceValues(func() (v1.Image, error) {
		img, _, err := images.OpenArchive(filepath.Join(p.Payload, "images", "jre.tar"))
		return img, err
	})
	return &deploy.Worker{
		Runtime:   &orchestrator.Kubernetes{Kubectl: p.Kubectl(), NodeIP: c.NodeIP, AppsDomain: c.AppsDomain},
		Registry:  p.RegistryAddr(),
		ImageHost: config.RegistryHost,
		Base:      base,
		Agent:     func() ([]byte, error) { return os.ReadFile(filepath.Join(p.Payload, "agent", "cameleer-agent.jar")) },
		CacheDir:  c.Path("cache", "artifacts"),
		Layers:    &build.Cache{},
		URL:       func(a orchestrator.App) string { return AppURL(c, a) },
		Log:       log.With("component", "deploy"),
	}
}

// AppURL is where an app answers through Traefik on this node.
func AppURL(c config.Config, a orchestrator.App) string {
	host := orchestrator.Host(a, c.AppsDomain)
	if c.HTTPPort != 80 {
		host += ":" + strconv.Itoa(c.HTTPPort)
	}
	return fmt.Sprintf("http://%s/", host)
}

// RunNoEngine runs only the tunnel and the local API, without Kubernetes
// (tests, debugging, hosts that only relay).
func RunNoEngine(ctx context.Context, log *slog.Logger, dataDir string) error {
	return runTunnel(ctx, log, dataDir, false, nil, "", nil, nil)
}
