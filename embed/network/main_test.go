package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flannel-io/flannel/pkg/subnet"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParseFlannelDefaults(t *testing.T) {
	cfg, err := parseFlannelFlags([]string{"--kubeconfig", "/k", "--node-name", "n1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.kubeconfig != "/k" || cfg.nodeName != "n1" {
		t.Errorf("kubeconfig/node-name = %q/%q", cfg.kubeconfig, cfg.nodeName)
	}
	if cfg.clusterCIDR.String() != defaultClusterCIDR || cfg.subnetFile != defaultSubnetFile ||
		cfg.vxlanPort != 8472 || cfg.vxlanVNI != 1 || !cfg.ipMasq || cfg.iface != "" ||
		cfg.waitTimeout != defaultWaitTimeout {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
}

func TestParseFlannelFlags(t *testing.T) {
	cfg, err := parseFlannelFlags([]string{
		"--kubeconfig=/k", "--node-name=n1", "--pod-cidr", "10.50.0.0/16", "--iface", "192.168.1.5",
		"--subnet-file", "/tmp/x/subnet.env", "--vxlan-port", "4789", "--vxlan-vni", "7",
		"--ip-masq=false", "--wait-timeout", "5s", "--v", "3",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.clusterCIDR.String() != "10.50.0.0/16" || cfg.iface != "192.168.1.5" ||
		cfg.subnetFile != "/tmp/x/subnet.env" || cfg.vxlanPort != 4789 || cfg.vxlanVNI != 7 ||
		cfg.ipMasq || cfg.waitTimeout != 5*time.Second || cfg.verbosity != 3 {
		t.Errorf("flags not applied: %+v", cfg)
	}
}

func TestDefaultNodeNameIsHostname(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no host name")
	}
	cfg, err := parseFlannelFlags([]string{"--kubeconfig", "/k"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.nodeName != strings.ToLower(host) {
		t.Errorf("node name %q, want %q", cfg.nodeName, strings.ToLower(host))
	}
}

func TestParseFlannelErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--node-name", "n1"}, "--kubeconfig is required"},
		{[]string{"--kubeconfig", "/k", "--node-name", "N_1"}, "invalid node name"},
		{[]string{"--kubeconfig", "/k", "--cluster-cidr", "10.42.0.0"}, "not a CIDR"},
		{[]string{"--kubeconfig", "/k", "--cluster-cidr", "fd00::/48"}, "only IPv4"},
		{[]string{"--kubeconfig", "/k", "--cluster-cidr", "10.42.1.0/16"}, "host bits"},
		{[]string{"--kubeconfig", "/k", "--cluster-cidr", "10.42.0.0/30"}, "too small"},
		{[]string{"--kubeconfig", "/k", "--vxlan-port", "0"}, "not a port"},
		{[]string{"--kubeconfig", "/k", "--vxlan-port", "70000"}, "not a port"},
		{[]string{"--kubeconfig", "/k", "--vxlan-vni", "0"}, "out of range"},
		{[]string{"--kubeconfig", "/k", "--vxlan-vni", "16777216"}, "out of range"},
		{[]string{"--kubeconfig", "/k", "--iface", "fe80::1"}, "only IPv4"},
		{[]string{"--kubeconfig", "/k", "--iface", "a very long interface"}, "neither"},
		{[]string{"--kubeconfig", "/k", "--subnet-file", ""}, "must not be empty"},
		{[]string{"--kubeconfig", "/k", "--wait-timeout", "0s"}, "must be positive"},
		{[]string{"--kubeconfig", "/k", "--bogus"}, "not defined"},
		{[]string{"--kubeconfig", "/k", "extra"}, "unexpected argument"},
	} {
		_, err := parseFlannelFlags(tc.args, io.Discard)
		checkUsageError(t, tc.args, err, tc.want)
	}
}

func TestParseNetpolFlags(t *testing.T) {
	cfg, err := parseNetpolFlags([]string{"--kubeconfig", "/k", "--node-name", "n1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.clusterCIDR.String() != defaultClusterCIDR || cfg.serviceCIDR.String() != defaultServiceCIDR ||
		cfg.syncPeriod != defaultSyncPeriod || cfg.nodePortRange != defaultNodePortRange {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
	cfg, err = parseNetpolFlags([]string{"--kubeconfig", "/k", "--node-name", "n1",
		"--service-cidr", "10.96.0.0/12", "--sync-period", "30s", "--node-port-range", "30000:31000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.serviceCIDR.String() != "10.96.0.0/12" || cfg.syncPeriod != 30*time.Second ||
		cfg.nodePortRange != "30000:31000" {
		t.Errorf("flags not applied: %+v", cfg)
	}
	kr := kubeRouterConfig(cfg)
	if !kr.RunFirewall || kr.RunRouter || kr.RunServiceProxy || !kr.EnableIPv4 || kr.EnableIPv6 ||
		kr.HostnameOverride != "n1" || kr.ClusterIPCIDRs[0] != "10.96.0.0/12" || kr.IPTablesSyncPeriod != 30*time.Second {
		t.Errorf("kube-router config: %+v", kr)
	}
}

func TestParseNetpolErrors(t *testing.T) {
	base := []string{"--kubeconfig", "/k", "--node-name", "n1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--service-cidr", "10.42.128.0/20"}, "overlap"},
		{[]string{"--service-cidr", "fd00::/108"}, "only IPv4"},
		{[]string{"--sync-period", "0s"}, "at least 1s"},
		{[]string{"--node-port-range", "32767-30000"}, "not a port range"},
		{[]string{"--node-port-range", "30000"}, "not a port range"},
		{[]string{"--node-port-range", "0-100"}, "not a port range"},
		{[]string{"--vxlan-port", "1"}, "not defined"},
	} {
		args := append(append([]string{}, base...), tc.args...)
		_, err := parseNetpolFlags(args, io.Discard)
		checkUsageError(t, args, err, tc.want)
	}
}

func checkUsageError(t *testing.T, args []string, err error, want string) {
	t.Helper()
	var ue *usageError
	switch {
	case err == nil:
		t.Errorf("%q: no error, want %q", args, want)
	case !errors.As(err, &ue):
		t.Errorf("%q: %v is not a usage error", args, err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("%q: error %q, want it to contain %q", args, err, want)
	}
}

func TestHelp(t *testing.T) {
	for _, cmd := range []string{"flannel", "netpol"} {
		var out, errOut bytes.Buffer
		if code := run([]string{cmd, "--help"}, &out, &errOut); code != 0 {
			t.Errorf("%s --help: exit %d", cmd, code)
		}
		for _, want := range []string{"--kubeconfig", "--node-name", "--cluster-cidr", "--wait-timeout"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s --help lacks %s:\n%s", cmd, want, out.String())
			}
		}
	}
	var out bytes.Buffer
	run([]string{"flannel", "-h"}, &out, io.Discard)
	for _, want := range []string{"--iface", "--pod-cidr", "--subnet-file", "--vxlan-port", "--vxlan-vni", "--ip-masq"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("flannel --help lacks %s", want)
		}
	}
}

func TestRunExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage:"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"flannel"}, 2, "cameleer-net flannel: --kubeconfig is required (see --help)\n"},
		{[]string{"netpol", "--kubeconfig", "/nonexistent/kubeconfig", "--node-name", "n1"}, 1,
			"cameleer-net netpol: kubeconfig /nonexistent/kubeconfig does not exist\n"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d, %q", tc.args, code, errOut.String(), tc.code, tc.want)
		}
	}
}

func TestUnreachableAPIServer(t *testing.T) {
	// A port nothing listens on: bind one and close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip(err)
	}
	addr := l.Addr().String()
	l.Close()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://`+addr+`", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"flannel", "netpol"} {
		var errOut bytes.Buffer
		code := run([]string{cmd, "--kubeconfig", kubeconfig, "--node-name", "n1", "--wait-timeout", "1ms"},
			io.Discard, &errOut)
		msg := errOut.String()
		if code != 1 || strings.Count(msg, "\n") != 1 ||
			!strings.Contains(msg, "cannot reach the apiserver at https://"+addr) ||
			!strings.Contains(msg, "connection refused") || !strings.Contains(msg, "gave up after") {
			t.Errorf("%s: exit %d, stderr %q", cmd, code, msg)
		}
	}
}

