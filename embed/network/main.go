// Command cameleer-net is the pod network of the Cameleer engine: one static
// binary with the two networking daemons K3s runs inside its agent.
//
//	cameleer-net flannel [flags]   flannel overlay (vxlan), Kubernetes subnet manager
//	cameleer-net netpol [flags]    NetworkPolicy controller (kube-router, K3s fork)
//	cameleer-net version           versions of flannel and kube-router (also --version)
//
// # flannel
//
// Waits until kube-controller-manager (--allocate-node-cidrs) has given the
// node a spec.podCIDR, creates the vxlan device flannel.<VNI>, annotates the
// node for its peers, keeps routes, ARP and FDB entries for the other nodes,
// installs flanneld's iptables rules (FLANNEL-POSTRTG masquerade in nat,
// FLANNEL-FWD accept in filter) and writes the subnet file that the flannel CNI
// plugin reads (FLANNEL_NETWORK, FLANNEL_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ).
//
//	--kubeconfig PATH     kubeconfig of the node (required)
//	--node-name NAME      this node's name (default: the host name, lower case)
//	--iface IFACE         interface name or IPv4 address carrying the vxlan
//	                      traffic (default: the interface holding the node's
//	                      InternalIP, else the interface of the default route)
//	--cluster-cidr CIDR   pod network of the cluster, IPv4 (default 10.42.0.0/16);
//	                      --pod-cidr is an alias
//	--subnet-file PATH    subnet file for the CNI plugin (default
//	                      /run/flannel/subnet.env); flannel's network config is
//	                      written next to it as net-conf.json
//	--vxlan-port PORT     UDP port of the vxlan device (default 8472)
//	--vxlan-vni VNI       vxlan network identifier (default 1)
//	--ip-masq             masquerade pod traffic leaving the cluster network
//	                      (default true; --ip-masq=false to turn off)
//	--wait-timeout D      how long to wait for the apiserver, the node and its
//	                      pod CIDR before giving up (default 2m)
//	--v N                 log verbosity (klog)
//
// It also sets net.ipv4.ip_forward=1 and net.bridge.bridge-nf-call-iptables=1
// and fails when the br_netfilter module is not loaded.
//
// # netpol
//
// Runs kube-router's network policy controller the way K3s does: informers on
// pods, namespaces and networkpolicies, iptables and ipset handlers for IPv4,
// a full sync every --sync-period and on every change.
//
//	--kubeconfig PATH        kubeconfig of the node (required)
//	--node-name NAME         this node's name (default: the host name, lower case)
//	--cluster-cidr CIDR      pod network of the cluster, IPv4 (default 10.42.0.0/16)
//	--service-cidr CIDR      service ClusterIP range, IPv4 (default 10.43.0.0/16)
//	--node-port-range R      NodePort range (default 30000-32767)
//	--sync-period D          period of the full iptables sync (default 5m)
//	--wait-timeout D         how long to wait for the apiserver and the node's
//	                         addresses before giving up (default 2m)
//	--v N                    log verbosity (klog)
//
// Both daemons run until SIGINT or SIGTERM and leave their kernel state in place
// when they stop, so a restart does not interrupt pod traffic or open the
// policies. They exit non-zero with a one-line reason on error.
//
// # Runtime needs
//
// Root (CAP_NET_ADMIN). Executables on $PATH: iptables, iptables-restore
// (flannel); iptables, iptables-save, iptables-restore and ipset (netpol).
// Kernel modules: vxlan, br_netfilter, iptable_nat, iptable_filter, xt_comment,
// xt_mark, xt_MASQUERADE (flannel); ip_set with its hash:* types, xt_set,
// xt_comment, xt_mark, xt_addrtype, xt_physdev, xt_multiport, xt_limit,
// xt_conntrack, xt_NFLOG and ipt_REJECT (netpol).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usageText = `cameleer-net: pod network of the Cameleer engine

Usage:
  cameleer-net flannel [flags]   run the flannel overlay (vxlan)
  cameleer-net netpol [flags]    run the NetworkPolicy controller (kube-router)
  cameleer-net version           print the versions (also --version)

Run "cameleer-net COMMAND --help" for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a command and turns its result into an exit code: 0 on
// success or --help, 2 on a usage error, 1 on any other error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	switch args[0] {
	case "version", "--version", "-version":
		printVersion(stdout)
		return 0
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, usageText)
		return 0
	case "flannel", "netpol":
	default:
		fmt.Fprintf(stderr, "cameleer-net: unknown command %q (see --help)\n", args[0])
		return 2
	}

	name := args[0]
	var err error
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch name {
	case "flannel":
		var cfg *flannelConfig
		if cfg, err = parseFlannelFlags(args[1:], stdout); err == nil {
			err = runFlannel(ctx, cfg)
		}
	case "netpol":
		var cfg *netpolConfig
		if cfg, err = parseNetpolFlags(args[1:], stdout); err == nil {
			err = runNetpol(ctx, cfg)
		}
	}
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil:
		// Stopped by SIGINT or SIGTERM while still starting up.
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(*usageError)):
		fmt.Fprintf(stderr, "cameleer-net %s: %v (see --help)\n", name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "cameleer-net %s: %v\n", name, err)
		return 1
	}
}
