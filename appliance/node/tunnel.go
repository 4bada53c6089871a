package node

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/tunnelclient"
	"github.com/cameleer/cameleer/version"
)

// localAPI is what the control plane may call on the runner, through the
// tunnel. nodeStatus is nil without the engine.
func localAPI(id tunnelclient.Identity, since time.Time, nodeStatus func(context.Context) Status) http.Handler {
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.StatusPath, func(w http.ResponseWriter, r *http.Request) {
		st := api.RunnerStatus{RunnerID: id.RunnerID, Name: id.Name, Tenant: id.Tenant, Version: version.Version,
			Hostname: host, Engine: nodeStatus != nil, Since: since}
		if nodeStatus != nil {
			st.Node = nodeStatus(r.Context())
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	})
	return mux
}

// runTunnel keeps the tunnel to the control plane open when this host is
// registered; it returns at once when it is not.
func runTunnel(ctx context.Context, log *slog.Logger, dataDir string, nodeStatus func(context.Context) Status) error {
	id, err := tunnelclient.LoadIdentity(tunnelclient.IdentityDir(dataDir))
	if err != nil {
		return err
	}
	c := &tunnelclient.Client{Identity: id, LocalAPI: localAPI(id, time.Now(), nodeStatus), Engine: nodeStatus != nil, Log: log.With("component", "tunnel")}
	return c.Run(ctx)
}

// RunNoEngine runs only the tunnel and the local API, without Kubernetes
// (tests, debugging, hosts that only relay).
func RunNoEngine(ctx context.Context, log *slog.Logger, dataDir string) error {
	return runTunnel(ctx, log, dataDir, nil)
}
