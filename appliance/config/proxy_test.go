package config

import (
	"slices"
	"testing"
)

func TestProxyEnv(t *testing.T) {
	env := map[string]string{"https_proxy": "http://proxy.corp:3128", "NO_PROXY": "corp.example,10.0.0.0/8"}
	p := ProxyFromEnv(func(k string) string { return env[k] })
	if p.HTTPS != "http://proxy.corp:3128" || p.HTTP != "" || p.No != "corp.example,10.0.0.0/8" {
		t.Fatalf("from the environment: %+v", p)
	}
	c := Config{DataDir: "/var/lib/cameleer", NodeIP: "192.0.2.7", ClusterCIDR: DefaultClusterCIDR, ServiceCIDR: DefaultServiceCIDR, Proxy: p}
	want := []string{
		"HTTPS_PROXY=http://proxy.corp:3128",
		// What the user said, then the node's own, once each.
		"NO_PROXY=corp.example,10.0.0.0/8,127.0.0.1,localhost,192.0.2.7,10.42.0.0/16,10.43.0.0/16,.svc,.cluster.local,cameleer.local",
		"https_proxy=http://proxy.corp:3128",
		"no_proxy=corp.example,10.0.0.0/8,127.0.0.1,localhost,192.0.2.7,10.42.0.0/16,10.43.0.0/16,.svc,.cluster.local,cameleer.local",
	}
	if got := c.ProxyEnv(); !slices.Equal(got, want) {
		t.Errorf("ProxyEnv:\n%q\nwant\n%q", got, want)
	}
	c.Proxy.CABundle = true
	if got := c.ProxyEnv(); !slices.Contains(got, "SSL_CERT_FILE=/var/lib/cameleer/etc/ca-bundle.pem") {
		t.Errorf("with a CA bundle: %q", got)
	}
	if got := (Config{NodeIP: "192.0.2.7"}).ProxyEnv(); got != nil {
		t.Errorf("no proxy: %q", got)
	}
}
