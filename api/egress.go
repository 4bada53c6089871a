package api

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// EgressRule lets an environment's apps open connections to a destination
// outside the environment: CIDR (IPv4) or Host (a DNS name the runner
// resolves), one of the two, on Ports over Protocol (tcp or udp).
type EgressRule struct {
	CIDR     string `json:"cidr,omitempty"`
	Host     string `json:"host,omitempty"`
	Ports    []int  `json:"ports"`
	Protocol string `json:"protocol"`
}

// Egress is an environment's allow list as the control plane sends it to a
// runner. Revision grows with every change, so a runner that gets an older
// list after a newer one (two sends crossing) keeps the newer.
type Egress struct {
	Revision int64        `json:"revision"`
	Allow    []EgressRule `json:"allow"`
}

// Bounds of an allow list: it becomes one network policy (or chain) per
// environment, which stays small.
const (
	MaxEgressRules = 100
	MaxEgressPorts = 20
)

// RunnerEgressPath follows RunnerAppsPath and an environment's name: where
// a runner takes the environment's Egress.
const RunnerEgressPath = "/egress"

var hostLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// CheckEgress checks an allow list and returns it normalized: protocol
// tcp where none is given, host names in lower case without a final dot.
// Its error is one line that names the rule.
func CheckEgress(rules []EgressRule) ([]EgressRule, error) {
	if len(rules) > MaxEgressRules {
		return nil, fmt.Errorf("%d rules: an environment allows at most %d destinations", len(rules), MaxEgressRules)
	}
	out := make([]EgressRule, 0, len(rules))
	for i, r := range rules {
		r, err := checkRule(r)
		if err != nil {
			return nil, fmt.Errorf("allow[%d]: %w", i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func checkRule(r EgressRule) (EgressRule, error) {
	switch {
	case (r.CIDR == "") == (r.Host == ""):
		return r, fmt.Errorf("give either cidr or host")
	case r.CIDR != "":
		p, err := netip.ParsePrefix(r.CIDR)
		if err != nil {
			return r, fmt.Errorf("cidr %q is not an IPv4 CIDR such as 10.1.2.0/24", r.CIDR)
		}
		if !p.Addr().Is4() {
			return r, fmt.Errorf("cidr %q: only IPv4 destinations are supported", r.CIDR)
		}
		if p.Masked() != p {
			return r, fmt.Errorf("cidr %q has bits set past its prefix length: the network is %s", r.CIDR, p.Masked())
		}
	default:
		h := strings.TrimSuffix(strings.ToLower(r.Host), ".")
		if _, err := netip.ParseAddr(h); err == nil {
			return r, fmt.Errorf("host %q is an address: give it as a cidr (%s/32)", r.Host, h)
		}
		if err := checkHostName(h); err != nil {
			return r, fmt.Errorf("host %q %w", r.Host, err)
		}
		r.Host = h
	}
	switch r.Protocol {
	case "":
		r.Protocol = "tcp"
	case "tcp", "udp":
	default:
		return r, fmt.Errorf("protocol %q: tcp or udp", r.Protocol)
	}
	if len(r.Ports) == 0 || len(r.Ports) > MaxEgressPorts {
		return r, fmt.Errorf("give 1 to %d ports", MaxEgressPorts)
	}
	for i, p := range r.Ports {
		if p < 1 || p > 65535 {
			return r, fmt.Errorf("port %d is out of range 1-65535", p)
		}
		if slices.Contains(r.Ports[:i], p) {
			return r, fmt.Errorf("port %d is given twice", p)
		}
	}
	return r, nil
}

// checkHostName holds h to the DNS's rules for host names (RFC 1123):
// dot-separated labels of letters, digits and inner '-'.
func checkHostName(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("must be 1 to 253 characters")
	}
	for _, l := range strings.Split(h, ".") {
		if !hostLabel.MatchString(l) {
			return fmt.Errorf("is not a host name: label %q must be 1-63 letters, digits and inner '-'", l)
		}
	}
	return nil
}
