// Package engine assembles the node's Kubernetes from the extracted payload:
// it writes the cluster PKI, kubeconfigs and component configs (Prepare),
// describes every component with its dependencies and readiness check
// (Components), and runs them in dependency order (Engine).
package engine

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/join"
	"github.com/cameleer/cameleer/appliance/kube"
	"github.com/cameleer/cameleer/appliance/pki"
	"github.com/cameleer/cameleer/internal/atomicfile"
)

// Paths of the engine under a node's data dir. Everything the engine writes
// lives under the data dir, so reset has one tree to remove.
type Paths struct {
	config.Config
	// Payload is the extracted payload directory (bin/, cni/, images/).
	Payload string
	// Images maps a system image's name (pause, coredns, ...) to the
	// reference it is served under by the node's registry.
	Images map[string]string
}

func (p Paths) bin(name string) string     { return filepath.Join(p.Payload, "bin", name) }
func (p Paths) pki(name string) string     { return filepath.Join(p.PKIDir(), name) }
func (p Paths) kubeconfig(c string) string { return filepath.Join(p.EtcDir(), "kube", c+".kubeconfig") }
func (p Paths) kineSocket() string         { return p.Path("run", "kine.sock") }
func (p Paths) cniConfDir() string         { return p.Path("etc", "cni", "net.d") }
func (p Paths) subnetFile() string         { return p.Path("run", "flannel", "subnet.env") }
func (p Paths) containerdConfig() string   { return p.Path("etc", "containerd", "config.toml") }
func (p Paths) kubeletConfig() string      { return p.Path("etc", "kubelet.yaml") }
func (p Paths) registryHosts() string      { return p.Path("etc", "containerd", "certs.d") }

// AdminCredentials authenticate as cluster admin.
func (p Paths) AdminCredentials() kube.Credentials {
	return kube.Credentials{Server: p.APIServerURL(), CAFile: p.pki("ca.crt"), CertFile: p.pki("admin.crt"), KeyFile: p.pki("admin.key")}
}

// NetworkCredentials authenticate as the node's network agents: what a
// worker, which has no admin, reads the cluster's nodes as (a kubelet may
// read only its own Node).
func (p Paths) NetworkCredentials() kube.Credentials {
	return kube.Credentials{Server: p.APIServerURL(), CAFile: p.pki("ca.crt"), CertFile: p.pki("network.crt"), KeyFile: p.pki("network.key")}
}

// serviceIP is the first address of the service network: the apiserver's
// ClusterIP.
func serviceIP(cidr string) (net.IP, error) {
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("service CIDR: %w", err)
	}
	return net.IP(pfx.Masked().Addr().Next().AsSlice()), nil
}

// pkiSet is every certificate the node's components use.
func pkiSet(c config.Config) (pki.Set, error) {
	svcIP, err := serviceIP(c.ServiceCIDR)
	if err != nil {
		return pki.Set{}, err
	}
	nodeIP := net.ParseIP(c.NodeIP)
	client := func(name, cn string, org ...string) pki.Cert {
		return pki.Cert{Name: name, CA: "ca", CommonName: cn, Organization: org, Client: true}
	}
	certs := []pki.Cert{
		{
			Name: "apiserver", CA: "ca", CommonName: "kube-apiserver", Server: true,
			DNSNames: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
				"kubernetes.default.svc." + config.DefaultDomain, "localhost", c.NodeName},
			IPs: []net.IP{net.IPv4(127, 0, 0, 1).To4(), nodeIP.To4(), svcIP},
		},
		{
			Name: "cluster-server", CA: "ca", CommonName: "cameleer-cluster", Server: true,
			DNSNames: []string{c.NodeName, "localhost"},
			IPs:      []net.IP{net.IPv4(127, 0, 0, 1).To4(), nodeIP.To4()},
		},
		client("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
		client("admin", "cameleer-admin", "system:masters"),
		client("controller-manager", "system:kube-controller-manager"),
		client("scheduler", "system:kube-scheduler"),
		{Name: "front-proxy-client", CA: "front-proxy-ca", CommonName: "front-proxy-client", Client: true},
	}
	return pki.Set{
		Authorities: []pki.Authority{
			{Name: "ca", CommonName: "cameleer-ca"},
			{Name: "front-proxy-ca", CommonName: "cameleer-front-proxy-ca"},
		},
		Certs:             append(certs, NodeCerts(c.NodeName, c.NodeIP)...),
		ServiceAccountKey: "sa",
	}, nil
}

