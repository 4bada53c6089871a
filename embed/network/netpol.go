package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/cloudnativelabs/kube-router/v2/pkg/controllers/netpol"
	"github.com/cloudnativelabs/kube-router/v2/pkg/healthcheck"
	"github.com/cloudnativelabs/kube-router/v2/pkg/options"
	"github.com/cloudnativelabs/kube-router/v2/pkg/utils"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

func runNetpol(ctx context.Context, cfg *netpolConfig) error {
	setupLogging(cfg.verbosity)
	client, host, err := newClient(cfg.kubeconfig, "netpol")
	if err != nil {
		return err
	}
	// kube-router reads the node's addresses once, at start.
	if _, err := waitForNode(ctx, client, host, cfg.nodeName, cfg.waitTimeout, hasAddress); err != nil {
		return err
	}
	if err := needExecutables("iptables", "iptables", "iptables-save", "iptables-restore"); err != nil {
		return err
	}
	if err := needExecutables("ipset", "ipset"); err != nil {
		return err
	}
	if err := checkIPSet(); err != nil {
		return err
	}
	kr := kubeRouterConfig(cfg)

	factory := informers.NewSharedInformerFactory(client, 0)
	pods := factory.Core().V1().Pods().Informer()
	namespaces := factory.Core().V1().Namespaces().Informer()
	policies := factory.Networking().V1().NetworkPolicies().Informer()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	syncCtx, cancel := context.WithTimeout(ctx, cfg.waitTimeout)
	synced := factory.WaitForCacheSync(syncCtx.Done())
	cancel()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for typ, ok := range synced {
		if !ok {
			return fmt.Errorf("the %v cache did not sync within %s", typ, cfg.waitTimeout)
		}
	}

	iptablesHandlers, ipsetHandlers, err := netpol.NewIPTablesHandlers(kr)
	if err != nil {
		return err
	}
	npc, err := netpol.NewNetworkPolicyController(client, kr, pods, policies, namespaces,
		&sync.Mutex{}, nil, iptablesHandlers, ipsetHandlers)
	if err != nil {
		return fmt.Errorf("network policy controller: %w", err)
	}
	handlers := []struct {
		informer cache.SharedIndexInformer
		handler  cache.ResourceEventHandler
	}{
		{pods, npc.PodEventHandler},
		{namespaces, npc.NamespaceEventHandler},
		{policies, npc.NetworkPolicyEventHandler},
	}
	for _, h := range handlers {
		if _, err := h.informer.AddEventHandler(h.handler); err != nil {
			return fmt.Errorf("network policy controller: %w", err)
		}
	}

	// The controller reports a heartbeat after every sync and blocks until
	// someone takes it: the health controller does, and logs missed beats.
	var wg sync.WaitGroup
	health := make(chan *healthcheck.ControllerHeartbeat, 10)
	hc, err := healthcheck.NewHealthController(kr)
	if err != nil {
		return err
	}
	hc.SetAlive()
	wg.Add(2)
	go hc.RunCheck(health, ctx.Done(), &wg)
	go npc.Run(health, ctx.Done(), &wg)

	<-ctx.Done()
	klog.Info("Stopping the network policy controller; its iptables rules and ipsets stay in place")
	waitGroupTimeout(&wg)
	return nil
}

// kubeRouterConfig is the subset of kube-router's options the network policy
// controller reads, set the way K3s sets them.
func kubeRouterConfig(cfg *netpolConfig) *options.KubeRouterConfig {
	kr := options.NewKubeRouterConfig()
	kr.Kubeconfig = cfg.kubeconfig
	kr.HostnameOverride = cfg.nodeName
	kr.ClusterIPCIDRs = []string{cfg.serviceCIDR.String()}
	kr.NodePortRange = cfg.nodePortRange
	kr.IPTablesSyncPeriod = cfg.syncPeriod
	kr.EnableIPv4 = true
	kr.EnableIPv6 = false
	kr.RunFirewall = true
	kr.RunRouter = false
	kr.RunServiceProxy = false
	kr.RunLoadBalancer = false
	kr.MetricsEnabled = false
	kr.HealthPort = 0
	return kr
}

// checkIPSet fails early, with a reason, when the ipset tool or the kernel's
// ip_set module is missing (K3s skips the controller then; we refuse to run
// without the policies being enforced).
func checkIPSet() error {
	set, err := utils.NewIPSet(false)
	if err != nil {
		return fmt.Errorf("ipset is not usable: %w", err)
	}
	if err := set.Save(); err != nil {
		return fmt.Errorf("ipset is not usable: %w (needs the ip_set kernel module and root)", err)
	}
	return nil
}
