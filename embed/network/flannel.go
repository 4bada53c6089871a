package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/flannel-io/flannel/pkg/backend"
	_ "github.com/flannel-io/flannel/pkg/backend/vxlan" // registers the vxlan backend
	"github.com/flannel-io/flannel/pkg/ip"
	"github.com/flannel-io/flannel/pkg/ipmatch"
	"github.com/flannel-io/flannel/pkg/subnet/kube"
	"github.com/flannel-io/flannel/pkg/trafficmngr/iptables"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

const (
	// annotationPrefix is where flannel keeps its lease data on the Node
	// (backend type, VTEP MAC, public IP); the same as flanneld and K3s.
	annotationPrefix = "flannel.alpha.coreos.com"
	// How often (seconds) the iptables rules are checked and repaired:
	// flanneld checks every 5s, K3s every 60s and 50s.
	masqResync    = 60
	forwardResync = 50
)

func runFlannel(ctx context.Context, cfg *flannelConfig) error {
	setupLogging(cfg.verbosity)
	client, host, err := newClient(cfg.kubeconfig, "flannel")
	if err != nil {
		return err
	}
	node, err := waitForNode(ctx, client, host, cfg.nodeName, cfg.waitTimeout, hasPodCIDR(cfg.clusterCIDR))
	if err != nil {
		return err
	}
	klog.Infof("Node %s has pod CIDR %s", node.Name, node.Spec.PodCIDR)
	if err := needExecutables("iptables", "iptables", "iptables-restore"); err != nil {
		return err
	}
	if err := prepareKernel(); err != nil {
		return err
	}
	extIface, err := externalInterface(cfg.iface, node)
	if err != nil {
		return err
	}

	// flannel's Kubernetes subnet manager reads its network config from a
	// file and the node name from $NODE_NAME.
	netConfPath := filepath.Join(filepath.Dir(cfg.subnetFile), "net-conf.json")
	if err := writeFileAtomic(netConfPath, netConf(cfg)); err != nil {
		return fmt.Errorf("writing flannel network config: %w", err)
	}
	if err := os.Setenv("NODE_NAME", cfg.nodeName); err != nil {
		return err
	}
	sm, err := kube.NewSubnetManager(ctx, "", cfg.kubeconfig, annotationPrefix, netConfPath, false)
	if err != nil {
		return fmt.Errorf("flannel subnet manager: %w", err)
	}
	config, err := sm.GetNetworkConfig(ctx)
	if err != nil {
		return fmt.Errorf("flannel network config: %w", err)
	}

	var wg sync.WaitGroup
	be, err := backend.NewManager(ctx, sm, extIface).GetBackend(config.BackendType)
	if err != nil {
		return fmt.Errorf("flannel backend: %w", err)
	}
	bn, err := be.RegisterNetwork(ctx, &wg, config)
	if err != nil {
		return fmt.Errorf("flannel vxlan network: %w", err)
	}
	lease := bn.Lease()
	klog.Infof("Lease %s on %s (%s), MTU %d", lease.Subnet, extIface.Iface.Name, extIface.ExtAddr, bn.MTU())

	// The same rules as flanneld: FLANNEL-POSTRTG in nat (masquerade), and
	// FLANNEL-FWD in filter (accept forwarding to and from the pod network).
	// Both are re-checked periodically and rebuilt when something removed them.
	rules := &iptables.IPTablesManager{}
	if err := rules.Init(ctx); err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	if cfg.ipMasq {
		prevNetwork, prevSubnet := readSubnetFile(cfg.subnetFile)
		err := rules.SetupAndEnsureMasqRules(ctx, config.Network, prevSubnet, prevNetwork,
			ip.IP6Net{}, ip.IP6Net{}, ip.IP6Net{}, lease, masqResync, false)
		if err != nil {
			return fmt.Errorf("masquerade rules: %w", err)
		}
	}
	rules.SetupAndEnsureForwardRules(ctx, config.Network, ip.IP6Net{}, forwardResync)

	if err := sm.HandleSubnetFile(cfg.subnetFile, config, cfg.ipMasq, lease.Subnet, lease.IPv6Subnet, bn.MTU()); err != nil {
		return fmt.Errorf("writing subnet file: %w", err)
	}
	klog.Infof("Wrote subnet file %s", cfg.subnetFile)

	wg.Add(1)
	go func() {
		defer wg.Done()
		bn.Run(ctx)
	}()
	if err := sm.CompleteLease(ctx, lease, &wg); err != nil {
		klog.Warningf("Completing the lease: %v", err)
	}
	klog.Info("Flannel is running")
	<-ctx.Done()
	klog.Info("Stopping flannel; the vxlan device, routes and rules stay in place")
	waitGroupTimeout(&wg)
	return nil
}

