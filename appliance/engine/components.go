package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cameleer/cameleer/appliance/kube"
	"github.com/cameleer/cameleer/appliance/supervisor"
	"github.com/cameleer/cameleer/manifests"
)

// processEnv is the environment of every engine process: the payload's
// binaries first, then the host's for iptables, ipset and mount.
func (p Paths) processEnv() []string {
	return []string{"PATH=" + strings.Join([]string{p.Payload + "/bin", p.Payload + "/cni",
		"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}, ":")}
}

func (p Paths) process(log *slog.Logger, name, bin string, args ...string) *supervisor.Process {
	return &supervisor.Process{
		Name:   name,
		Path:   p.bin(bin),
		Args:   args,
		Env:    p.processEnv(),
		Dir:    p.DataDir,
		RunDir: p.RunDir(),
		LogDir: p.LogDir(),
		Log:    log,
	}
}

// Components is the whole engine in start order: the supervised processes,
// the registry inside cameleer, the system images pushed into it, and the
// manifests applied to the cluster.
func (p Paths) Components(log *slog.Logger, admin *kube.Client, imageArchives []string) []*Component {
	kine := &Component{Name: "kine", Lifecycle: &Process{
		Child: p.process(log, "kine", "kine",
			"--endpoint", "sqlite://"+p.Path("db", "state.db")+"?_journal=WAL&cache=shared&_busy_timeout=30000&_txlock=immediate",
			"--listen-address", "unix://"+p.kineSocket(),
			"--metrics-bind-address", "0"),
		Check: dialReady("unix", p.kineSocket()),
	}}
	containerd := &Component{Name: "containerd", Lifecycle: &Process{
		Prepare: func(context.Context) error {
			// A socket left by a killed containerd makes the dial check
			// pass before the new one listens.
			return removeIfExists(p.ContainerdSocket())
		},
		Child: p.process(log, "containerd", "containerd", "--config", p.containerdConfig()),
		Check: dialReady("unix", p.ContainerdSocket()),
	}}
	registry := &Component{Name: "registry", Lifecycle: &InProcess{
		Run:   func(ctx context.Context) error { return p.RunRegistry(ctx, log.With("component", "registry")) },
		Check: httpReady("http://" + p.RegistryAddr() + "/v2/"),
		Log:   log.With("component", "registry"),
	}}
	systemImages := &Component{Name: "system-images", Needs: []*Component{registry}, Lifecycle: &Task{
		Do: func(ctx context.Context) error {
			return p.PushImages(ctx, log, imageArchives)
		},
	}}
	apiserver := &Component{Name: "kube-apiserver", Needs: []*Component{kine}, Lifecycle: &Process{
		Child: withEnv(apiserverGOGC, p.process(log, "kube-apiserver", "kube-apiserver",
			"--etcd-servers=unix://"+p.kineSocket(),
			"--storage-media-type=application/json",
			"--advertise-address="+p.NodeIP,
			"--bind-address=0.0.0.0",
			fmt.Sprintf("--secure-port=%d", p.APIPort),
			"--service-cluster-ip-range="+p.ServiceCIDR,
			"--service-node-port-range=30000-32767",
			"--allow-privileged=true",
			"--anonymous-auth=false",
			"--authorization-mode=Node,RBAC",
			"--enable-admission-plugins=NodeRestriction",
			"--client-ca-file="+p.pki("ca.crt"),
			"--tls-cert-file="+p.pki("apiserver.crt"),
			"--tls-private-key-file="+p.pki("apiserver.key"),
			"--kubelet-certificate-authority="+p.pki("ca.crt"),
			"--kubelet-client-certificate="+p.pki("apiserver-kubelet-client.crt"),
			"--kubelet-client-key="+p.pki("apiserver-kubelet-client.key"),
			"--kubelet-preferred-address-types=InternalIP,Hostname",
			"--service-account-issuer=https://kubernetes.default.svc."+p.Domain(),
			"--service-account-key-file="+p.pki("sa.pub"),
			"--service-account-signing-key-file="+p.pki("sa.key"),
			"--api-audiences=https://kubernetes.default.svc."+p.Domain(),
			"--requestheader-client-ca-file="+p.pki("front-proxy-ca.crt"),
			"--requestheader-allowed-names=front-proxy-client",
			"--requestheader-extra-headers-prefix=X-Remote-Extra-",
			"--requestheader-group-headers=X-Remote-Group",
			"--requestheader-username-headers=X-Remote-User",
			"--proxy-client-cert-file="+p.pki("front-proxy-client.crt"),
			"--proxy-client-key-file="+p.pki("front-proxy-client.key"),
			"--enable-aggregator-routing=true",
			"--profiling=false",
		)),
		Check: func(ctx context.Context) error { return admin.Get(ctx, "/readyz", nil) },
	}}
	rbac := &Component{Name: "rbac", Needs: []*Component{apiserver}, Lifecycle: &Task{
		Do: func(ctx context.Context) error {
			return p.apply(ctx, manifests.Bootstrap...)
		},
	}}
	controllerManager := &Component{Name: "kube-controller-manager", Needs: []*Component{apiserver}, Lifecycle: &Process{
		Child: p.process(log, "kube-controller-manager", "kube-controller-manager", append(p.controlPlaneFlags("controller-manager", 10257),
			"--use-service-account-credentials=true",
			"--allocate-node-cidrs=true",
			"--cluster-cidr="+p.ClusterCIDR,
			"--service-cluster-ip-range="+p.ServiceCIDR,
			"--node-cidr-mask-size=24",
			"--configure-cloud-routes=false",
			"--cluster-signing-cert-file="+p.pki("ca.crt"),
			"--cluster-signing-key-file="+p.pki("ca.key"),
			"--root-ca-file="+p.pki("ca.crt"),
			"--service-account-private-key-file="+p.pki("sa.key"),
			"--controllers=*,tokencleaner",
			// At the default 20 requests/s, starting its 40 controllers
			// takes the controller-manager 5 s, and pod CIDRs (so
			// flannel, so every pod) wait for the last one.
			"--kube-api-qps=200",
			"--kube-api-burst=400",
		)...),
		Check: httpReady("https://127.0.0.1:10257/healthz"),
	}}
	scheduler := &Component{Name: "kube-scheduler", Needs: []*Component{apiserver}, Lifecycle: &Process{
		Child: p.process(log, "kube-scheduler", "kube-scheduler", p.controlPlaneFlags("scheduler", 10259)...),
		Check: httpReady("https://127.0.0.1:10259/healthz"),
	}}
	kubelet := &Component{Name: "kubelet", Needs: []*Component{apiserver, containerd}, Lifecycle: &Process{
		Child: p.process(log, "kubelet", "kubelet",
			"--config="+p.kubeletConfig(),
			"--kubeconfig="+p.kubeconfig("kubelet"),
			"--root-dir="+p.KubeletDir(),
			"--cert-dir="+p.Path("kubelet", "pki"),
			"--node-ip="+p.NodeIP,
			"--hostname-override="+p.NodeName,
			"--node-labels=cameleer.io/node=true",
		),
		Check: httpReady("http://127.0.0.1:10248/healthz"),
	}}
	kubeProxy := &Component{Name: "kube-proxy", Needs: []*Component{apiserver}, Lifecycle: &Process{
		Child: p.process(log, "kube-proxy", "kube-proxy",
			"--kubeconfig="+p.kubeconfig("kube-proxy"),
			"--hostname-override="+p.NodeName,
			"--cluster-cidr="+p.ClusterCIDR,
			"--proxy-mode=iptables",
			"--healthz-bind-address=127.0.0.1:10256",
			"--metrics-bind-address=127.0.0.1:10249",
			"--conntrack-max-per-core=0",
		),
		Check: httpReady("http://127.0.0.1:10256/livez"),
	}}
	flannel := &Component{Name: "flannel", Needs: []*Component{apiserver, rbac}, Lifecycle: &Process{
		Prepare: func(context.Context) error {
			return removeIfExists(p.subnetFile())
		},
		Child: p.process(log, "flannel", "cameleer-net", "flannel",
			"--kubeconfig="+p.kubeconfig("network"),
			"--node-name="+p.NodeName,
			"--cluster-cidr="+p.ClusterCIDR,
			"--iface="+p.NodeIP,
			"--subnet-file="+p.subnetFile(),
		),
		Check: func(context.Context) error {
			_, err := os.Stat(p.subnetFile())
			return err
		},
	}}
	networkPolicy := &Component{Name: "network-policy", Needs: []*Component{apiserver, rbac}, Lifecycle: &Process{
		Child: p.process(log, "network-policy", "cameleer-net", "netpol",
			"--kubeconfig="+p.kubeconfig("network"),
			"--node-name="+p.NodeName,
			"--cluster-cidr="+p.ClusterCIDR,
			"--service-cidr="+p.ServiceCIDR,
		),
	}}
	addOns := &Component{
		Name:  "add-ons",
		Needs: []*Component{rbac, systemImages, kubelet, flannel, kubeProxy, controllerManager, scheduler},
		Lifecycle: &Task{
			Do: p.applyAddOns,
			Check: func(ctx context.Context) error {
				for _, d := range SystemDeployments {
					dep, err := admin.Deployment(ctx, "kube-system", d)
					if err != nil {
						return err
					}
					if !dep.Available() {
						return fmt.Errorf("deployment %s is not available yet", d)
					}
				}
				return nil
			},
		},
	}
	return []*Component{kine, containerd, registry, systemImages, apiserver, rbac,
		controllerManager, scheduler, kubelet, kubeProxy, flannel, networkPolicy, addOns}
}

// SystemDeployments are the add-ons' deployments in kube-system.
var SystemDeployments = []string{"coredns", "local-path-provisioner", "traefik"}

// apiserverGOGC: the apiserver holds the most heap by far (caches of every
// object); collecting at 50% growth instead of 100% keeps its idle memory
// near K3s' single process at a small CPU cost. See docs/benchmarks.md.
const apiserverGOGC = "GOGC=50"

func withEnv(env string, p *supervisor.Process) *supervisor.Process {
	p.Env = append(p.Env, env)
	return p
}

// controlPlaneFlags are what the controller-manager and the scheduler share:
// their kubeconfig for everything, health on loopback, no leader election
// (one node).
func (p Paths) controlPlaneFlags(kubeconfig string, port int) []string {
	kc := p.kubeconfig(kubeconfig)
	return []string{
		"--kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc,
		"--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--leader-elect=false",
		"--profiling=false",
	}
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func dialReady(network, addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

var probeClient = &http.Client{
	Timeout: 5 * time.Second,
	Transport: &http.Transport{
		// The controller-manager and scheduler serve their health on
		// loopback with self-signed certificates they make at start.
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback health check only
		DisableKeepAlives: true,
	},
}

func httpReady(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := probeClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}
