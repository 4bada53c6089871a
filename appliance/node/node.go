// Package node runs a node: `cameleer run` (Run) brings the engine up from
// the payload and answers status queries on a unix socket until it is told
// to stop; Status is the client side of that socket.
package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/engine"
	"github.com/cameleer/cameleer/appliance/kube"
	"github.com/cameleer/cameleer/appliance/orchestrator"
	"github.com/cameleer/cameleer/appliance/payload"
	"github.com/cameleer/cameleer/appliance/tunnelclient"
)

// Status is what a running node reports.
type Status struct {
	PID        int                      `json:"pid"`
	Since      time.Time                `json:"since"`
	Ready      bool                     `json:"ready"`
	Node       *kube.Condition          `json:"node,omitempty"`
	Components []engine.ComponentStatus `json:"components"`
	// ControlPlane is the tunnel to the control plane.
	ControlPlane *TunnelStatus `json:"controlPlane,omitempty"`
	// LastUpgrade is what the last `cameleer upgrade` did.
	LastUpgrade *Upgrade `json:"lastUpgrade,omitempty"`
	// Role is the node's: controller or worker.
	Role string `json:"role"`
	// Nodes are every node of the cluster, as the apiserver knows them.
	Nodes []ClusterNode `json:"nodes,omitempty"`
}

// ClusterNode is one node of the cluster.
type ClusterNode struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	IP      string `json:"ip"`
	Ready   string `json:"ready"`
	Version string `json:"version"`
	// Unschedulable: no new pod goes there (drained).
	Unschedulable bool `json:"unschedulable,omitempty"`
}

func clusterNodes(ns []kube.Node) []ClusterNode {
	out := make([]ClusterNode, 0, len(ns))
	for _, n := range ns {
		out = append(out, ClusterNode{Name: n.Metadata.Name, Role: n.Metadata.Labels["cameleer.io/role"], IP: n.InternalIP(),
			Ready: n.Ready().Status, Version: n.Status.NodeInfo.KubeletVersion, Unschedulable: n.Spec.Unschedulable})
	}
	return out
}