// netConf is flannel's network config (net-conf.json) for our flags.
func netConf(cfg *flannelConfig) []byte {
	type vxlan struct {
		Type string
		VNI  int
		Port int
	}
	conf := struct {
		Network    string
		EnableIPv4 bool
		EnableIPv6 bool
		Backend    vxlan
	}{
		Network:    cfg.clusterCIDR.String(),
		EnableIPv4: true,
		Backend:    vxlan{Type: "vxlan", VNI: cfg.vxlanVNI, Port: cfg.vxlanPort},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		panic(err) // cannot happen: plain strings, ints and bools
	}
	return append(b, '\n')
}

// externalInterface picks the interface vxlan packets leave by: --iface if
// given; else the interface holding the node's IPv4 InternalIP (what kubelet
// --node-ip chose and what the other nodes reach), else the interface of the
// default route.
func externalInterface(iface string, node *corev1.Node) (*backend.ExternalInterface, error) {
	ipv4, err := ipmatch.GetIPFamily(true, false)
	if err != nil {
		return nil, err
	}
	if iface != "" {
		ext, err := ipmatch.LookupExtIface(iface, "", "", ipv4, ipmatch.PublicIPOpts{})
		if err != nil {
			return nil, fmt.Errorf("--iface %s: %w", iface, err)
		}
		return ext, nil
	}
	if nodeIP := nodeIPv4(node); nodeIP != nil {
		ext, err := ipmatch.LookupExtIface(nodeIP.String(), "", "", ipv4, ipmatch.PublicIPOpts{})
		if err == nil {
			return ext, nil
		}
		klog.Infof("Node IP %s is not on a local interface (%v); using the default route", nodeIP, err)
	}
	ext, err := ipmatch.LookupExtIface("", "", "", ipv4, ipmatch.PublicIPOpts{})
	if err != nil {
		return nil, fmt.Errorf("no --iface given, node %q has no local IPv4 address, and %w", node.Name, err)
	}
	return ext, nil
}

// prepareKernel checks and sets what pod traffic through the cni0 bridge and
// the vxlan device needs: forwarding, and bridged packets passing iptables.
func prepareKernel() error {
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil {
		return errors.New("the br_netfilter kernel module is not loaded (modprobe br_netfilter)")
	}
	for _, key := range []string{"net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"} {
		if err := ensureSysctl(key, "1"); err != nil {
			return err
		}
	}
	return nil
}

func ensureSysctl(key, value string) error {
	path := filepath.Join("/proc/sys", key)
	cur, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", key, err)
	}
	if string(trimNewline(cur)) == value {
		return nil
	}
	klog.Infof("Setting sysctl %s=%s", key, value)
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// readSubnetFile returns FLANNEL_NETWORK and FLANNEL_SUBNET of a previous run
// (zero values when absent), so that masquerade rules for an old network or
// subnet are removed before the new ones go in.
func readSubnetFile(path string) (network, subnet ip.IP4Net) {
	data, err := os.ReadFile(path)
	if err != nil {
		return network, subnet
	}
	env := parseEnv(string(data))
	if _, n, err := net.ParseCIDR(env["FLANNEL_NETWORK"]); err == nil && n.IP.To4() != nil {
		network = ip.FromIPNet(n)
	}
	if _, n, err := net.ParseCIDR(env["FLANNEL_SUBNET"]); err == nil && n.IP.To4() != nil {
		subnet = ip.FromIPNet(n)
	}
	return network, subnet
}