// NodeCerts are the certificates every node has, the controller and each
// worker (named as join.CertNames): its kubelet's, serving and client, and
// kube-proxy's and the network agents' clients.
func NodeCerts(name, ip string) []pki.Cert {
	client := func(file, cn string, org ...string) pki.Cert {
		return pki.Cert{Name: file, CA: "ca", CommonName: cn, Organization: org, Client: true}
	}
	return []pki.Cert{
		{
			Name: "kubelet", CA: "ca", CommonName: name, Server: true,
			DNSNames: []string{name, "localhost"},
			IPs:      []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.ParseIP(ip).To4()},
		},
		client("kubelet-client", "system:node:"+name, "system:nodes"),
		client("kube-proxy", "system:kube-proxy"),
		client("network", "cameleer:network"),
	}
}

// Prepare writes the PKI, kubeconfigs and component configs for the node.
// It is idempotent: files already right are not touched, certificates are
// renewed when due.
func Prepare(p Paths) error {
	kubeconfigs := []struct{ file, user, cert string }{
		{"kube-proxy", "system:kube-proxy", "kube-proxy"},
		{"kubelet", "system:node:" + p.NodeName, "kubelet-client"},
		{"network", "cameleer:network", "network"},
	}
	registryHosts := map[string]*template.Template{
		config.RegistryHost: registryHostsTOML,
		p.RegistryAddr():    registryHostsTOML,
	}
	if p.IsWorker() {
		// Its CA and certificates came from its controller when it joined.
		for _, name := range append([]string{"ca"}, join.CertNames...) {
			if _, err := os.Stat(p.pki(name + ".crt")); err != nil {
				return fmt.Errorf("this worker's certificates: %w (reset it and join again)", err)
			}
		}
		registryHosts = map[string]*template.Template{config.RegistryHost: workerRegistryTOML}
	} else {
		set, err := pkiSet(p.Config)
		if err != nil {
			return err
		}
		if _, err := pki.Ensure(p.PKIDir(), set, time.Now()); err != nil {
			return fmt.Errorf("cluster PKI: %w", err)
		}
		kubeconfigs = append(kubeconfigs,
			struct{ file, user, cert string }{"controller-manager", "system:kube-controller-manager", "controller-manager"},
			struct{ file, user, cert string }{"scheduler", "system:kube-scheduler", "scheduler"})
		if err := kube.WriteKubeconfig(p.AdminKubeconfig(), "cameleer-admin", p.AdminCredentials(), true, 0o600); err != nil {
			return err
		}
	}
	for _, k := range kubeconfigs {
		creds := kube.Credentials{Server: p.APIServerURL(), CAFile: p.pki("ca.crt"), CertFile: p.pki(k.cert + ".crt"), KeyFile: p.pki(k.cert + ".key")}
		if err := kube.WriteKubeconfig(p.kubeconfig(k.file), k.user, creds, false, 0o600); err != nil {
			return err
		}
	}
	files := map[string]*template.Template{
		p.containerdConfig(): containerdTOML,
		p.kubeletConfig():    kubeletYAML,
		filepath.Join(p.cniConfDir(), "10-flannel.conflist"): cniConflist,
	}
	for host, t := range registryHosts {
		files[filepath.Join(p.registryHosts(), host, "hosts.toml")] = t
	}
	for path, tmpl := range files {
		if err := render(path, tmpl, p); err != nil {
			return err
		}
	}
	for _, d := range []string{p.RunDir(), p.LogDir(), p.KubeletDir(), p.Path("storage"), p.Path("registry"), p.Path("db"), filepath.Dir(p.subnetFile())} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("make %s: %w", d, err)
		}
	}
	return nil
}

func render(path string, t *template.Template, data any) error {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return fmt.Errorf("render %s: %w", filepath.Base(path), err)
	}
	_, err := atomicfile.WriteFile(path, []byte(b.String()), 0o644)
	return err
}

