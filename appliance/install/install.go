// Package install sets a node up on this host: preflight checks, the payload
// extracted, PKI and configs written, the node started (systemd where it
// runs, else a detached `cameleer run`), then progress shown until the node
// is Ready. Running it again is harmless; after an install killed half-way it
// converges.
package install

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/join"
	"github.com/cameleer/cameleer/appliance/node"
	"github.com/cameleer/cameleer/appliance/preflight"
	"github.com/cameleer/cameleer/internal/atomicfile"
)

// Options are install's flags. Zero values keep what an earlier install
// recorded, or the defaults.
type Options struct {
	DataDir    string
	NodeIP     string
	HTTPPort   int
	HTTPSPort  int
	AppsDomain string
	NoStart    bool
	// Timeout bounds the wait for the node to be Ready.
	Timeout time.Duration
	// Proxy is the proxy install was run with (its environment's
	// HTTPS_PROXY, HTTP_PROXY, NO_PROXY); empty keeps the one recorded.
	Proxy config.Proxy
	// CABundle is a PEM file of CAs to trust beside the system's (an
	// intercepting proxy's).
	CABundle string
	// Join is a join token: the node joins that cluster as a worker
	// (`cameleer join`) instead of being a cluster of its own.
	Join string
	// NodeName names the node; empty: the host's name.
	NodeName string
}

// Args are the flags of `cameleer install` that give o: what a bundle's
// cameleer is run with to install as o asks.
func (o Options) Args() []string {
	var a []string
	add := func(flag, v string) {
		if v != "" && v != "0" && v != "false" {
			a = append(a, flag+"="+v)
		}
	}
	add("--data-dir", o.DataDir)
	add("--node-ip", o.NodeIP)
	add("--http-port", strconv.Itoa(o.HTTPPort))
	add("--https-port", strconv.Itoa(o.HTTPSPort))
	add("--apps-domain", o.AppsDomain)
	add("--no-start", strconv.FormatBool(o.NoStart))
	add("--ca-bundle", o.CABundle)
	add("--node-name", o.NodeName)
	if o.Timeout != 0 {
		add("--timeout", o.Timeout.String())
	}
	return a
}