func TestNodeChecks(t *testing.T) {
	_, cluster, _ := net.ParseCIDR("10.42.0.0/16")
	check := hasPodCIDR(cluster)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	if missing, err := check(node); missing == "" || err != nil {
		t.Errorf("no pod CIDR: %q, %v", missing, err)
	}
	node.Spec.PodCIDR = "10.42.3.0/24"
	if missing, err := check(node); missing != "" || err != nil {
		t.Errorf("good pod CIDR: %q, %v", missing, err)
	}
	node.Spec.PodCIDR = "10.99.3.0/24"
	if _, err := check(node); err == nil {
		t.Error("pod CIDR outside the cluster CIDR accepted")
	}

	if missing, _ := hasAddress(node); missing == "" {
		t.Error("node without addresses accepted")
	}
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeHostName, Address: "n1"},
		{Type: corev1.NodeExternalIP, Address: "203.0.113.9"},
		{Type: corev1.NodeInternalIP, Address: "fd00::5"},
		{Type: corev1.NodeInternalIP, Address: "192.168.1.5"},
	}
	if ip := nodeIPv4(node); ip.String() != "192.168.1.5" {
		t.Errorf("nodeIPv4 = %v", ip)
	}
	node.Spec.Taints = []corev1.Taint{{Key: uninitializedTaint, Effect: corev1.TaintEffectNoSchedule}}
	if missing, _ := hasAddress(node); missing == "" {
		t.Error("uninitialized node accepted")
	}
	node.Spec.Taints = nil
	if missing, err := hasAddress(node); missing != "" || err != nil {
		t.Errorf("ready node: %q, %v", missing, err)
	}
}