var funcs = template.FuncMap{"bin": Paths.bin, "pki": Paths.pki}

// containerdTOML: CRI with runc from the payload, images from the node's
// registry, NRI off (it would create /var/run/nri), network namespaces under
// the state dir (so reset finds them), and restrict_oom_score_adj because
// hosts like this one lack CAP_SYS_RESOURCE.
var containerdTOML = template.Must(template.New("containerd").Funcs(funcs).Parse(`# Written by cameleer; changes are overwritten.
version = 3
root = '{{.Path "containerd"}}'
state = '{{.Path "run" "containerd"}}'

[grpc]
  address = '{{.ContainerdSocket}}'

[ttrpc]
  address = '{{.Path "run" "containerd" "containerd.sock.ttrpc"}}'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '{{.PauseImage}}'
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '{{.Path "etc" "containerd" "certs.d"}}'

  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    enable_cdi = false
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '{{bin . "runc"}}'
        Root = '{{.Path "run" "runc"}}'
        SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['{{.Payload}}/cni']
      conf_dir = '{{.Path "etc" "cni" "net.d"}}'

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'

  [plugins.'io.containerd.nri.v1.nri']
    disable = true

  [plugins.'io.containerd.internal.v1.opt']
    path = '{{.Path "containerd" "opt"}}'
`))

// registryHostsTOML sends pulls for the node's registry name to the
// in-process registry over plain HTTP on loopback.
var registryHostsTOML = template.Must(template.New("hosts").Parse(`# Written by cameleer; changes are overwritten.
server = 'http://{{.RegistryAddr}}'

[host.'http://{{.RegistryAddr}}']
  capabilities = ['pull', 'resolve']
`))

// workerRegistryTOML sends a worker's pulls for the cluster's registry
// name to its controller's cluster port, which serves its registry to the
// cluster's nodes: over TLS, the kubelet's certificate presented.
var workerRegistryTOML = template.Must(template.New("hosts").Funcs(funcs).Parse(`# Written by cameleer; changes are overwritten.
server = '{{.ClusterURL}}'

[host.'{{.ClusterURL}}']
  capabilities = ['pull', 'resolve']
  ca = '{{pki . "ca.crt"}}'
  client = [['{{pki . "kubelet-client.crt"}}', '{{pki . "kubelet-client.key"}}']]
`))

var kubeletYAML = template.Must(template.New("kubelet").Funcs(funcs).Parse(`# Written by cameleer; changes are overwritten.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: {{pki . "ca.crt"}}
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDNS: [{{.ClusterDNS}}]
clusterDomain: {{.Domain}}
containerRuntimeEndpoint: unix://{{.ContainerdSocket}}
tlsCertFile: {{pki . "kubelet.crt"}}
tlsPrivateKeyFile: {{pki . "kubelet.key"}}
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
serializeImagePulls: false
evictionHard:
  imagefs.available: 5%
  nodefs.available: 5%
imageGCHighThresholdPercent: 90
imageGCLowThresholdPercent: 80
`))

// cniConflist: flannel delegating to the bridge plugin (cni0) with host-local
// addresses, plus portmap for hostPort (Traefik's 80/443). Everything the
// plugins store goes under the data dir.
var cniConflist = template.Must(template.New("cni").Parse(`{
  "name": "cbr0",
  "cniVersion": "0.4.0",
  "plugins": [
    {
      "type": "flannel",
      "subnetFile": "{{.SubnetFile}}",
      "dataDir": "{{.Path "cni" "flannel"}}",
      "delegate": {
        "hairpinMode": true,
        "forceAddress": true,
        "isDefaultGateway": true
      },
      "ipam": {
        "type": "host-local",
        "dataDir": "{{.Path "cni" "networks"}}"
      }
    },
    {
      "type": "portmap",
      "capabilities": {"portMappings": true}
    }
  ]
}
`))

// Template helpers.
func (p Paths) SubnetFile() string { return p.subnetFile() }
func (p Paths) Domain() string     { return config.DefaultDomain }
func (p Paths) PauseImage() string { return p.Images["pause"] }