// Install runs the steps, printing progress to out.
func Install(ctx context.Context, out io.Writer, opts Options) error {
	c, err := configure(opts)
	if err != nil {
		return err
	}
	step := func(format string, a ...any) { fmt.Fprintf(out, "==> "+format+"\n", a...) }

	running := node.RunningPID(c)
	step("Checking the host")
	results := preflight.Run(preflight.Options{Config: c, SkipPorts: running != 0})
	failed := 0
	for _, r := range results {
		if r.Err != nil {
			fmt.Fprintf(out, "    FAIL %s: %v\n", r.Name, r.Err)
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d preflight check(s) failed; fix them and run install again", failed)
	}
	fmt.Fprintf(out, "    %d checks passed\n", len(results))

	if opts.CABundle != "" {
		if err := caBundle(c, opts.CABundle); err != nil {
			return err
		}
	}
	if opts.Join != "" && c.JoinToken == "" {
		step("Joining the cluster of %s as a worker", c.Server)
		// What the join makes (its keys, the dirs for them) goes again
		// if the controller refuses: nothing of this host is in the
		// cluster. What was there before stays.
		made := firstMissing(c.DataDir, c.PKIDir())
		joined, resp, err := join.Join(ctx, c, opts.Join)
		if err != nil {
			var re *join.RefusedError
			if errors.As(err, &re) && made != "" {
				os.RemoveAll(made)
			}
			return err
		}
		c = joined
		if resp.Again {
			fmt.Fprintf(out, "    the controller had added this node with this token already\n")
		}
	}
	if err := c.Save(); err != nil {
		return err
	}
	if p := c.Proxy; p.HTTPS != "" || p.HTTP != "" {
		step("The node's traffic goes through the proxy %s (NO_PROXY gains the node's own networks)", cmp.Or(p.HTTPS, p.HTTP))
	}
	step("Extracting the engine and writing its configuration into %s", c.DataDir)
	if _, _, err := node.Prepare(ctx, c); err != nil {
		return err
	}
	if opts.NoStart {
		step("Installed; not started (--no-start). Start it with: cameleer run --data-dir %s", c.DataDir)
		return nil
	}
	switch {
	case running != 0:
		step("The node is already running (pid %d)", running)
	case systemdRunning():
		step("Starting the cameleer systemd unit")
		if err := installUnit(ctx, c); err != nil {
			return err
		}
	default:
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		pid, err := node.StartDetached(c, exe)
		if err != nil {
			return err
		}
		step("Started `cameleer run` in the background (pid %d, log %s); this host has no systemd,", pid, c.Path("logs", "cameleer.log"))
		fmt.Fprintf(out, "    so after a reboot start the node again with: cameleer run --data-dir %s\n", c.DataDir)
	}
	step("Waiting for the node to be Ready")
	if err := wait(ctx, out, c, opts.Timeout); err != nil {
		return err
	}
	step("The node %s is Ready.", c.NodeName)
	if c.IsWorker() {
		fmt.Fprintf(out, `
It runs apps for its controller, %s: see every node with `+"`cameleer status`"+` here
or there, and the cluster with `+"`cameleer kubectl get nodes`"+` on the controller.
`, c.Server)
		return nil
	}
	fmt.Fprintf(out, `
Next:
  cameleer status                     components, their state and restarts
  cameleer kubectl get pods -A        the cluster (admin kubeconfig: %s)
  http://%s:%d/                       Traefik, routing Ingresses by Host header
`, c.AdminKubeconfig(), c.NodeIP, c.HTTPPort)
	return nil
}

// configure merges the flags into what an earlier install recorded.
func configure(opts Options) (config.Config, error) {
	c, err := config.Load(opts.DataDir)
	if errors.Is(err, config.ErrNotInstalled) {
		c, err = config.Default(opts.DataDir)
	}
	if err != nil {
		return c, err
	}
	if opts.Join != "" {
		if err := joining(&c, opts.Join); err != nil {
			return c, err
		}
	}
	if opts.NodeName != "" {
		c.NodeName = opts.NodeName
	}
	if opts.NodeIP != "" {
		c.NodeIP = opts.NodeIP
	}
	if c.NodeIP == "" {
		if c.NodeIP, err = config.DefaultRouteIP(); err != nil {
			return c, err
		}
	}
	if opts.HTTPPort != 0 {
		c.HTTPPort = opts.HTTPPort
	}
	if opts.HTTPSPort != 0 {
		c.HTTPSPort = opts.HTTPSPort
	}
	if opts.AppsDomain != "" {
		c.AppsDomain = opts.AppsDomain
	}
	if opts.Proxy.HTTPS != "" || opts.Proxy.HTTP != "" {
		opts.Proxy.CABundle = c.Proxy.CABundle
		c.Proxy = opts.Proxy
	}
	if opts.CABundle != "" {
		c.Proxy.CABundle = true
	}
	return c, c.Validate()
}

// firstMissing is the first of dirs (each inside the one before) that does
// not exist: what making the last would create. Empty: all exist.
func firstMissing(dirs ...string) string {
	for _, d := range dirs {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			return d
		}
	}
	return ""
}

// joining makes c a worker of token's cluster, unless it is a node
// already: of that token (the same join again changes nothing) or of
// another cluster (refused).
func joining(c *config.Config, token string) error {
	tok, err := join.ParseToken(token)
	if err != nil {
		return err
	}
	switch {
	case c.IsWorker() && c.JoinToken == tok.ID:
		return nil
	case c.IsWorker():
		return fmt.Errorf("this host joined the cluster of %s already (token %s): `cameleer reset` it before it joins another", c.Server, c.JoinToken)
	case c.NodeIP != "":
		return fmt.Errorf("this host is a cluster's controller already (%s): `cameleer reset` it before it joins another cluster", c.DataDir)
	}
	host, port, _ := net.SplitHostPort(tok.Server)
	c.Role, c.Server = config.Worker, host
	c.ClusterPort, _ = strconv.Atoi(port)
	return nil
}

