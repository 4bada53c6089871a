package engine

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/join"
)

// A worker gets from its controller the certificates every node has: the
// join protocol and the engine name them alike.
func TestNodeCertsAreWhatWorkersJoinWith(t *testing.T) {
	var names []string
	for _, c := range NodeCerts("w1", "10.0.0.3") {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, join.CertNames) {
		t.Fatalf("node certificates %v, join.CertNames %v", names, join.CertNames)
	}
}

// A worker's files: kubeconfigs at its controller's apiserver, pulls from
// its controller's cluster port with its kubelet's certificate, no admin,
// no local registry; and without the certificates its join brought, a
// clear error.
func TestPrepareWorker(t *testing.T) {
	c, err := config.Default(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c.NodeName, c.NodeIP, c.Role, c.Server = "w1", "10.0.0.3", config.Worker, "10.0.0.2"
	p := Paths{Config: c, Payload: "/payload", Images: map[string]string{"pause": "cameleer.local/pause:1"}}
	if err := Prepare(p); err == nil || !strings.Contains(err.Error(), "join again") {
		t.Fatalf("without certificates: %v", err)
	}
	os.MkdirAll(c.PKIDir(), 0o700)
	for _, n := range append([]string{"ca"}, join.CertNames...) {
		os.WriteFile(filepath.Join(c.PKIDir(), n+".crt"), []byte("x"), 0o600)
	}
	if err := Prepare(p); err != nil {
		t.Fatal(err)
	}
	kc, _ := os.ReadFile(p.kubeconfig("kubelet"))
	if !strings.Contains(string(kc), "server: https://10.0.0.2:6443") {
		t.Errorf("kubelet kubeconfig:\n%s", kc)
	}
	hosts, err := os.ReadFile(filepath.Join(p.registryHosts(), config.RegistryHost, "hosts.toml"))
	if err != nil || !strings.Contains(string(hosts), "server = 'https://10.0.0.2:6444'") || !strings.Contains(string(hosts), "kubelet-client.crt") {
		t.Errorf("registry hosts: %v\n%s", err, hosts)
	}
	for _, f := range []string{c.AdminKubeconfig(), filepath.Join(p.registryHosts(), p.RegistryAddr()), p.kubeconfig("scheduler")} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("a worker has %s", f)
		}
	}
	var names []string
	for _, comp := range p.Components(nil, nil, nil) {
		names = append(names, comp.Name)
	}
	if want := []string{"containerd", "kubelet", "kube-proxy", "flannel", "network-policy"}; !slices.Equal(names, want) {
		t.Errorf("a worker's components %v, want %v", names, want)
	}
}
