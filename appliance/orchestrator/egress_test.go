package orchestrator

import (
	"net/netip"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v2"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// The egress NetworkPolicy opens each rule's addresses on its ports, never
// the pods' network, and a rule without addresses opens nothing (an
// egress entry without any would open everything).
func TestEgressPolicy(t *testing.T) {
	k := &Kubernetes{ClusterCIDR: "10.42.0.0/16"}
	doc, err := k.egressPolicy("cameleer-acme-dev", []EgressRule{
		{To: prefixes("10.1.2.0/24"), Ports: []int{443}, Protocol: "tcp"},
		{To: prefixes("192.0.2.10/32", "192.0.2.11/32"), Ports: []int{5432, 5433}, Protocol: "tcp"},
		{To: prefixes("0.0.0.0/0"), Ports: []int{514}, Protocol: "udp"},
		{To: nil, Ports: []int{80}, Protocol: "tcp"},
		{To: prefixes("10.42.3.7/32"), Ports: []int{8080}, Protocol: "tcp"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var policy struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string
		Metadata   struct{ Name, Namespace string }
		Spec       struct {
			PodSelector map[string]any `yaml:"podSelector"`
			PolicyTypes []string       `yaml:"policyTypes"`
			Egress      []struct {
				To []struct {
					IPBlock struct {
						CIDR   string
						Except []string
					} `yaml:"ipBlock"`
				}
				Ports []struct {
					Port     int
					Protocol string
				}
			}
		}
	}
	if err := yaml.UnmarshalStrict(doc, &policy); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	if policy.APIVersion != "networking.k8s.io/v1" || policy.Kind != "NetworkPolicy" || policy.Metadata.Name != egressPolicy || policy.Metadata.Namespace != "cameleer-acme-dev" ||
		policy.Spec.PodSelector == nil || !reflect.DeepEqual(policy.Spec.PolicyTypes, []string{"Egress"}) {
		t.Errorf("policy:\n%s", doc)
	}
	type port struct {
		Port     int
		Protocol string
	}
	want := []struct {
		cidrs  []string
		except []string
		ports  []port
	}{
		{[]string{"10.1.2.0/24"}, nil, []port{{443, "TCP"}}},
		{[]string{"192.0.2.10/32", "192.0.2.11/32"}, nil, []port{{5432, "TCP"}, {5433, "TCP"}}},
		{[]string{"0.0.0.0/0"}, []string{"10.42.0.0/16"}, []port{{514, "UDP"}}},
	}
	if len(policy.Spec.Egress) != len(want) {
		t.Fatalf("%d egress entries, want %d:\n%s", len(policy.Spec.Egress), len(want), doc)
	}
	for i, w := range want {
		e := policy.Spec.Egress[i]
		var cidrs, except []string
		for _, to := range e.To {
			cidrs = append(cidrs, to.IPBlock.CIDR)
			except = append(except, to.IPBlock.Except...)
		}
		var ports []port
		for _, p := range e.Ports {
			ports = append(ports, port(p))
		}
		if !reflect.DeepEqual(cidrs, w.cidrs) || !reflect.DeepEqual(except, w.except) || !reflect.DeepEqual(ports, w.ports) {
			t.Errorf("entry %d: to %v except %v ports %v, want %v %v %v", i, cidrs, except, ports, w.cidrs, w.except, w.ports)
		}
	}

	for _, rules := range [][]EgressRule{nil, {{To: nil, Ports: []int{80}, Protocol: "tcp"}}, {{To: prefixes("10.42.0.0/24"), Ports: []int{80}, Protocol: "tcp"}}} {
		if doc, err := k.egressPolicy("ns", rules); doc != nil || err != nil {
			t.Errorf("rules %+v opening nothing rendered a policy (%v):\n%s", rules, err, doc)
		}
	}
}
