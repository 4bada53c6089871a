package docker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/cameleer/cameleer/appliance/orchestrator"
)

// Egress on Docker. Every environment's network is fenced by two iptables
// chains of cameleer's, jumped to from the filter table's FORWARD (what
// its apps send through this host) and INPUT (what they send to this host
// itself) for what comes in from its bridge: they let through what the
// environment's egress allows and refuse the rest. An internal network is
// no fence on its own: its containers still have a route to this host's
// addresses, and with a daemon that leaves iptables alone, beyond. The
// chains are ours rather than rules in Docker's DOCKER-USER: they hold
// whether the daemon manages iptables or not, and DOCKER-USER does not see
// what goes to the host.
//
// A network without egress rules is also internal: when the daemon
// manages iptables, its isolation rules keep it from the world outside the
// host before the runner runs after a restart of the host (iptables rules
// do not survive it, networks do). One with rules has a way out, the
// daemon's gateway.

// bridgeNameOption names the Linux bridge of a Docker bridge network.
const bridgeNameOption = "com.docker.network.bridge.name"

// fence names what keeps an environment's apps in: the bridge of its
// network, a name of ours (so the rules can name it before it exists, and
// "cml+" matches every environment's), and its two chains.
type fence struct{ bridge, forward, input string }

func fenceOf(tenant, env string) fence {
	sum := sha256.Sum256([]byte(tenant + "/" + env))
	// 15 characters, as many as a Linux interface name holds.
	h := hex.EncodeToString(sum[:])[:11]
	return fence{bridge: "cml-" + h, forward: "CAMELEER-F-" + h, input: "CAMELEER-I-" + h}
}

// reject refuses at once rather than leave the app waiting for a timeout.
const reject = "-j REJECT --reject-with icmp-admin-prohibited"