// caBundle keeps the CAs of file in the data dir, and beside the system's
// in the bundle run's SSL_CERT_FILE names.
func caBundle(c config.Config, file string) error {
	extra, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("--ca-bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(extra) {
		return fmt.Errorf("--ca-bundle %s holds no PEM certificate", file)
	}
	var system []byte
	for _, f := range []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/ca-bundle.pem"} {
		if system, err = os.ReadFile(f); err == nil {
			break
		}
	}
	if err := os.MkdirAll(c.EtcDir(), 0o755); err != nil {
		return err
	}
	if _, err := atomicfile.WriteFile(c.ProxyCAFile(), extra, 0o644); err != nil {
		return err
	}
	_, err = atomicfile.WriteFile(c.CABundleFile(), append(append(system, '\n'), extra...), 0o644)
	return err
}

func systemdRunning() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

const unitPath = "/etc/systemd/system/cameleer.service"

func installUnit(ctx context.Context, c config.Config) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.WriteFile(unitPath, []byte(unit(exe, c)), 0o644); err != nil {
		return fmt.Errorf("write systemd unit: %w", err)
	}
	for _, args := range [][]string{{"daemon-reload"}, {"enable", "--now", "cameleer.service"}} {
		if out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("systemctl %s: %w: %s", args[0], err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// unit is the systemd unit that runs exe's node. KillMode=process: a stop
// signals only `cameleer run`, which stops its components itself, and the
// container shims in the unit's cgroup live on with their containers;
// Delegate: the engine makes cgroups below the unit's.
func unit(exe string, c config.Config) string {
	// The proxy is in the environment from the start (run puts it there
	// too, from the config): systemctl show names it.
	var env strings.Builder
	for _, kv := range c.ProxyEnv() {
		fmt.Fprintf(&env, "Environment=%s\n", unitArg(kv))
	}
	return fmt.Sprintf(`[Unit]
Description=Cameleer node
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
%sExecStart=%s run --data-dir %s
KillMode=process
Delegate=yes
LimitNOFILE=1048576
TasksMax=infinity
Restart=always
RestartSec=5s
TimeoutStopSec=60s

[Install]
WantedBy=multi-user.target
`, env.String(), unitArg(exe), unitArg(c.DataDir))
}

// unitArg writes an argument of a unit's command line as systemd reads it:
// % doubled (it starts a specifier), and in double quotes with \ and "
// escaped when it holds a space, a quote or a backslash.
func unitArg(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	if !strings.ContainsAny(s, " \t\"\\'") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// wait prints each component as it gets ready, until the whole node is.
func wait(ctx context.Context, out io.Writer, c config.Config, timeout time.Duration) error {
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var seen []string
	var last node.Status
	nodeReady := false
	for {
		st, err := node.QueryStatus(ctx, c)
		if err == nil {
			last = st
			for _, cs := range st.Components {
				if cs.Ready && !slices.Contains(seen, cs.Name) {
					seen = append(seen, cs.Name)
					fmt.Fprintf(out, "    %-24s ready  (%.1fs)\n", cs.Name, time.Since(start).Seconds())
				}
			}
			if !nodeReady && st.Node != nil && st.Node.Status == "True" {
				nodeReady = true
				fmt.Fprintf(out, "    %-24s Ready  (%.1fs)\n", "node condition", time.Since(start).Seconds())
			}
			if st.Ready {
				fmt.Fprintf(out, "    %-24s ready  (%.1fs)\n", "all components", time.Since(start).Seconds())
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the node is not Ready after %s: %s (see `cameleer status` and %s)", timeout, pending(last), c.LogDir())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func pending(st node.Status) string {
	var names []string
	for _, cs := range st.Components {
		if !cs.Ready {
			s := cs.Name
			if cs.Message != "" {
				s += " (" + cs.Message + ")"
			}
			names = append(names, s)
		}
	}
	if len(names) == 0 {
		return "waiting for the node's Ready condition"
	}
	return "waiting for " + strings.Join(names, ", ")
}
