package config

import (
	"slices"
	"strings"
)

// Proxy is the HTTP(S) proxy the node's own traffic goes through
// (docs/install.md): install records it from its environment, and run
// puts it in its own environment and so in every component's (containerd,
// the Kubernetes components) and the tunnel's.
type Proxy struct {
	HTTPS string `json:"https,omitempty"`
	HTTP  string `json:"http,omitempty"`
	// No is what goes around the proxy, as NO_PROXY says it; the node's
	// own networks are added to it (ProxyEnv).
	No string `json:"no,omitempty"`
	// CABundle says ProxyCAFile holds CAs to trust beside the system's
	// (an intercepting proxy's), in CABundleFile with them.
	CABundle bool `json:"caBundle,omitempty"`
}

// ProxyCAFile is where install keeps the CAs given with --ca-bundle.
func (c Config) ProxyCAFile() string { return c.Path("etc", "proxy-ca.pem") }

// CABundleFile is the system's CAs and the proxy's, which SSL_CERT_FILE
// names for run and its components.
func (c Config) CABundleFile() string { return c.Path("etc", "ca-bundle.pem") }

// ProxyFromEnv reads the proxy settings of an environment (getenv), the
// upper-case names first, as curl and Go do.
func ProxyFromEnv(getenv func(string) string) Proxy {
	get := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return getenv(strings.ToLower(name))
	}
	return Proxy{HTTPS: get("HTTPS_PROXY"), HTTP: get("HTTP_PROXY"), No: get("NO_PROXY")}
}

// ProxyEnv is the environment run and its components get: the proxy in
// both spellings, NO_PROXY with the node's own addresses and names added
// (its pods' and services' networks, the cluster's domain, the registry's
// name, loopback), and SSL_CERT_FILE with a CA bundle. Without a proxy,
// nothing.
func (c Config) ProxyEnv() []string {
	p := c.Proxy
	if p.HTTPS == "" && p.HTTP == "" {
		return nil
	}
	no := []string{}
	for _, n := range strings.Split(p.No, ",") {
		if n = strings.TrimSpace(n); n != "" {
			no = append(no, n)
		}
	}
	for _, n := range []string{"127.0.0.1", "localhost", c.NodeIP, c.ClusterCIDR, c.ServiceCIDR, ".svc", "." + DefaultDomain, RegistryHost} {
		if n != "" && n != "." && !slices.Contains(no, n) {
			no = append(no, n)
		}
	}
	var env []string
	for name, v := range map[string]string{"HTTPS_PROXY": p.HTTPS, "HTTP_PROXY": p.HTTP, "NO_PROXY": strings.Join(no, ",")} {
		if v != "" {
			env = append(env, name+"="+v, strings.ToLower(name)+"="+v)
		}
	}
	if p.CABundle {
		env = append(env, "SSL_CERT_FILE="+c.CABundleFile())
	}
	slices.Sort(env)
	return env
}
