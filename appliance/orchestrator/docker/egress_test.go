package docker

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cameleer/cameleer/appliance/orchestrator"
)

func TestFenceRestore(t *testing.T) {
	f := fenceOf("acme", "dev")
	if len(f.bridge) > 15 || len(f.forward) > 28 || !strings.HasPrefix(f.bridge, "cml-") {
		t.Errorf("fence names %+v: a bridge name holds 15 characters, a chain's 28", f)
	}
	if g := fenceOf("acme", "prod"); g.bridge == f.bridge || g.forward == f.forward {
		t.Errorf("two environments share a fence: %+v", g)
	}
	ports := make([]int, 17)
	for i := range ports {
		ports[i] = 8000 + i
	}
	got := f.restore([]orchestrator.EgressRule{
		{To: []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("192.0.2.7/32")}, Ports: []int{443}, Protocol: "tcp"},
		{To: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, Ports: ports, Protocol: "udp"},
	}, []netip.Addr{netip.MustParseAddr("10.255.255.53")})
	F, I := f.forward, f.input
	want := strings.Join([]string{
		"*filter",
		":" + F + " - [0:0]",
		":" + I + " - [0:0]",
		"-A " + F + " -m conntrack --ctstate ESTABLISHED,RELATED --ctdir REPLY -j RETURN",
		"-A " + I + " -m conntrack --ctstate ESTABLISHED,RELATED --ctdir REPLY -j RETURN",
		"-A " + F + " -o " + f.bridge + " -j RETURN",
		"-A " + F + " -o cml+ -j REJECT --reject-with icmp-admin-prohibited",
		"-A " + F + " -d 10.255.255.53/32 -p udp -m multiport --dports 53 -j RETURN",
		"-A " + I + " -d 10.255.255.53/32 -p udp -m multiport --dports 53 -j RETURN",
		"-A " + F + " -d 10.255.255.53/32 -p tcp -m multiport --dports 53 -j RETURN",
		"-A " + I + " -d 10.255.255.53/32 -p tcp -m multiport --dports 53 -j RETURN",
		"-A " + F + " -d 10.1.2.0/24 -p tcp -m multiport --dports 443 -j RETURN",
		"-A " + I + " -d 10.1.2.0/24 -p tcp -m multiport --dports 443 -j RETURN",
		"-A " + F + " -d 192.0.2.7/32 -p tcp -m multiport --dports 443 -j RETURN",
		"-A " + I + " -d 192.0.2.7/32 -p tcp -m multiport --dports 443 -j RETURN",
		"-A " + F + " -d 198.51.100.0/24 -p udp -m multiport --dports 8000,8001,8002,8003,8004,8005,8006,8007,8008,8009,8010,8011,8012,8013,8014 -j RETURN",
		"-A " + I + " -d 198.51.100.0/24 -p udp -m multiport --dports 8000,8001,8002,8003,8004,8005,8006,8007,8008,8009,8010,8011,8012,8013,8014 -j RETURN",
		"-A " + F + " -d 198.51.100.0/24 -p udp -m multiport --dports 8015,8016 -j RETURN",
		"-A " + I + " -d 198.51.100.0/24 -p udp -m multiport --dports 8015,8016 -j RETURN",
		"-A " + F + " -j REJECT --reject-with icmp-admin-prohibited",
		"-A " + I + " -j REJECT --reject-with icmp-admin-prohibited",
		"COMMIT",
	}, "\n") + "\n"
	if got != want {
		t.Errorf("restore:\n%s\nwant:\n%s", got, want)
	}
	// Shut: replies and the environment's own bridge, nothing else.
	shut := f.restore(nil, nil)
	if strings.Count(shut, "-j RETURN") != 3 || strings.Count(shut, "REJECT") != 3 {
		t.Errorf("a fence with no rules:\n%s", shut)
	}
}

func TestHostResolvers(t *testing.T) {
	dir := t.TempDir()
	stub := filepath.Join(dir, "stub")
	os.WriteFile(stub, []byte("# systemd-resolved\nnameserver 127.0.0.53\noptions edns0\n"), 0o644)
	upstream := filepath.Join(dir, "upstream")
	os.WriteFile(upstream, []byte("search example\nnameserver 10.0.0.2\nnameserver fd00::1\nnameserver 10.0.0.3 # second\n"), 0o644)
	got := hostResolvers([]string{filepath.Join(dir, "missing"), stub, upstream})
	want := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resolvers %v, want %v", got, want)
	}
	if got := hostResolvers([]string{stub}); got != nil {
		t.Errorf("a loopback stub only: %v", got)
	}
}
