// Package config is what `cameleer install` records about a node and every
// other command reads back: the data dir's layout, addresses, ports and the
// cluster's networks. It lives in <data-dir>/config.json.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cameleer/cameleer/internal/atomicfile"
)

// Defaults of a node's settings; the networks are K3s'.
const (
	DefaultDataDir      = "/var/lib/cameleer"
	DefaultHTTPPort     = 80
	DefaultHTTPSPort    = 443
	DefaultAPIPort      = 6443
	DefaultRegistryPort = 5000
	// DefaultClusterPort is where a controller lets workers join and
	// serves them its registry (appliance/join).
	DefaultClusterPort = 6444
	// DefaultAppsDomain routes APP.ENV.TENANT.localhost, which browsers and
	// curl resolve to the loopback address: apps answer on the node itself
	// before any DNS is set up.
	DefaultAppsDomain  = "localhost"
	DefaultClusterCIDR = "10.42.0.0/16"
	DefaultServiceCIDR = "10.43.0.0/16"
	DefaultClusterDNS  = "10.43.0.10"
	DefaultDomain      = "cluster.local"
	// RegistryHost is the name pods use for images in the node's registry.
	RegistryHost = "cameleer.local"
)

// A node's role in its cluster.
const (
	// Controller holds the cluster: its datastore, apiserver, controllers,
	// registry and add-ons; it runs apps too. Every node installed by
	// `cameleer install` is one.
	Controller = "controller"
	// Worker runs apps for the controller it joined (`cameleer join`).
	Worker = "worker"
)

// Config is one node's settings.
type Config struct {
	DataDir string `json:"dataDir"`
	// Role is Controller or Worker; empty (written before roles) is
	// Controller.
	Role     string `json:"role,omitempty"`
	NodeName string `json:"nodeName"`
	NodeIP   string `json:"nodeIP"`
	// AppsDomain is the DNS suffix apps are routed under
	// (APP.ENV.TENANT.DOMAIN).
	AppsDomain   string `json:"appsDomain,omitempty"`
	HTTPPort     int    `json:"httpPort"`
	HTTPSPort    int    `json:"httpsPort"`
	APIPort      int    `json:"apiPort"`
	RegistryPort int    `json:"registryPort"`
	// ClusterPort is where a controller serves workers (joins, its
	// registry); on a worker, the port it reaches its controller's on.
	ClusterPort int `json:"clusterPort,omitempty"`
	// Server is a worker's controller: its address, serving the apiserver
	// on APIPort and workers on ClusterPort.
	Server string `json:"server,omitempty"`
	// JoinToken is the ID of the token a worker joined with: the same
	// join again changes nothing.
	JoinToken   string `json:"joinToken,omitempty"`
	ClusterCIDR string `json:"clusterCIDR"`
	ServiceCIDR string `json:"serviceCIDR"`
	ClusterDNS  string `json:"clusterDNS"`
	// SpoolMaxBytes bounds the telemetry spool (docs/node.md); zero: the
	// default, 256 MiB.
	SpoolMaxBytes int64 `json:"spoolMaxBytes,omitempty"`
	// OriginalsMaxBytes and OriginalsMaxAge bound the originals kept for
	// replay in each environment (docs/replay.md); zero and "": the
	// defaults, 256 MiB and 168h.
	OriginalsMaxBytes int64  `json:"originalsMaxBytes,omitempty"`
	OriginalsMaxAge   string `json:"originalsMaxAge,omitempty"`
	// Proxy is the proxy the node's traffic goes through (proxy.go).
	Proxy Proxy `json:"proxy,omitzero"`
}

// Defaults of the telemetry spool's bound, and of the originals' bounds
// per environment.
const (
	DefaultSpoolMaxBytes     = 256 << 20
	DefaultOriginalsMaxBytes = 256 << 20
	DefaultOriginalsMaxAge   = 7 * 24 * time.Hour
)

// SpoolBytes is the bound of the telemetry spool.
func (c Config) SpoolBytes() int64 {
	if c.SpoolMaxBytes <= 0 {
		return DefaultSpoolMaxBytes
	}
	return c.SpoolMaxBytes
}

// OriginalsBytes is the bound in bytes of each environment's originals.
func (c Config) OriginalsBytes() int64 {
	if c.OriginalsMaxBytes <= 0 {
		return DefaultOriginalsMaxBytes
	}
	return c.OriginalsMaxBytes
}

// OriginalsAge is the bound in age of each environment's originals.
func (c Config) OriginalsAge() time.Duration {
	d, err := time.ParseDuration(c.OriginalsMaxAge)
	if err != nil || d <= 0 {
		return DefaultOriginalsMaxAge
	}
	return d
}

// ErrNotInstalled means the data dir has no config: install has not run.
var ErrNotInstalled = errors.New("not installed")

// Default is the configuration of a node with the given data dir, named after
// the host, on the address of its default route.
func Default(dataDir string) (Config, error) {
	c := Config{
		DataDir:      dataDir,
		AppsDomain:   DefaultAppsDomain,
		HTTPPort:     DefaultHTTPPort,
		HTTPSPort:    DefaultHTTPSPort,
		APIPort:      DefaultAPIPort,
		RegistryPort: DefaultRegistryPort,
		ClusterPort:  DefaultClusterPort,
		ClusterCIDR:  DefaultClusterCIDR,
		ServiceCIDR:  DefaultServiceCIDR,
		ClusterDNS:   DefaultClusterDNS,
	}
	host, err := os.Hostname()
	if err != nil {
		return c, fmt.Errorf("host name: %w", err)
	}
	c.NodeName = strings.ToLower(host)
	return c, nil
}

