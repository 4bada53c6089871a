package version

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/modfile"
)

// Each nested engine module must build exactly the version embed/versions
// pins, so the version cameleer reports is the version it carries.
func TestNestedModulesMatchPins(t *testing.T) {
	pins, err := ReadPins("../embed/versions")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ dir, module, pin string }{
		{"kubernetes", "k8s.io/kubernetes", "KUBERNETES_VERSION"},
		{"kine", "github.com/k3s-io/kine", "KINE_VERSION"},
		{"containerd", "github.com/containerd/containerd/v2", "CONTAINERD_VERSION"},
		{"runc", "github.com/opencontainers/runc", "RUNC_VERSION"},
		{"cni", "github.com/containernetworking/plugins", "CNI_PLUGINS_VERSION"},
		{"network", "github.com/flannel-io/flannel", "FLANNEL_VERSION"},
		{"network", "github.com/k3s-io/kube-router/v2", "KUBE_ROUTER_VERSION"},
		{"coredns", "github.com/coredns/coredns", "COREDNS_VERSION"},
		{"traefik", "github.com/traefik/traefik/v3", "TRAEFIK_VERSION"},
		{"local-path-provisioner", "github.com/rancher/local-path-provisioner", "LOCAL_PATH_PROVISIONER_VERSION"},
	}
	for _, tt := range tests {
		path := filepath.Join("../embed", tt.dir, "go.mod")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v", tt.pin, err)
			continue
		}
		f, err := modfile.Parse(path, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := moduleVersion(f, tt.module); got != pins[tt.pin] {
			t.Errorf("%s builds %s %s, but embed/versions pins %s=%s", path, tt.module, got, tt.pin, pins[tt.pin])
		}
	}
}

// moduleVersion is the version of module a go.mod selects, through a
// replace directive if there is one.
func moduleVersion(f *modfile.File, module string) string {
	for _, r := range f.Replace {
		if r.New.Path == module {
			return r.New.Version
		}
	}
	for _, r := range f.Require {
		if r.Mod.Path == module {
			return r.Mod.Version
		}
	}
	return ""
}