// Upgrade is the record of an upgrade (appliance/upgrade).
type Upgrade struct {
	From     string    `json:"from"`
	To       string    `json:"to"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Result is "upgraded", "rolled back" or "running" (one under way, or
	// one that was killed: its record says how far it got).
	Result string `json:"result"`
	// Reason says why it rolled back.
	Reason string `json:"reason,omitempty"`
}

// UpgradeFile is where the last upgrade's record is.
func UpgradeFile(c config.Config) string { return c.Path("upgrade", "last.json") }

// LastUpgrade reads the last upgrade's record (nil without one).
func LastUpgrade(c config.Config) *Upgrade {
	var u Upgrade
	b, err := os.ReadFile(UpgradeFile(c))
	if err != nil || json.Unmarshal(b, &u) != nil {
		return nil
	}
	return &u
}

// PIDFile holds the pid of the running `cameleer run` of a data dir.
func PIDFile(c config.Config) string { return c.Path("run", "cameleer.pid") }

// Prepare extracts the payload of the running executable and writes the
// engine's PKI and configs. Install calls it too, so a node is complete on
// disk before it first starts.
func Prepare(ctx context.Context, c config.Config) (engine.Paths, []string, error) {
	p, archives, err := extract(ctx, c)
	if err != nil {
		return p, nil, err
	}
	if err := engine.Prepare(p); err != nil {
		return p, nil, err
	}
	return p, archives, nil
}

// extract unpacks the running executable's payload into the data dir (a
// payload already there is kept) and lists its image archives.
func extract(ctx context.Context, c config.Config) (engine.Paths, []string, error) {
	exe, err := os.Executable()
	if err != nil {
		return engine.Paths{}, nil, err
	}
	pl, err := payload.Open(exe)
	if errors.Is(err, payload.ErrNoPayload) {
		return engine.Paths{}, nil, fmt.Errorf("%s has no engine payload: use the bin/cameleer that `make` builds", exe)
	}
	if err != nil {
		return engine.Paths{}, nil, err
	}
	defer pl.Close()
	dir, err := pl.Extract(ctx, c.DataDir)
	if err != nil {
		return engine.Paths{}, nil, err
	}
	p := engine.Paths{Config: c, Payload: dir, Images: map[string]string{}}
	var archives []string
	for _, part := range pl.Manifest.Parts {
		if part.Kind == payload.KindImage {
			p.Images[part.Name] = part.Image
			archives = append(archives, filepath.Join(dir, part.Files[0]))
		}
	}
	return p, archives, nil
}

// Orchestrator is what runs a runner's apps.
type Orchestrator string

const (
	// Kubernetes is the engine's cluster: the node.
	Kubernetes Orchestrator = "kubernetes"
	// Docker is the host's Docker Engine, beside the registry.
	Docker Orchestrator = "docker"
	// None runs no apps: only the tunnel and the local API.
	None Orchestrator = "none"
)

// ParseOrchestrator reads an orchestrator's name.
func ParseOrchestrator(s string) (Orchestrator, error) {
	switch o := Orchestrator(s); o {
	case Kubernetes, Docker, None:
		return o, nil
	}
	return "", fmt.Errorf("unknown orchestrator %q: use kubernetes, docker or none", s)
}

// UnmarshalText parses a flag's or a file's value.
func (o *Orchestrator) UnmarshalText(b []byte) error {
	v, err := ParseOrchestrator(string(b))
	if err != nil {
		return err
	}
	*o = v
	return nil
}

// MarshalText is the orchestrator's name.
func (o Orchestrator) MarshalText() ([]byte, error) { return []byte(o), nil }

// Options say how to run a runner.
type Options struct {
	DataDir      string
	Orchestrator Orchestrator
	// Docker configures the Docker orchestrator; the others ignore it.
	Docker DockerOptions
}

// Run runs the runner of opts.DataDir with its orchestrator until ctx is
// done: with Kubernetes, the installed node; with Docker, the registry and
// the apps on Docker; with None, only the tunnel, which returns at once on a
// host that is not registered.
func Run(ctx context.Context, log *slog.Logger, opts Options) error {
	switch opts.Orchestrator {
	case Kubernetes:
		c, err := config.Load(opts.DataDir)
		if err != nil {
			return err
		}
		// The proxy install recorded, for this process (the tunnel) and
		// every component it starts; before anything reads the
		// environment's proxy, which Go reads once.
		for _, kv := range c.ProxyEnv() {
			k, v, _ := strings.Cut(kv, "=")
			os.Setenv(k, v)
		}
		return runKubernetes(ctx, log, c)
	case Docker:
		c, err := config.Default(opts.DataDir)
		if err != nil {
			return err
		}
		if opts.Docker.HTTPPort != 0 {
			c.HTTPPort = opts.Docker.HTTPPort
		}
		if opts.Docker.AppsDomain != "" {
			c.AppsDomain = opts.Docker.AppsDomain
		}
		return runDocker(ctx, log, c, opts.Docker.Socket)
	case None:
		return runTunnel(ctx, log, tunnelOptions{DataDir: opts.DataDir, Orchestrator: None})
	}
	return fmt.Errorf("unknown orchestrator %q", opts.Orchestrator)
}

// runKubernetes runs the node until ctx is done, then stops every
// component.
func runKubernetes(ctx context.Context, log *slog.Logger, c config.Config) error {
	unlock, err := lockRun(c)
	if err != nil {
		return err
	}
	defer unlock()

	p, archives, err := Prepare(ctx, c)
	if err != nil {
		return err
	}
	// Payloads of versions before the previous one, once no container
	// runs on them any more: a few hundred MB each.
	if removed, err := payload.Prune(c.DataDir, payload.RunningFrom); err != nil {
		log.Warn("prune old payloads", "err", err)
	} else if len(removed) > 0 {
		log.Info("removed old payloads", "dirs", removed)
	}
	// A worker reads the cluster as its network agents.
	creds := p.AdminCredentials()
	if c.IsWorker() {
		creds = p.NetworkCredentials()
	}
	admin, err := kube.NewClient(creds)
	if err != nil {
		return err
	}
	eng, err := engine.New(log, p.Components(log, admin, archives))
	if err != nil {
		return err
	}
	started := time.Now()
	view := &tunnelView{}
	status := func(ctx context.Context) Status {
		st := Status{PID: os.Getpid(), Since: started, Components: eng.Status(ctx), LastUpgrade: LastUpgrade(c), Role: cmp.Or(c.Role, config.Controller)}
		if !c.IsWorker() {
			st.ControlPlane = view.status()
		}
		if ns, err := admin.Nodes(ctx); err == nil {
			st.Nodes = clusterNodes(ns)
			for _, n := range ns {
				if n.Metadata.Name == c.NodeName {
					cond := n.Ready()
					st.Node = &cond
				}
			}
		}
		st.Ready = st.Node != nil && st.Node.Status == "True"
		for _, cs := range st.Components {
			st.Ready = st.Ready && cs.Ready
		}
		return st
	}
	srv, err := serveStatus(c, status)
	if err != nil {
		return err
	}
	defer srv.Close()
	log.Info("starting engine", "dataDir", c.DataDir, "payload", p.Payload, "role", cmp.Or(c.Role, config.Controller))
	// A worker's apps are its controller's runner's: it has no tunnel.
	if !c.IsWorker() {
		go func() {
			if _, err := tunnelclient.LoadIdentity(tunnelclient.IdentityDir(c.DataDir)); errors.Is(err, tunnelclient.ErrNotRegistered) {
				log.Info("not registered with a control plane yet; waiting for `cameleer token redeem`")
			}
			rt := &orchestrator.Kubernetes{Kubectl: p.Kubectl(), API: admin, NodeIP: c.NodeIP, AppsDomain: c.AppsDomain, ClusterCIDR: c.ClusterCIDR}
			o := tunnelOptions{DataDir: c.DataDir, Wait: true, NodeStatus: status, Orchestrator: Kubernetes,
				Apps: apps(log, c, p, rt, config.RegistryHost), View: view, Upgradable: &c}
			if err := runTunnel(ctx, log, o); err != nil {
				log.Warn("no tunnel to a control plane", "reason", err)
			}
		}()
	}
	go func() {
		if eng.AllReady(ctx) == nil {
			log.Info("engine ready", "after", time.Since(started).Round(time.Millisecond))
		}
	}()
	return eng.Run(ctx)
}

// StartDetached starts `exe run` for c in its own session, so it outlives
// the caller and its terminal, its output in logs/cameleer.log. It is
// waited for here, so one that stops while the caller lives is no zombie.
func StartDetached(c config.Config, exe string) (int, error) {
	if err := os.MkdirAll(c.LogDir(), 0o700); err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(c.Path("logs", "cameleer.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(exe, "run", "--data-dir", c.DataDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start cameleer run: %w", err)
	}
	go cmd.Wait()
	return cmd.Process.Pid, nil
}

// lockRun makes sure one `cameleer run` serves a data dir, and records its
// pid for install and reset.
func lockRun(c config.Config) (func(), error) {
	if err := os.MkdirAll(c.RunDir(), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(c.Path("run", "cameleer.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another `cameleer run` serves %s (pid %d)", c.DataDir, RunningPID(c))
	}
	if err := os.WriteFile(PIDFile(c), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		os.Remove(PIDFile(c))
		f.Close()
	}, nil
}

// RunningPID is the pid of the `cameleer run` serving the data dir, or 0.
func RunningPID(c config.Config) int {
	b, err := os.ReadFile(PIDFile(c))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || unix.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

func serveStatus(c config.Config, status func(context.Context) Status) (*http.Server, error) {
	sock := c.StatusSocket()
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(status(r.Context()))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	return srv, nil
}

// ErrNotRunning means no `cameleer run` answers for the data dir.
var ErrNotRunning = errors.New("the node is not running (start it with `cameleer run`)")

// QueryStatus asks the running node of c for its status.
func QueryStatus(ctx context.Context, c config.Config) (Status, error) {
	var st Status
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.StatusSocket())
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://cameleer/v1/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return st, ErrNotRunning
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("read status: %w", err)
	}
	return st, nil
}