// restore is the iptables-restore input that fills the fence's chains:
// answers to connections made to the apps pass; so do, through this host,
// what stays on the environment's bridge (which bridged traffic meets when
// the host filters it); DNS to the name servers the daemon forwards the
// apps' queries to; and the rules' destinations. Anything else is refused,
// another environment's network before any rule.
func (f fence) restore(rules []orchestrator.EgressRule, dns []netip.Addr) string {
	var b strings.Builder
	b.WriteString("*filter\n")
	chains := []string{f.forward, f.input}
	for _, c := range chains {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	// Only what answers a connection made to the apps: what they send on
	// a connection of their own meets the rules packet by packet, so a
	// rule that goes closes its connections too.
	for _, c := range chains {
		fmt.Fprintf(&b, "-A %s -m conntrack --ctstate ESTABLISHED,RELATED --ctdir REPLY -j RETURN\n", c)
	}
	fmt.Fprintf(&b, "-A %s -o %s -j RETURN\n", f.forward, f.bridge)
	fmt.Fprintf(&b, "-A %s -o cml+ %s\n", f.forward, reject)
	allow := func(to netip.Prefix, proto string, ports []int) {
		// multiport takes 15 ports a rule.
		for chunk := range slices.Chunk(ports, 15) {
			list := make([]string, len(chunk))
			for i, p := range chunk {
				list[i] = strconv.Itoa(p)
			}
			for _, c := range chains {
				fmt.Fprintf(&b, "-A %s -d %s -p %s -m multiport --dports %s -j RETURN\n", c, to, proto, strings.Join(list, ","))
			}
		}
	}
	for _, a := range dns {
		for _, proto := range []string{"udp", "tcp"} {
			allow(netip.PrefixFrom(a, a.BitLen()), proto, []int{53})
		}
	}
	for _, r := range rules {
		for _, to := range r.To {
			allow(to, r.Protocol, r.Ports)
		}
	}
	for _, c := range chains {
		fmt.Fprintf(&b, "-A %s %s\n", c, reject)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// jumps send what comes in from the bridge through the chains.
func (f fence) jumps() [][]string {
	return [][]string{{"FORWARD", "-i", f.bridge, "-j", f.forward}, {"INPUT", "-i", f.bridge, "-j", f.input}}
}

// apply fills the chains (in one go: the rules change atomically) and
// makes sure the jumps to them are there, put first where they are not.
func (f fence) apply(ctx context.Context, rules []orchestrator.EgressRule, dns []netip.Addr) error {
	if err := iptables(ctx, f.restore(rules, dns), "iptables-restore", "--noflush"); err != nil {
		return err
	}
	for _, j := range f.jumps() {
		if iptables(ctx, "", "iptables", append([]string{"-C"}, j...)...) == nil {
			continue
		}
		if err := iptables(ctx, "", "iptables", append([]string{"-I", j[0], "1"}, j[1:]...)...); err != nil {
			return err
		}
	}
	return nil
}

func (f fence) has(ctx context.Context, chain string) bool {
	return iptables(ctx, "", "iptables", "-S", chain) == nil
}

// iptables runs an iptables command of the host's, waiting for the
// xtables lock, with stdin as its input.
func iptables(ctx context.Context, stdin, cmd string, args ...string) error {
	c := exec.CommandContext(ctx, cmd, append([]string{"-w"}, args...)...)
	c.Stdin = strings.NewReader(stdin)
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", cmd, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// resolvConfs are where the daemon reads the name servers it forwards its
// containers' queries to: the host's, or, where those are only a loopback
// stub (systemd-resolved), the servers behind it.
var resolvConfs = []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"}

// hostResolvers are the IPv4 name servers of the first of files that names
// any other than loopback ones.
func hostResolvers(files []string) []netip.Addr {
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		var addrs []netip.Addr
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 2 || fields[0] != "nameserver" {
				continue
			}
			if a, err := netip.ParseAddr(fields[1]); err == nil && a.Is4() && !a.IsLoopback() {
				addrs = append(addrs, a)
			}
		}
		f.Close()
		if len(addrs) > 0 {
			return addrs
		}
	}
	return nil
}

// Egress fences an environment's network to what rules allow (nothing
// but DNS when there are none), making it first where it is missing (see
// the top of this file). Switching between no rules and some, or a
// network an earlier runner made without a bridge of ours, makes the
// network again (remakeNetwork).
func (d *Orchestrator) Egress(ctx context.Context, tenant, env string, rules []orchestrator.EgressRule) error {
	if err := checkNames(orchestrator.App{Tenant: tenant, Environment: env, Name: "egress"}); err != nil {
		return err
	}
	cli, err := d.connect(ctx)
	if err != nil {
		return err
	}
	d.envMu.Lock()
	defer d.envMu.Unlock()
	f, name, internal := fenceOf(tenant, env), envNetwork(tenant, env), len(rules) == 0
	// Fenced before the network has a way out.
	if err := f.apply(ctx, rules, hostResolvers(resolvConfs)); err != nil {
		return fmt.Errorf("fence the network of %s/%s: %w", tenant, env, err)
	}
	n, err := cli.inspectNetwork(ctx, name)
	switch {
	case isNotFound(err):
		labels, options := envNetworkConfig(tenant, env)
		if err := ensureNetwork(ctx, cli, name, internal, labels, options); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("inspect network %s: %w", name, err)
	case n.Internal != internal || n.Options[bridgeNameOption] != f.bridge:
		if err := d.remakeNetwork(ctx, cli, n, tenant, env, internal); err != nil {
			return err
		}
	}
	return d.rejoin(ctx, cli, tenant, env)
}

// remakeNetwork replaces an environment's network n with one made anew,
// internal or not, on the same subnet, and connects to it what was on the
// old one, each running container at the address it had: Traefik, which
// learns of addresses only when a container starts, routes on, and the
// apps' open connections may survive the moment. An app's instances get
// the app's name, as Deploy made them.
func (d *Orchestrator) remakeNetwork(ctx context.Context, cli *client, n networkInfo, tenant, env string, internal bool) error {
	on, err := cli.containersOn(ctx, n.Name)
	if err != nil {
		return fmt.Errorf("list the containers on network %s: %w", n.Name, err)
	}
	d.log().Info("making an environment's network again for its egress", "network", n.Name, "internal", internal, "containers", len(on))
	for _, c := range on {
		if err := cli.disconnectNetwork(ctx, n.Name, c.ID); err != nil {
			return fmt.Errorf("disconnect %s from network %s: %w", c.ID[:12], n.Name, err)
		}
	}
	if err := cli.removeNetwork(ctx, n.Name); err != nil {
		return fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	labels, options := envNetworkConfig(tenant, env)
	if err := cli.createNetwork(ctx, n.Name, internal, labels, options, n.IPAM.Config); err != nil {
		return fmt.Errorf("create network %s: %w", n.Name, err)
	}
	for _, c := range on {
		ip, _, _ := strings.Cut(n.Containers[c.ID].IPv4Address, "/")
		if err := cli.connectNetwork(ctx, n.Name, c.ID, aliases(c), ip); err != nil {
			return fmt.Errorf("connect %s to network %s: %w", c.ID[:12], n.Name, err)
		}
	}
	return nil
}

// rejoin connects to an environment's network its containers that are not
// on it (a remaking that broke off half-way left them off) and Traefik.
func (d *Orchestrator) rejoin(ctx context.Context, cli *client, tenant, env string) error {
	name := envNetwork(tenant, env)
	cs, err := cli.listContainers(ctx, map[string]string{orchestrator.LabelManagedBy: "cameleer", orchestrator.LabelTenant: tenant, orchestrator.LabelEnvironment: env})
	if err != nil {
		return fmt.Errorf("list the containers of %s/%s: %w", tenant, env, err)
	}
	for _, c := range cs {
		if _, on := c.NetworkSettings.Networks[name]; on {
			continue
		}
		if err := cli.connectNetwork(ctx, name, c.ID, aliases(c), ""); err != nil {
			return fmt.Errorf("connect %s to network %s: %w", c.ID[:12], name, err)
		}
	}
	if _, err := cli.inspectContainer(ctx, traefikName); isNotFound(err) {
		return nil
	}
	return d.joinEnvironments(ctx, cli)
}

// aliases are the names a container has on its environment's network
// besides its own: an app's instance, the app's.
func aliases(c containerSummary) []string {
	if app := c.Labels[labelApp]; app != "" {
		return []string{app}
	}
	return nil
}

// FenceEnvironments fences shut every environment network of a bridge of
// ours whose fence is missing: after a restart of the host the networks
// are back, the iptables rules are not. Egress puts the environment's rules
// in place when the control plane sends them.
func (d *Orchestrator) FenceEnvironments(ctx context.Context) error {
	cli, err := d.connect(ctx)
	if err != nil {
		return err
	}
	d.envMu.Lock()
	defer d.envMu.Unlock()
	nets, err := cli.listNetworks(ctx, map[string]string{orchestrator.LabelManagedBy: "cameleer"})
	if err != nil {
		return fmt.Errorf("list the environments' networks: %w", err)
	}
	for _, n := range nets {
		f := fenceOf(n.Labels[orchestrator.LabelTenant], n.Labels[orchestrator.LabelEnvironment])
		if n.Options[bridgeNameOption] != f.bridge || (f.has(ctx, f.forward) && f.has(ctx, f.input)) {
			continue
		}
		d.log().Warn("an environment's network has no fence: fenced shut until its egress arrives", "network", n.Name)
		if err := f.apply(ctx, nil, hostResolvers(resolvConfs)); err != nil {
			return fmt.Errorf("fence network %s: %w", n.Name, err)
		}
	}
	return nil
}
