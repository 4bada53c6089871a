package engine

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cameleer/cameleer/appliance/config"
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

// Components is the whole engine in start order: on a controller, the
// supervised processes, the registry inside cameleer, the system images
// pushed into it, the manifests applied to the cluster and the cluster port
// workers join on; on a worker, what runs pods (WorkerComponents).
func (p Paths) Components(log *slog.Logger, admin *kube.Client, imageArchives []string) []*Component {
	if p.IsWorker() {
		return p.WorkerComponents(log)
	}
	kine := &Component{Name: "kine", Lifecycle: &Process{
		Child: p.process(log, "kine", "kine",
			"--endpoint", "sqlite://"+p.Path("db", "state.db")+"?_journal=WAL&cache=shared&_busy_timeout=30000&_txlock=immediate",
			"--listen-address", "unix://"+p.kineSocket(),
			"--metrics-bind-address", "0"),
		Check: dialReady("unix", p.kineSocket()),
	}}
	containerd := p.containerd(log)
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
			// Pods on a node that stopped answering are moved after 30 s
			// (Kubernetes' default: 5 min), on top of the 40 s before the
			// node is marked so.
			"--default-not-ready-toleration-seconds=30",
			"--default-unreachable-toleration-seconds=30",
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
			// A restarted kubelet (an upgrade, a restart of cameleer run)
			// reports every running container not ready until its first
			// probe, moments later: changes of a pod within 2 s make one
			// update of its Service's endpoints, so that flicker does not
			// empty them and Traefik does not drop the app's route.
			"--endpointslice-updates-batch-period=2s",
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
	containerd, kubelet, kubeProxy, flannel, networkPolicy := p.nodeComponents(log, containerd, apiserver, rbac)
	joinServer := &Component{Name: "cluster-port", Needs: []*Component{apiserver, registry}, Lifecycle: &InProcess{
		Run: func(ctx context.Context) error {
			srv, err := p.joinServer(ctx, log, admin)
			if err != nil {
				return err
			}
			return srv.Serve(ctx, fmt.Sprintf(":%d", p.ClusterPort))
		},
		Check: dialReady("tcp", fmt.Sprintf("127.0.0.1:%d", p.ClusterPort)),
		Log:   log.With("component", "cluster-port"),
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
				return traefikServes(ctx, admin, p.NodeName)
			},
		},
	}
	return []*Component{kine, containerd, registry, systemImages, apiserver, rbac,
		controllerManager, scheduler, kubelet, kubeProxy, flannel, networkPolicy, addOns, joinServer}
}

// WorkerComponents are a worker's: containerd and the node agents, which
// reach the controller's apiserver, retrying until it answers.
func (p Paths) WorkerComponents(log *slog.Logger) []*Component {
	containerd := p.containerd(log)
	_, kubelet, kubeProxy, flannel, networkPolicy := p.nodeComponents(log, containerd)
	return []*Component{containerd, kubelet, kubeProxy, flannel, networkPolicy}
}

func (p Paths) containerd(log *slog.Logger) *Component {
	return &Component{Name: "containerd", Lifecycle: &Process{
		Prepare: func(context.Context) error {
			// A socket left by a killed containerd makes the dial check
			// pass before the new one listens.
			return removeIfExists(p.ContainerdSocket())
		},
		Child: p.process(log, "containerd", "containerd", "--config", p.containerdConfig()),
		Check: dialReady("unix", p.ContainerdSocket()),
	}}
}

// nodeComponents are what every node runs: the kubelet on containerd,
// kube-proxy and the network agents. On a controller they wait for its
// apiserver and RBAC (the network agents' permissions), given as
// controlPlane.
func (p Paths) nodeComponents(log *slog.Logger, containerd *Component, controlPlane ...*Component) (_, _, _, _, _ *Component) {
	var apiserver []*Component
	if len(controlPlane) > 0 {
		apiserver = controlPlane[:1]
	}
	kubelet := &Component{Name: "kubelet", Needs: append(slices.Clone(apiserver), containerd), Lifecycle: &Process{
		Child: p.process(log, "kubelet", "kubelet",
			"--config="+p.kubeletConfig(),
			"--kubeconfig="+p.kubeconfig("kubelet"),
			"--root-dir="+p.KubeletDir(),
			"--cert-dir="+p.Path("kubelet", "pki"),
			"--node-ip="+p.NodeIP,
			"--hostname-override="+p.NodeName,
			"--node-labels=cameleer.io/node=true,cameleer.io/role="+cmp.Or(p.Role, config.Controller),
		),
		Check: httpReady("http://127.0.0.1:10248/healthz"),
	}}
	kubeProxy := &Component{Name: "kube-proxy", Needs: apiserver, Lifecycle: &Process{
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
	flannel := &Component{Name: "flannel", Needs: controlPlane, Lifecycle: &Process{
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
	networkPolicy := &Component{Name: "network-policy", Needs: controlPlane, Lifecycle: &Process{
		Child: p.process(log, "network-policy", "cameleer-net", "netpol",
			"--kubeconfig="+p.kubeconfig("network"),
			"--node-name="+p.NodeName,
			"--cluster-cidr="+p.ClusterCIDR,
			"--service-cidr="+p.ServiceCIDR,
		),
	}}
	return containerd, kubelet, kubeProxy, flannel, networkPolicy
}

// SystemDeployments are the add-ons' deployments in kube-system; Traefik
// is a DaemonSet.
var SystemDeployments = []string{"coredns", "local-path-provisioner"}

// traefikServes tells whether Traefik's pod on node is ready: apps answer
// on its address.
func traefikServes(ctx context.Context, admin *kube.Client, node string) error {
	var pods struct {
		Items []struct {
			Status struct {
				Conditions []kube.Condition `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	err := admin.Get(ctx, "/api/v1/namespaces/kube-system/pods?labelSelector=app.kubernetes.io%2Fname%3Dtraefik&fieldSelector=spec.nodeName%3D"+url.QueryEscape(node), &pods)
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		for _, c := range p.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				return nil
			}
		}
	}
	return fmt.Errorf("traefik is not ready on %s yet", node)
}

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