func TestNetConfParsesInFlannel(t *testing.T) {
	cfg, err := parseFlannelFlags([]string{"--kubeconfig", "/k", "--node-name", "n1", "--vxlan-vni", "4", "--vxlan-port", "4789"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := subnet.ParseConfig(string(netConf(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Network.String() != "10.42.0.0/16" || !sc.EnableIPv4 || sc.EnableIPv6 || sc.BackendType != "vxlan" {
		t.Errorf("parsed config: %+v", sc)
	}
	var be struct{ VNI, Port int }
	if err := json.Unmarshal(sc.Backend, &be); err != nil || be.VNI != 4 || be.Port != 4789 {
		t.Errorf("backend %s: %+v %v", sc.Backend, be, err)
	}
}

func TestSubnetFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "flannel", "subnet.env")
	network, sn := readSubnetFile(path)
	if !network.Empty() || !sn.Empty() {
		t.Errorf("missing file gave %v %v", network, sn)
	}
	content := "# written by flannel\nFLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=\"true\"\n"
	if err := writeFileAtomic(path, []byte(content)); err != nil {
		t.Fatal(err)
	}
	network, sn = readSubnetFile(path)
	if network.String() != "10.42.0.0/16" || sn.String() != "10.42.3.0/24" {
		t.Errorf("read %v %v", network, sn)
	}
	env := parseEnv(content)
	if env["FLANNEL_MTU"] != "1450" || env["FLANNEL_IPMASQ"] != "true" || len(env) != 4 {
		t.Errorf("parseEnv: %v", env)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--version"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"flannel ", "kube-router ", "client-go ", "go "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, out.String())
		}
	}
	var out2 bytes.Buffer
	run([]string{"version"}, &out2, io.Discard)
	if out.String() != out2.String() {
		t.Errorf("version and --version differ")
	}
}
