// Package docker runs tenants' apps as containers of a Docker Engine on
// this host: the orchestrator.Runtime for hosts without the embedded
// Kubernetes. See docs/apps.md.
package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/orchestrator"
)

// Orchestrator runs apps as containers of a Docker Engine on this host,
// talking to its API socket. An environment is a bridge network; one Traefik
// container serves every app, routed by the labels of the app's
// containers. See docs/apps.md.
type Orchestrator struct {
	// Socket is the daemon's API socket on this host; empty:
	// /var/run/docker.sock.
	Socket string
	// AppsDomain is the DNS suffix apps are routed under.
	AppsDomain string
	// HTTPPort is the host port Traefik serves apps on; 0: 80.
	HTTPPort int
	// HTTPAddress is the host address Traefik's port is bound to; empty:
	// every address.
	HTTPAddress string
	// TraefikImage is a reference the daemon can pull.
	TraefikImage string
	// Log is where changes to the host's containers are told; nil:
	// slog.Default().
	Log *slog.Logger

	clientMu sync.Mutex // guards client
	client   *client
	// envMu serializes the changes to networks and Traefik, which every
	// deploy makes sure of.
	envMu sync.Mutex
}

var _ orchestrator.Runtime = (*Orchestrator)(nil)

// Names and labels of what Docker creates.
const (
	traefikName = "cameleer-traefik"
	// Traefik's own network, which its port is published from; it joins
	// every environment's network besides.
	traefikNetwork = "cameleer-traefik"

	labelApp      = "cameleer.io/app"
	labelInstance = "cameleer.io/instance"
	labelImage    = "cameleer.io/image"
	labelPort     = "cameleer.io/port"
	// labelSpec is a digest of a container's whole definition (digestOf);
	// a container whose digest differs from what is wanted is replaced.
	labelSpec = "cameleer.io/spec"
	// labelEnv names the app's environment variables (a JSON array), to
	// tell them from the image's when an instance is read back.
	labelEnv = "cameleer.io/env"

	// readyTimeout bounds the wait for new instances, as the rollout
	// timeout does on Kubernetes.
	readyTimeout = 3 * time.Minute
	// appMemory is every app container's memory limit: the default limit
	// an environment's LimitRange gives on Kubernetes.
	appMemory = 512 << 20
	// drainDelay is how long replaced instances serve on once their
	// replacements are ready, as long as a pod's preStop sleep.
	drainDelay = 5 * time.Second
)

// Host an app is routed at.
func (d *Orchestrator) Host(a orchestrator.App) string { return orchestrator.Host(a, d.AppsDomain) }

func (d *Orchestrator) socket() string {
	if d.Socket == "" {
		return "/var/run/docker.sock"
	}
	return d.Socket
}

func (d *Orchestrator) log() *slog.Logger {
	if d.Log == nil {
		return slog.Default()
	}
	return d.Log
}

// connect returns the API client, asking the daemon for its API version on
// first use (and again after a failure, so a daemon that comes up later is
// found).
func (d *Orchestrator) connect(ctx context.Context) (*client, error) {
	d.clientMu.Lock()
	defer d.clientMu.Unlock()
	if d.client != nil {
		return d.client, nil
	}
	cli, err := dial(ctx, d.socket())
	if err != nil {
		return nil, err
	}
	d.client = cli
	return cli, nil
}

// instance is one of an app's containers.
type instance struct {
	containerSummary
	index int
	name  string
}

// dockerName joins a tenant, environment and app (and an instance's index)
// with '_', which these names cannot hold (checkNames), so two apps never
// share a name, as joining them with '-' would (env prod, app eu-api and
// env prod-eu, app api). Docker's container and network names and
// Traefik's router names all take '_'.
func dockerName(parts ...string) string { return "cameleer_" + strings.Join(parts, "_") }

// envNetwork is the network of a tenant's environment.
func envNetwork(tenant, env string) string { return dockerName(tenant, env) }

// routerName names the app's Traefik router and service.
func routerName(a orchestrator.App) string { return dockerName(a.Tenant, a.Environment, a.Name) }

// instanceName is the container name of an app's i-th instance.
func instanceName(a orchestrator.App, i int) string {
	return dockerName(a.Tenant, a.Environment, a.Name, strconv.Itoa(i))
}

func appLabels(a orchestrator.App) map[string]string {
	return map[string]string{orchestrator.LabelManagedBy: "cameleer", orchestrator.LabelTenant: a.Tenant, orchestrator.LabelEnvironment: a.Environment, labelApp: a.Name}
}