// Validate checks what a user can get wrong.
func (c Config) Validate() error {
	if !filepath.IsAbs(c.DataDir) {
		return fmt.Errorf("data dir %q is not an absolute path", c.DataDir)
	}
	ip := net.ParseIP(c.NodeIP)
	if ip == nil || ip.To4() == nil {
		return fmt.Errorf("node IP %q is not an IPv4 address", c.NodeIP)
	}
	for name, p := range map[string]int{"http port": c.HTTPPort, "https port": c.HTTPSPort, "API port": c.APIPort, "registry port": c.RegistryPort, "cluster port": c.ClusterPort} {
		if p < 1 || p > 65535 {
			return fmt.Errorf("%s %d is out of range", name, p)
		}
	}
	if c.Role != "" && c.Role != Controller && c.Role != Worker {
		return fmt.Errorf("role %q is neither %s nor %s", c.Role, Controller, Worker)
	}
	if c.IsWorker() && net.ParseIP(c.Server) == nil {
		return fmt.Errorf("a worker's controller %q is not an IP address", c.Server)
	}
	if c.HTTPPort == c.HTTPSPort {
		return fmt.Errorf("http and https ports are both %d", c.HTTPPort)
	}
	if c.SpoolMaxBytes != 0 && c.SpoolMaxBytes < 1<<20 {
		return fmt.Errorf("spool max bytes %d: at least 1 MiB (1048576)", c.SpoolMaxBytes)
	}
	if d, err := time.ParseDuration(c.OriginalsMaxAge); c.OriginalsMaxAge != "" && (err != nil || d <= 0) {
		return fmt.Errorf("originals max age %q is not a positive duration (like 72h)", c.OriginalsMaxAge)
	}
	if c.NodeName == "" || strings.ToLower(c.NodeName) != c.NodeName {
		return fmt.Errorf("node name %q must be lower case and not empty", c.NodeName)
	}
	return nil
}

// Path is a path inside the data dir.
func (c Config) Path(elem ...string) string {
	return filepath.Join(append([]string{c.DataDir}, elem...)...)
}

// Paths every command agrees on.
func (c Config) ConfigFile() string      { return c.Path("config.json") }
func (c Config) AdminKubeconfig() string { return c.Path("kubeconfig.yaml") }
func (c Config) PKIDir() string          { return c.Path("pki") }
func (c Config) EtcDir() string          { return c.Path("etc") }
func (c Config) RunDir() string          { return c.Path("run") }
func (c Config) LogDir() string          { return c.Path("logs") }
func (c Config) KubeletDir() string      { return c.Path("kubelet") }
func (c Config) ContainerdSocket() string {
	return c.Path("run", "containerd", "containerd.sock")
}

// StatusSocket is where a running `cameleer run` answers status queries.
func (c Config) StatusSocket() string { return c.Path("run", "cameleer.sock") }

// IsWorker tells whether the node is a worker.
func (c Config) IsWorker() bool { return c.Role == Worker }

// APIServerURL is the address components use to reach kube-apiserver: the
// controller's own on loopback, a worker's controller's.
func (c Config) APIServerURL() string {
	if c.IsWorker() {
		return fmt.Sprintf("https://%s", net.JoinHostPort(c.Server, strconv.Itoa(c.APIPort)))
	}
	return fmt.Sprintf("https://127.0.0.1:%d", c.APIPort)
}

// ClusterURL is where a worker reaches its controller's cluster port.
func (c Config) ClusterURL() string {
	return fmt.Sprintf("https://%s", net.JoinHostPort(c.Server, strconv.Itoa(c.ClusterPort)))
}

// RegistryAddr is where the node's registry listens.
func (c Config) RegistryAddr() string { return fmt.Sprintf("127.0.0.1:%d", c.RegistryPort) }

// Save writes the config into its data dir.
func (c Config) Save() error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if _, err := atomicfile.WriteFile(c.ConfigFile(), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	return nil
}

// Load reads the config of the node installed in dataDir.
func Load(dataDir string) (Config, error) {
	var c Config
	b, err := os.ReadFile(filepath.Join(dataDir, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("%s: %w (run `cameleer install` first)", dataDir, ErrNotInstalled)
	}
	if err != nil {
		return c, fmt.Errorf("load config: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("load config %s: %w", filepath.Join(dataDir, "config.json"), err)
	}
	c.DataDir = dataDir
	// Written before the settings existed.
	if c.AppsDomain == "" {
		c.AppsDomain = DefaultAppsDomain
	}
	if c.ClusterPort == 0 {
		c.ClusterPort = DefaultClusterPort
	}
	return c, c.Validate()
}

// DefaultRouteIP is the first IPv4 address of the interface that holds the
// default route.
func DefaultRouteIP() (string, error) {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return "", fmt.Errorf("read routes: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 2 || f[1] != "00000000" {
			continue
		}
		iface, err := net.InterfaceByName(f[0])
		if err != nil {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				return n.IP.String(), nil
			}
		}
	}
	return "", errors.New("no IPv4 default route: pass --node-ip")
}
