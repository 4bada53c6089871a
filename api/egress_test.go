package api

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestCheckEgress(t *testing.T) {
	got, err := CheckEgress([]EgressRule{
		{CIDR: "10.1.2.0/24", Ports: []int{443}},
		{Host: "DB.Example.Internal.", Ports: []int{5432, 5433}},
		{CIDR: "192.0.2.7/32", Ports: []int{514}, Protocol: "udp"},
		{CIDR: "0.0.0.0/0", Ports: []int{1, 65535}, Protocol: "tcp"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []EgressRule{
		{CIDR: "10.1.2.0/24", Ports: []int{443}, Protocol: "tcp"},
		{Host: "db.example.internal", Ports: []int{5432, 5433}, Protocol: "tcp"},
		{CIDR: "192.0.2.7/32", Ports: []int{514}, Protocol: "udp"},
		{CIDR: "0.0.0.0/0", Ports: []int{1, 65535}, Protocol: "tcp"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("normalized:\n%+v\nwant\n%+v", got, want)
	}
	if got, err := CheckEgress(nil); err != nil || got == nil || len(got) != 0 {
		t.Errorf("no rules: %#v %v, want an empty list", got, err)
	}
}

// Every refusal is one line that names the rule and what is wrong with it.
func TestCheckEgressRefuses(t *testing.T) {
	tooMany := make([]EgressRule, MaxEgressRules+1)
	for i := range tooMany {
		tooMany[i] = EgressRule{CIDR: fmt.Sprintf("10.0.%d.0/24", i), Ports: []int{80}}
	}
	manyPorts := make([]int, MaxEgressPorts+1)
	for i := range manyPorts {
		manyPorts[i] = 8000 + i
	}
	for _, c := range []struct {
		rules []EgressRule
		want  string
	}{
		{tooMany, "at most 100"},
		{[]EgressRule{{Ports: []int{80}}}, "allow[0]: give either cidr or host"},
		{[]EgressRule{{CIDR: "10.0.0.0/8", Host: "a.example", Ports: []int{80}}}, "either cidr or host"},
		{[]EgressRule{{CIDR: "10.1.2.0/33", Ports: []int{80}}}, `cidr "10.1.2.0/33" is not an IPv4 CIDR`},
		{[]EgressRule{{CIDR: "10.1.2.3", Ports: []int{80}}}, "is not an IPv4 CIDR"},
		{[]EgressRule{{CIDR: "db.example", Ports: []int{80}}}, "is not an IPv4 CIDR"},
		{[]EgressRule{{CIDR: "10.1.2.3/24", Ports: []int{80}}}, "the network is 10.1.2.0/24"},
		{[]EgressRule{{CIDR: "2001:db8::/32", Ports: []int{80}}}, "only IPv4"},
		{[]EgressRule{{Host: "10.1.2.3", Ports: []int{80}}}, "give it as a cidr (10.1.2.3/32)"},
		{[]EgressRule{{Host: "db_1.example", Ports: []int{80}}}, `label "db_1"`},
		{[]EgressRule{{Host: "-db.example", Ports: []int{80}}}, "is not a host name"},
		{[]EgressRule{{Host: "db..example", Ports: []int{80}}}, `label ""`},
		{[]EgressRule{{Host: strings.Repeat("a", 64) + ".example", Ports: []int{80}}}, "1-63"},
		{[]EgressRule{{Host: strings.Repeat("abcdefgh.", 32) + "example", Ports: []int{80}}}, "1 to 253 characters"},
		{[]EgressRule{{Host: "db.example", Ports: []int{80}, Protocol: "sctp"}}, `protocol "sctp": tcp or udp`},
		{[]EgressRule{{Host: "db.example"}}, "give 1 to 20 ports"},
		{[]EgressRule{{Host: "db.example", Ports: manyPorts}}, "give 1 to 20 ports"},
		{[]EgressRule{{CIDR: "10.0.0.0/8", Ports: []int{0}}}, "port 0 is out of range 1-65535"},
		{[]EgressRule{{CIDR: "10.0.0.0/8", Ports: []int{65536}}}, "port 65536 is out of range"},
		{[]EgressRule{{CIDR: "10.0.0.0/8", Ports: []int{443, 80, 443}}}, "port 443 is given twice"},
		{[]EgressRule{{CIDR: "10.0.0.0/8", Ports: []int{80}}, {CIDR: "10.0.0.0/8", Ports: []int{-1}}}, "allow[1]: port -1"},
	} {
		_, err := CheckEgress(c.rules)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %v, want one line with %q", c.rules, err, c.want)
		}
	}
}