// instances lists an app's containers: its current ones by index, then the
// retired ones.
func (d *Orchestrator) instances(ctx context.Context, cli *client, a orchestrator.App) ([]instance, error) {
	cs, err := cli.listContainers(ctx, appLabels(a))
	if err != nil {
		return nil, fmt.Errorf("list the containers of %s: %w", a.Name, err)
	}
	var out []instance
	for _, c := range cs {
		i, err := strconv.Atoi(c.Labels[labelInstance])
		if err != nil {
			continue
		}
		in := instance{containerSummary: c, index: i}
		if len(c.Names) > 0 {
			in.name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool {
		if ri, rj := out[i].retired(a), out[j].retired(a); ri != rj {
			return rj
		}
		if out[i].index != out[j].index {
			return out[i].index < out[j].index
		}
		return out[i].name < out[j].name
	})
	return out, nil
}

// retired tells an instance a rollout renamed out of the way (to be
// removed, or left by a rollout that broke off) from a current one.
func (in instance) retired(a orchestrator.App) bool { return in.name != instanceName(a, in.index) }

// meantToRun tells an instance that runs, or is to run again after a
// crash, from one stopped with its app.
func (in instance) meantToRun() bool {
	return in.State == "running" || in.State == "restarting" || in.State == "paused"
}

// spec is what an app's instances are made of.
type spec struct {
	image string
	port  int
	env   map[string]string
}

func appSpec(a orchestrator.App) spec {
	env := map[string]string{}
	for n, v := range a.Env {
		env[n] = v
	}
	// A secret wins over a plain variable of the same name, as the later
	// entry does on Kubernetes.
	for n, v := range a.Secrets {
		env[n] = v
	}
	return spec{image: a.Image, port: a.Port, env: env}
}

// specOf reads back what an existing instance is made of, for Start and
// Restart, which are given no more than the app's name. The daemon merged
// the image's environment into the container's; the env label says which
// variables are the app's.
func specOf(c containerInfo, name string) (spec, error) {
	port, err := strconv.Atoi(c.Config.Labels[labelPort])
	if err != nil {
		return spec{}, fmt.Errorf("%s has no port label", name)
	}
	var names []string
	if err := json.Unmarshal([]byte(c.Config.Labels[labelEnv]), &names); err != nil {
		return spec{}, fmt.Errorf("read the env label of %s: %w", name, err)
	}
	s := spec{image: c.Config.Labels[labelImage], port: port, env: map[string]string{}}
	for _, v := range c.Config.Env {
		if n, val, _ := strings.Cut(v, "="); slices.Contains(names, n) {
			s.env[n] = val
		}
	}
	return s, nil
}

// digestOf is the digest of a container's definition that its spec label
// carries; the caller sets that label after.
func digestOf(c containerSpec) string {
	// Marshalling sorts map keys, so one definition gives one digest; it
	// cannot fail on these plain types.
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// checkNames holds the names to what the control plane and the runner
// accept, which dockerName relies on.
func checkNames(a orchestrator.App) error {
	for _, n := range []struct{ what, name string }{{"tenant", a.Tenant}, {"environment", a.Environment}, {"app", a.Name}} {
		if err := api.ValidName(n.name); err != nil {
			return fmt.Errorf("%s: %w", n.what, err)
		}
	}
	return nil
}

// Deploy creates the app's environment if it is new, then runs a.Replicas
// instances of the app: instances made of what a asks for stay, the others
// are replaced side by side (the new ones must be ready before the old ones
// go; if they do not get ready, they go and the old ones stay).
func (d *Orchestrator) Deploy(ctx context.Context, a orchestrator.App) error {
	if err := checkNames(a); err != nil {
		return err
	}
	if a.Image == "" || a.Port <= 0 || a.Port > 65535 || a.Replicas < 0 {
		return fmt.Errorf("deploy %s: an image, a port (1-65535) and no negative replicas are needed", a.Name)
	}
	if a.Replicas == 0 {
		a.Replicas = 1
	}
	cli, err := d.connect(ctx)
	if err != nil {
		return err
	}
	if err := d.ensureEnvironment(ctx, cli, a.Tenant, a.Environment); err != nil {
		return err
	}
	if err := pullIfMissing(ctx, cli, a.Image); err != nil {
		return err
	}
	img, err := cli.inspectImage(ctx, a.Image)
	if err != nil {
		return fmt.Errorf("inspect image %s: %w", a.Image, err)
	}
	if runsAsRoot(img.Config.User) {
		return fmt.Errorf("deploy %s: image %s runs as root; an app runs as a user of its own", a.Name, a.Image)
	}
	if err := d.rollout(ctx, cli, a, appSpec(a), a.Replicas, false); err != nil {
		return fmt.Errorf("rollout of %s: %w", a.Name, err)
	}
	return nil
}

func runsAsRoot(user string) bool {
	u, _, _ := strings.Cut(user, ":")
	return u == "" || u == "0" || u == "root"
}

func pullIfMissing(ctx context.Context, cli *client, ref string) error {
	_, err := cli.inspectImage(ctx, ref)
	if err == nil {
		return nil
	}
	if !isNotFound(err) {
		return fmt.Errorf("inspect image %s: %w", ref, err)
	}
	if err := cli.pullImage(ctx, ref); err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return nil
}

// ensureEnvironment creates the environment's network and Traefik, and
// joins Traefik to the network, where they are missing.
func (d *Orchestrator) ensureEnvironment(ctx context.Context, cli *client, tenant, env string) error {
	d.envMu.Lock()
	defer d.envMu.Unlock()
	// Internal: the environment's apps reach each other and are reached
	// by Traefik and this host, as an environment's network policy allows
	// on Kubernetes. Egress fences it (the runner applies the
	// environment's egress before each deploy), and gives it a way out
	// when the environment has egress rules.
	labels, options := envNetworkConfig(tenant, env)
	if err := ensureNetwork(ctx, cli, envNetwork(tenant, env), true, labels, options); err != nil {
		return err
	}
	return d.ensureTraefik(ctx, cli)
}

// envNetworkConfig is the labels and bridge options of an environment's
// network: its bridge is named after the environment, so that the rules
// that fence it can name it before it exists.
func envNetworkConfig(tenant, env string) (labels, options map[string]string) {
	return map[string]string{orchestrator.LabelManagedBy: "cameleer", orchestrator.LabelTenant: tenant, orchestrator.LabelEnvironment: env},
		map[string]string{bridgeNameOption: fenceOf(tenant, env).bridge}
}

func ensureNetwork(ctx context.Context, cli *client, name string, internal bool, labels, options map[string]string) error {
	_, err := cli.inspectNetwork(ctx, name)
	if err == nil {
		return nil
	}
	if !isNotFound(err) {
		return fmt.Errorf("inspect network %s: %w", name, err)
	}
	if err := cli.createNetwork(ctx, name, internal, labels, options, nil); err != nil && !isConflict(err) {
		return fmt.Errorf("create network %s: %w", name, err)
	}
	return nil
}

// traefikSpec is the Traefik container: the Docker provider reading the
// daemon's socket (read-only mount; the socket's group lets Traefik's
// unprivileged user in), routing only containers labelled as cameleer's
// that enable it.
func (d *Orchestrator) traefikSpec() (containerSpec, error) {
	fi, err := os.Stat(d.socket())
	if err != nil {
		return containerSpec{}, fmt.Errorf("traefik: read the Docker socket's group: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return containerSpec{}, fmt.Errorf("traefik: no owner for %s", d.socket())
	}
	port := d.HTTPPort
	if port == 0 {
		port = 80
	}
	s := containerSpec{
		Image: d.TraefikImage,
		Cmd: []string{
			"--entryPoints.web.address=:8000/tcp",
			"--providers.docker=true",
			"--providers.docker.endpoint=unix:///var/run/docker.sock",
			"--providers.docker.exposedByDefault=false",
			"--providers.docker.constraints=Label(`" + orchestrator.LabelManagedBy + "`,`cameleer`)",
			"--global.checkNewVersion=false",
			"--global.sendAnonymousUsage=false",
			"--log.level=INFO",
		},
		User:         "65532:65532",
		Labels:       map[string]string{orchestrator.LabelManagedBy: "cameleer"},
		ExposedPorts: map[string]struct{}{"8000/tcp": {}},
	}
	s.HostConfig = hostConfig{
		NetworkMode:    traefikNetwork,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		GroupAdd:       []string{strconv.FormatUint(uint64(st.Gid), 10)},
		ReadonlyRootfs: true,
		Tmpfs:          map[string]string{"/tmp": "rw,noexec,nosuid,size=16m"},
		Binds:          []string{d.socket() + ":/var/run/docker.sock:ro"},
		PortBindings:   map[string][]portBinding{"8000/tcp": {{HostIP: d.HTTPAddress, HostPort: strconv.Itoa(port)}}},
	}
	s.HostConfig.RestartPolicy.Name = "unless-stopped"
	s.HostConfig.LogConfig.Type = "json-file"
	s.HostConfig.LogConfig.Config = map[string]string{"max-size": "10m", "max-file": "3"}
	s.Labels[labelSpec] = digestOf(s)
	return s, nil
}

// ensureTraefik runs Traefik as traefikSpec says, replacing a Traefik made
// otherwise, and joins it to every environment's network. The caller holds
// d.envMu.
func (d *Orchestrator) ensureTraefik(ctx context.Context, cli *client) error {
	if d.TraefikImage == "" {
		return fmt.Errorf("traefik: no image configured")
	}
	want, err := d.traefikSpec()
	if err != nil {
		return err
	}
	const outdated = traefikName + "-outdated"
	c, err := cli.inspectContainer(ctx, traefikName)
	old, aside := "", false // the Traefik to replace; renamed aside
	switch {
	case isNotFound(err):
		// A replacement that broke off (a crash between renaming the old
		// one aside and starting the new) left the old one stopped.
		if o, err := cli.inspectContainer(ctx, outdated); err == nil {
			old, aside = o.ID, true
		}
	case err != nil:
		return fmt.Errorf("inspect %s: %w", traefikName, err)
	case c.Config.Labels[labelSpec] == want.Labels[labelSpec]:
		if !c.State.Running {
			if err := cli.startContainer(ctx, c.ID); err != nil {
				return fmt.Errorf("start %s: %w", traefikName, err)
			}
		}
		return d.joinEnvironments(ctx, cli)
	default:
		old = c.ID
	}
	if err := ensureNetwork(ctx, cli, traefikNetwork, false, map[string]string{orchestrator.LabelManagedBy: "cameleer"}, nil); err != nil {
		return err
	}
	if err := pullIfMissing(ctx, cli, want.Image); err != nil {
		return err
	}
	// restore brings the old one back under its name after a failure: apps
	// stay routed (by its port) whatever else went wrong.
	restore := func(err error) error {
		if old == "" {
			return err
		}
		bctx := context.WithoutCancel(ctx)
		if aside {
			// Whatever holds the name now is a new one that did not run.
			if rerr := cli.removeContainer(bctx, traefikName); rerr != nil && !isNotFound(rerr) {
				d.log().Warn("remove the new traefik that did not run", "err", rerr)
			}
			if rerr := cli.renameContainer(bctx, old, traefikName); rerr != nil {
				d.log().Warn("give the old traefik its name back", "err", rerr)
			}
		}
		if rerr := cli.startContainer(bctx, old); rerr != nil {
			return fmt.Errorf("%w (and starting the old one again: %v)", err, rerr)
		}
		return fmt.Errorf("%w; the old one runs again", err)
	}
	if old != "" && !aside {
		// The old one steps aside (stopped, it frees the port) and comes
		// back if the new one cannot run.
		d.log().Info("replacing traefik, its configuration changed", "container", traefikName)
		if err := cli.removeContainer(ctx, outdated); err != nil && !isNotFound(err) {
			return fmt.Errorf("remove an earlier outdated %s: %w", traefikName, err)
		}
		if err := cli.stopContainer(ctx, old); err != nil {
			return restore(fmt.Errorf("stop the outdated %s: %w", traefikName, err))
		}
		if err := cli.renameContainer(ctx, old, outdated); err != nil {
			return restore(fmt.Errorf("rename the outdated %s: %w", traefikName, err))
		}
		aside = true
	}
	id, err := cli.createContainer(ctx, traefikName, want)
	if err == nil {
		err = cli.startContainer(ctx, id)
	}
	if err != nil {
		return restore(fmt.Errorf("run the new %s: %w", traefikName, err))
	}
	if old != "" {
		if err := cli.removeContainer(ctx, old); err != nil {
			d.log().Warn("remove the outdated traefik", "err", err)
		}
	}
	d.log().Info("traefik started", "container", traefikName, "image", want.Image, "port", want.HostConfig.PortBindings["8000/tcp"][0].HostPort)
	return d.joinEnvironments(ctx, cli)
}

// bringBackTraefik is ensureTraefik for operations that change no
// environment: Traefik removed or stopped meanwhile comes back.
func (d *Orchestrator) bringBackTraefik(ctx context.Context, cli *client) error {
	d.envMu.Lock()
	defer d.envMu.Unlock()
	return d.ensureTraefik(ctx, cli)
}

// joinEnvironments connects Traefik to every environment network it is not
// on yet.
func (d *Orchestrator) joinEnvironments(ctx context.Context, cli *client) error {
	c, err := cli.inspectContainer(ctx, traefikName)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", traefikName, err)
	}
	nets, err := cli.listNetworks(ctx, map[string]string{orchestrator.LabelManagedBy: "cameleer"})
	if err != nil {
		return fmt.Errorf("list the environments' networks: %w", err)
	}
	for _, n := range nets {
		if _, on := c.NetworkSettings.Networks[n.Name]; on || n.Name == traefikNetwork {
			continue
		}
		if err := cli.connectNetwork(ctx, n.Name, c.ID, nil, ""); err != nil && !isConflict(err) {
			return fmt.Errorf("connect %s to network %s: %w", traefikName, n.Name, err)
		}
	}
	return nil
}

// appContainer is the definition of the app's instances but their index
// (see forInstance): the image's user, no privileges, the environment's
// network only, routed by Traefik at the app's host. Its spec label is the
// digest of all of it, so an instance is replaced when anything in it
// changes, the routing under a new apps domain as much as the image.
func (d *Orchestrator) appContainer(a orchestrator.App, s spec) containerSpec {
	network := envNetwork(a.Tenant, a.Environment)
	router := routerName(a)
	port := strconv.Itoa(s.port)
	var env []string
	names := []string{}
	for _, n := range slices.Sorted(maps.Keys(s.env)) {
		env = append(env, n+"="+s.env[n])
		names = append(names, n)
	}
	namesJSON, _ := json.Marshal(names) // cannot fail: strings
	labels := appLabels(a)
	for k, v := range map[string]string{
		labelImage:               s.image,
		labelPort:                port,
		labelEnv:                 string(namesJSON),
		"traefik.enable":         "true",
		"traefik.docker.network": network,
		"traefik.http.routers." + router + ".rule":                      "Host(`" + d.Host(a) + "`)",
		"traefik.http.routers." + router + ".entrypoints":               "web",
		"traefik.http.routers." + router + ".service":                   router,
		"traefik.http.services." + router + ".loadbalancer.server.port": port,
	} {
		labels[k] = v
	}
	c := containerSpec{
		Image:  s.image,
		Env:    env,
		Labels: labels,
		// The agent's port is neither exposed nor published: only this
		// host reaches it, on the container's address.
		ExposedPorts: map[string]struct{}{port + "/tcp": {}},
	}
	c.HostConfig = hostConfig{
		NetworkMode: network,
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges"},
		Memory:      appMemory,
	}
	// The app's name resolves, on its environment's network, to its
	// instances, as the Service named after it does on Kubernetes.
	c.NetworkingConfig = &networkingConfig{EndpointsConfig: map[string]endpointConfig{network: {Aliases: []string{a.Name}}}}
	c.HostConfig.RestartPolicy.Name = "unless-stopped"
	// Bounded, and readable by the logs endpoint whatever the daemon's
	// default driver is.
	c.HostConfig.LogConfig.Type = "json-file"
	c.HostConfig.LogConfig.Config = map[string]string{"max-size": "10m", "max-file": "5"}
	c.Labels[labelSpec] = digestOf(c)
	return c
}

// forInstance is c for the app's i-th instance.
func (c containerSpec) forInstance(i int) containerSpec {
	c.Labels = maps.Clone(c.Labels)
	c.Labels[labelInstance] = strconv.Itoa(i)
	return c
}

// rollout makes the app run n instances made of s. An instance with the
// right index, name and spec stays (started if it is stopped), unless
// replace; every other one is retired: renamed out of the way, left
// running until the new instances are ready and drainDelay more, then
// removed. If the new instances do not get ready, they are removed and the
// retired ones take their names back.
func (d *Orchestrator) rollout(ctx context.Context, cli *client, a orchestrator.App, s spec, n int, replace bool) error {
	current, err := d.instances(ctx, cli, a)
	if err != nil {
		return err
	}
	want := d.appContainer(a, s)
	kept := map[int]instance{}
	var retired, renamed []instance
	for _, in := range current {
		// A crash-looping or paused instance is replaced, not kept.
		settled := in.State == "running" || in.State == "exited" || in.State == "created"
		if !replace && settled && in.index < n && !in.retired(a) && in.Labels[labelSpec] == want.Labels[labelSpec] {
			kept[in.index] = in
			continue
		}
		retired = append(retired, in)
	}
	for _, in := range retired {
		if in.retired(a) {
			continue
		}
		if err := cli.renameContainer(ctx, in.ID, in.name+"-retired-"+in.ID[:12]); err != nil {
			d.undo(cli, a, nil, renamed, nil)
			return fmt.Errorf("rename %s out of the way: %w", in.name, err)
		}
		renamed = append(renamed, in)
	}

	var created, started []string
	var waits []readyWait
	// The waits for the new instances' exits end with the rollout.
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	fail := func(err error) error {
		d.undo(cli, a, created, renamed, started)
		return err
	}
	for i := 0; i < n; i++ {
		name := instanceName(a, i)
		id := ""
		if in, ok := kept[i]; ok {
			if in.State == "running" {
				waits = append(waits, readyWait{name: name, id: in.ID})
				continue
			}
			id = in.ID
		} else {
			// Not restarted by the daemon until the rollout is ready: a
			// failing app would be restarted over and over meanwhile, and
			// the daemon's wait can report the exit code of a container it
			// has already restarted as 0 (moby#39352). The spec's own
			// policy (and its digest) is set once the rollout succeeded.
			c := want.forInstance(i)
			c.HostConfig.RestartPolicy.Name = "no"
			id, err = cli.createContainer(ctx, name, c)
			if err != nil {
				return fail(fmt.Errorf("create %s: %w", name, err))
			}
			created = append(created, id)
		}
		exited, err := cli.watchExit(watchCtx, id)
		if err != nil {
			return fail(fmt.Errorf("watch %s: %w", name, err))
		}
		if err := cli.startContainer(ctx, id); err != nil {
			return fail(fmt.Errorf("start %s: %w", name, err))
		}
		if _, ok := kept[i]; ok {
			started = append(started, id)
		}
		waits = append(waits, readyWait{name: name, id: id, exited: exited})
	}
	for _, w := range waits {
		if err := waitReady(ctx, cli, a, s.port, w); err != nil {
			return fail(err)
		}
	}
	// Kept instances too: one a rollout created and never got to ready
	// (the node killed meanwhile) has the spec's label but no policy.
	for _, w := range waits {
		if err := cli.setRestartPolicy(ctx, w.id, want.HostConfig.RestartPolicy.Name); err != nil {
			return fail(fmt.Errorf("set the restart policy of %s: %w", w.name, err))
		}
	}
	// Traefik learns of containers from the daemon's events, throttled (2 s
	// by default): the old instances serve on until it surely routes the
	// new ones. Unlike a pod's preStop sleep, this does not take them out of
	// routing before they stop (Traefik drops an instance when it exits),
	// so a request that reaches one as it stops can still fail.
	if slices.ContainsFunc(retired, func(in instance) bool { return in.State == "running" }) {
		select {
		case <-time.After(drainDelay):
		case <-ctx.Done():
			return fmt.Errorf("wait before stopping the replaced instances: %w", ctx.Err())
		}
	}
	for _, in := range retired {
		if err := cli.stopContainer(ctx, in.ID); err != nil && !isNotFound(err) {
			return fmt.Errorf("stop the replaced %s: %w", in.name, err)
		}
		if err := cli.removeContainer(ctx, in.ID); err != nil && !isNotFound(err) {
			return fmt.Errorf("remove the replaced %s: %w", in.name, err)
		}
	}
	return nil
}

// undo takes back a rollout that failed: removes the containers it
// created, stops those it started, and gives renamed ones their names
// back. It runs on its own context: the rollout's may be what ended it.
func (d *Orchestrator) undo(cli *client, a orchestrator.App, created []string, renamed []instance, started []string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, id := range created {
		if err := cli.removeContainer(ctx, id); err != nil {
			d.log().Warn("roll back: remove a new instance", "app", a.Name, "container", id, "err", err)
		}
	}
	for _, id := range started {
		if err := cli.stopContainer(ctx, id); err != nil {
			d.log().Warn("roll back: stop an instance", "app", a.Name, "container", id, "err", err)
		}
	}
	for _, in := range renamed {
		if err := cli.renameContainer(ctx, in.ID, in.name); err != nil {
			d.log().Warn("roll back: rename an instance back", "app", a.Name, "container", in.name, "err", err)
		}
	}
}

// readyWait is an instance to wait for; exited reports its exit if it was
// started by this rollout.
type readyWait struct {
	name, id string
	exited   <-chan exitStatus
}

// waitReady waits until the instance accepts TCP connections on port at
// its address on the environment's network (what the readiness probe
// checks on Kubernetes), and says why not if it exits or does not get
// there in readyTimeout.
func waitReady(ctx context.Context, cli *client, a orchestrator.App, port int, w readyWait) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	network := envNetwork(a.Tenant, a.Environment)
	var last string
	for {
		c, err := cli.inspectContainer(ctx, w.id)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("inspect %s: %w", w.name, err)
		}
		switch {
		case c.State.Status == "exited" || c.State.Status == "dead":
			return exitError(cli, w, c.State.ExitCode, c.State.OOMKilled, c.State.Error)
		case c.State.Running:
			ip := c.NetworkSettings.Networks[network].IPAddress
			if accepts(ctx, ip, port) {
				return nil
			}
			last = fmt.Sprintf("nothing accepts connections on port %d at %q", port, ip)
		default:
			last = "it is " + c.State.Status
		}
		select {
		case st := <-w.exited:
			if st.code < 0 {
				return fmt.Errorf("wait for %s to exit: %v", w.name, st.err)
			}
			msg := ""
			if st.err != nil {
				msg = st.err.Error()
			}
			return exitError(cli, w, st.code, false, msg)
		case <-tick.C:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s is not ready after %s: %s%s", w.name, readyTimeout, last, lastLines(cli, w.id))
	}
	return fmt.Errorf("wait for %s: %w", w.name, ctx.Err())
}

// accepts tells whether something listens on port at ip, an instance's
// address on its environment's network; no address is no answer.
func accepts(ctx context.Context, ip string, port int) bool {
	if ip == "" || port == 0 {
		return false
	}
	conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func exitError(cli *client, w readyWait, code int, oom bool, reason string) error {
	why := fmt.Sprintf("exited with code %d", code)
	if oom {
		why += " (out of memory)"
	}
	if reason != "" {
		why += " (" + reason + ")"
	}
	return fmt.Errorf("%s %s%s", w.name, why, lastLines(cli, w.id))
}

// lastLines is the end of an instance's output, on one line, for an error
// that says why it failed.
func lastLines(cli *client, id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	if err := cli.logs(ctx, id, 10, false, &b); err != nil || strings.TrimSpace(b.String()) == "" {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return "; its last output: " + strings.Join(lines, " | ")
}

// Stop stops the app's containers; they stay, and stay stopped when the
// daemon restarts.
func (d *Orchestrator) Stop(ctx context.Context, a orchestrator.App) error {
	cli, ins, err := d.find(ctx, a)
	if err != nil {
		return err
	}
	for _, in := range ins {
		if err := cli.stopContainer(ctx, in.ID); err != nil {
			return fmt.Errorf("stop %s: %w", in.name, err)
		}
	}
	return nil
}

// Delete removes all the app's containers, retired ones too: its route
// goes with them (Traefik reads it from their labels).
func (d *Orchestrator) Delete(ctx context.Context, a orchestrator.App) error {
	if err := checkNames(a); err != nil {
		return err
	}
	cli, err := d.connect(ctx)
	if err != nil {
		return err
	}
	ins, err := d.instances(ctx, cli, a)
	if err != nil {
		return err
	}
	for _, in := range ins {
		if err := cli.removeContainer(ctx, in.ID); err != nil && !isNotFound(err) {
			return fmt.Errorf("remove %s: %w", in.name, err)
		}
	}
	return nil
}

// Start runs the app again with a.Replicas instances made as its existing
// ones are, and waits for them. Like Deploy and Restart it brings Traefik
// back first, should it be gone or stopped.
func (d *Orchestrator) Start(ctx context.Context, a orchestrator.App) error {
	if a.Replicas < 0 {
		return fmt.Errorf("start %s: %d replicas", a.Name, a.Replicas)
	}
	if a.Replicas == 0 {
		a.Replicas = 1
	}
	cli, s, _, err := d.existing(ctx, a)
	if err != nil {
		return err
	}
	if err := d.bringBackTraefik(ctx, cli); err != nil {
		return err
	}
	if err := d.rollout(ctx, cli, a, s, a.Replicas, false); err != nil {
		return fmt.Errorf("rollout of %s: %w", a.Name, err)
	}
	return nil
}

// Restart replaces the app's running instances with new ones made the same
// way and waits for them; a stopped app stays stopped. Retired instances
// are not counted, and go with the rollout.
func (d *Orchestrator) Restart(ctx context.Context, a orchestrator.App) error {
	cli, s, ins, err := d.existing(ctx, a)
	if err != nil {
		return err
	}
	n := 0
	for _, in := range ins {
		if !in.retired(a) && in.meantToRun() {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if err := d.bringBackTraefik(ctx, cli); err != nil {
		return err
	}
	if err := d.rollout(ctx, cli, a, s, n, true); err != nil {
		return fmt.Errorf("rollout of %s: %w", a.Name, err)
	}
	return nil
}

// find lists a deployed app's instances.
func (d *Orchestrator) find(ctx context.Context, a orchestrator.App) (*client, []instance, error) {
	if err := checkNames(a); err != nil {
		return nil, nil, err
	}
	cli, err := d.connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	ins, err := d.instances(ctx, cli, a)
	if err != nil {
		return nil, nil, err
	}
	if len(ins) == 0 {
		return nil, nil, fmt.Errorf("no such app %s in %s/%s", a.Name, a.Tenant, a.Environment)
	}
	return cli, ins, nil
}

// existing finds a deployed app's instances and what they are made of.
func (d *Orchestrator) existing(ctx context.Context, a orchestrator.App) (*client, spec, []instance, error) {
	cli, ins, err := d.find(ctx, a)
	if err != nil {
		return nil, spec{}, nil, err
	}
	// ins[0] is a current instance where there is one.
	c, err := cli.inspectContainer(ctx, ins[0].ID)
	if err != nil {
		return nil, spec{}, nil, fmt.Errorf("inspect %s: %w", ins[0].name, err)
	}
	s, err := specOf(c, ins[0].name)
	if err != nil {
		return nil, spec{}, nil, err
	}
	return cli, s, ins, nil
}

// Status counts the app's current instances meant to run and, of those,
// the ones that accept connections on the app's port; retired ones, which
// a rollout is about to remove, do not count.
func (d *Orchestrator) Status(ctx context.Context, a orchestrator.App) (orchestrator.Status, error) {
	cli, ins, err := d.find(ctx, a)
	if err != nil {
		return orchestrator.Status{}, err
	}
	st := orchestrator.Status{App: a.Name, Image: ins[0].Labels[labelImage]}
	network := envNetwork(a.Tenant, a.Environment)
	for _, in := range ins {
		if in.retired(a) || !in.meantToRun() {
			continue
		}
		st.Replicas++
		if in.State != "running" {
			continue
		}
		c, err := cli.inspectContainer(ctx, in.ID)
		if err != nil {
			return orchestrator.Status{}, fmt.Errorf("inspect %s: %w", in.name, err)
		}
		port, _ := strconv.Atoi(in.Labels[labelPort])
		if ip := c.NetworkSettings.Networks[network].IPAddress; accepts(ctx, ip, port) {
			st.Ready++
			st.Addresses = append(st.Addresses, ip)
		}
	}
	return st, nil
}

// Instances lists the running containers of the tenant's apps.
func (d *Orchestrator) Instances(ctx context.Context, tenant string) ([]orchestrator.Instance, error) {
	cli, err := d.connect(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := cli.listContainers(ctx, map[string]string{orchestrator.LabelManagedBy: "cameleer", orchestrator.LabelTenant: tenant})
	if err != nil {
		return nil, fmt.Errorf("list the apps of %s: %w", tenant, err)
	}
	var out []orchestrator.Instance
	for _, c := range cs {
		env, app := c.Labels[orchestrator.LabelEnvironment], c.Labels[labelApp]
		ip := c.NetworkSettings.Networks[envNetwork(tenant, env)].IPAddress
		if c.State != "running" || app == "" || ip == "" || len(c.Names) == 0 {
			continue
		}
		out = append(out, orchestrator.Instance{Environment: env, App: app, Name: strings.TrimPrefix(c.Names[0], "/"), Address: ip})
	}
	return out, nil
}

// List names the apps of an environment.
func (d *Orchestrator) List(ctx context.Context, tenant, env string) ([]string, error) {
	cli, err := d.connect(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := cli.listContainers(ctx, map[string]string{orchestrator.LabelManagedBy: "cameleer", orchestrator.LabelTenant: tenant, orchestrator.LabelEnvironment: env})
	if err != nil {
		return nil, fmt.Errorf("list the apps of %s/%s: %w", tenant, env, err)
	}
	var names []string
	for _, c := range cs {
		if n := c.Labels[labelApp]; n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// Logs writes the output of the app's first instance to w (as kubectl logs
// of a deployment picks one pod): the last tail lines (all if tail < 0),
// then, with follow, what comes until ctx is done or the instance stops.
func (d *Orchestrator) Logs(ctx context.Context, a orchestrator.App, tail int, follow bool, w io.Writer) error {
	cli, ins, err := d.find(ctx, a)
	if err != nil {
		return err
	}
	if err := cli.logs(ctx, ins[0].ID, tail, follow, w); err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs of %s: %w", a.Name, err)
	}
	return nil
}
