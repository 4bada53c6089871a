package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

const (
	defaultClusterCIDR   = "10.42.0.0/16"
	defaultServiceCIDR   = "10.43.0.0/16"
	defaultSubnetFile    = "/run/flannel/subnet.env"
	defaultNodePortRange = "30000-32767"
	defaultVXLANPort     = 8472
	defaultVXLANVNI      = 1
	defaultWaitTimeout   = 2 * time.Minute
	defaultSyncPeriod    = 5 * time.Minute
	maxVNI               = 1<<24 - 1
)

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// commonConfig holds what both daemons need.
type commonConfig struct {
	kubeconfig  string
	nodeName    string
	clusterCIDR *net.IPNet
	waitTimeout time.Duration
	verbosity   int
}

type flannelConfig struct {
	commonConfig
	iface      string // interface name or IPv4 address; empty: default route
	subnetFile string
	vxlanPort  int
	vxlanVNI   int
	ipMasq     bool
}

type netpolConfig struct {
	commonConfig
	serviceCIDR   *net.IPNet
	nodePortRange string
	syncPeriod    time.Duration
}

// commonFlags registers the flags both commands share; finish validates them
// once the flag set has been parsed.
type commonFlags struct {
	kubeconfig, nodeName, clusterCIDR string
	waitTimeout                       time.Duration
	verbosity                         int
}

func (c *commonFlags) register(fs *flag.FlagSet, waitWhat string) {
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig of the node (required)")
	fs.StringVar(&c.nodeName, "node-name", "", "name of this node (default: the host name, lower case)")
	fs.StringVar(&c.clusterCIDR, "cluster-cidr", defaultClusterCIDR, "pod network of the cluster (IPv4 CIDR)")
	fs.DurationVar(&c.waitTimeout, "wait-timeout", defaultWaitTimeout, "how long to wait for "+waitWhat+" before giving up")
	fs.IntVar(&c.verbosity, "v", 0, "log verbosity")
}

func (c *commonFlags) finish() (commonConfig, error) {
	var cfg commonConfig
	if c.kubeconfig == "" {
		return cfg, usagef("--kubeconfig is required")
	}
	cfg.kubeconfig = c.kubeconfig
	name := c.nodeName
	if name == "" {
		host, err := os.Hostname()
		if err != nil {
			return cfg, fmt.Errorf("no --node-name given and the host name is unknown: %w", err)
		}
		name = strings.ToLower(strings.TrimSpace(host))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return cfg, usagef("invalid node name %q: %s", name, errs[0])
	}
	cfg.nodeName = name
	cidr, err := parseIPv4CIDR("--cluster-cidr", c.clusterCIDR)
	if err != nil {
		return cfg, err
	}
	cfg.clusterCIDR = cidr
	if c.waitTimeout <= 0 {
		return cfg, usagef("--wait-timeout must be positive")
	}
	cfg.waitTimeout = c.waitTimeout
	if c.verbosity < 0 {
		return cfg, usagef("--v must not be negative")
	}
	cfg.verbosity = c.verbosity
	return cfg, nil
}

func parseFlannelFlags(args []string, stdout io.Writer) (*flannelConfig, error) {
	fs := newFlagSet("flannel", "Runs the flannel overlay (vxlan backend, Kubernetes subnet manager) and writes\n"+
		"the subnet file the flannel CNI plugin reads.")
	var c commonFlags
	c.register(fs, "the apiserver, the node and its pod CIDR")
	fs.Var((*stringValue)(&c.clusterCIDR), "pod-cidr", "alias of --cluster-cidr")
	cfg := &flannelConfig{}
	fs.StringVar(&cfg.iface, "iface", "", "interface name or IPv4 address for vxlan traffic\n"+
		"(default: the interface holding the node's InternalIP, else the one of the default route)")
	fs.StringVar(&cfg.subnetFile, "subnet-file", defaultSubnetFile, "subnet file for the flannel CNI plugin;\n"+
		"net-conf.json is written to the same directory")
	fs.IntVar(&cfg.vxlanPort, "vxlan-port", defaultVXLANPort, "UDP port of the vxlan device")
	fs.IntVar(&cfg.vxlanVNI, "vxlan-vni", defaultVXLANVNI, "vxlan network identifier; the device is flannel.<VNI>")
	fs.BoolVar(&cfg.ipMasq, "ip-masq", true, "masquerade traffic from pods to outside the cluster network")
	if err := parseArgs(fs, args, stdout); err != nil {
		return nil, err
	}
	common, err := c.finish()
	if err != nil {
		return nil, err
	}
	cfg.commonConfig = common
	if err := checkIface(cfg.iface); err != nil {
		return nil, err
	}
	if cfg.subnetFile == "" {
		return nil, usagef("--subnet-file must not be empty")
	}
	if cfg.vxlanPort < 1 || cfg.vxlanPort > 65535 {
		return nil, usagef("--vxlan-port %d is not a port number", cfg.vxlanPort)
	}
	if cfg.vxlanVNI < 1 || cfg.vxlanVNI > maxVNI {
		return nil, usagef("--vxlan-vni %d is out of range 1-%d", cfg.vxlanVNI, maxVNI)
	}
	return cfg, nil
}

func parseNetpolFlags(args []string, stdout io.Writer) (*netpolConfig, error) {
	fs := newFlagSet("netpol", "Runs the NetworkPolicy controller of kube-router (K3s fork) with iptables and\n"+
		"ipset for IPv4.")
	var c commonFlags
	c.register(fs, "the apiserver and the node's addresses")
	var serviceCIDR string
	cfg := &netpolConfig{}
	fs.StringVar(&serviceCIDR, "service-cidr", defaultServiceCIDR, "service ClusterIP range (IPv4 CIDR)")
	fs.StringVar(&cfg.nodePortRange, "node-port-range", defaultNodePortRange, "NodePort range, FIRST-LAST")
	fs.DurationVar(&cfg.syncPeriod, "sync-period", defaultSyncPeriod, "period of the full sync of iptables and ipsets")
	if err := parseArgs(fs, args, stdout); err != nil {
		return nil, err
	}
	common, err := c.finish()
	if err != nil {
		return nil, err
	}
	cfg.commonConfig = common
	if cfg.serviceCIDR, err = parseIPv4CIDR("--service-cidr", serviceCIDR); err != nil {
		return nil, err
	}
	if overlap(cfg.clusterCIDR, cfg.serviceCIDR) {
		return nil, usagef("--cluster-cidr %s and --service-cidr %s overlap", cfg.clusterCIDR, cfg.serviceCIDR)
	}
	if err := checkPortRange(cfg.nodePortRange); err != nil {
		return nil, err
	}
	if cfg.syncPeriod < time.Second {
		return nil, usagef("--sync-period must be at least 1s")
	}
	return cfg, nil
}

// newFlagSet makes a flag set that stays quiet on errors (run prints one
// line) and prints a help text with double-dash flags on --help.
func newFlagSet(name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: cameleer-net %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.VisitAll(func(f *flag.Flag) {
			typ, usage := flag.UnquoteUsage(f)
			if typ == "value" {
				typ = "string"
			}
			fmt.Fprintf(out, "  %s\n", strings.TrimSpace("--"+f.Name+" "+typ))
			usage = strings.ReplaceAll(usage, "\n", "\n      ")
			if f.DefValue != "" && f.DefValue != "0" {
				usage += fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(out, "      %s\n", usage)
		})
	}
	return fs
}

func parseArgs(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return err
	}
	if err != nil {
		return &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func parseIPv4CIDR(flagName, s string) (*net.IPNet, error) {
	ip, ipnet, err := net.ParseCIDR(strings.TrimSpace(s))
	if err != nil {
		return nil, usagef("%s %q is not a CIDR", flagName, s)
	}
	if ip.To4() == nil {
		return nil, usagef("%s %s: only IPv4 is supported", flagName, s)
	}
	if !ip.Equal(ipnet.IP) {
		return nil, usagef("%s %s has host bits set (did you mean %s?)", flagName, s, ipnet)
	}
	if ones, _ := ipnet.Mask.Size(); ones > 28 {
		return nil, usagef("%s %s is too small (at most /28)", flagName, s)
	}
	return ipnet, nil
}

func overlap(a, b *net.IPNet) bool {
	return a.Contains(b.IP) || b.Contains(a.IP)
}

// checkIface accepts an empty value, an IPv4 address or a plausible
// interface name; whether the interface exists is checked at run time.
func checkIface(s string) error {
	if s == "" {
		return nil
	}
	if ip := net.ParseIP(s); ip != nil {
		if ip.To4() == nil {
			return usagef("--iface %s: only IPv4 is supported", s)
		}
		return nil
	}
	if len(s) > 15 || strings.ContainsAny(s, "/ \t") {
		return usagef("--iface %q is neither an IPv4 address nor an interface name", s)
	}
	return nil
}

func checkPortRange(s string) error {
	first, last, ok := strings.Cut(s, "-")
	if !ok {
		first, last, ok = strings.Cut(s, ":")
	}
	p1, err1 := strconv.ParseUint(first, 10, 16)
	p2, err2 := strconv.ParseUint(last, 10, 16)
	if !ok || err1 != nil || err2 != nil || p1 == 0 || p1 >= p2 {
		return usagef("--node-port-range %q is not a port range FIRST-LAST", s)
	}
	return nil
}

// stringValue lets a second flag name write the same string.
type stringValue string

func (s *stringValue) String() string     { return string(*s) }
func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }
