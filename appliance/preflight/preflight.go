// Package preflight checks that a host can run a node before install
// changes anything: root, kernel features, cgroups, host tools, free ports,
// disk and memory. Each failure is one line that says what to do.
package preflight

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cameleer/cameleer/appliance/config"
)

// Minimums a node needs.
const (
	MinDisk   = 4 << 30
	MinMemory = 1536 << 20
)

// Result is one check.
type Result struct {
	Name string
	Err  error
}

// Options select what to check.
type Options struct {
	Config config.Config
	// SkipPorts when the node already runs and holds its ports.
	SkipPorts bool
}

// kernelFeature is a kernel feature the engine needs: found if any of
// paths exists, or the kernel config has option built in or as a module.
type kernelFeature struct {
	name, module, option string
	paths                []string
}

var features = []kernelFeature{
	{"overlay filesystem", "overlay", "CONFIG_OVERLAY_FS", nil},
	{"bridge", "bridge", "CONFIG_BRIDGE", nil},
	{"bridge netfilter", "br_netfilter", "CONFIG_BRIDGE_NETFILTER", []string{"/proc/sys/net/bridge/bridge-nf-call-iptables"}},
	{"veth", "veth", "CONFIG_VETH", nil},
	{"vxlan", "vxlan", "CONFIG_VXLAN", nil},
	{"netfilter (nf_tables or iptables)", "nf_tables", "CONFIG_NF_TABLES", []string{"/proc/net/ip_tables_names"}},
	{"connection tracking", "nf_conntrack", "CONFIG_NF_CONNTRACK", []string{"/proc/sys/net/netfilter/nf_conntrack_max"}},
	{"ip sets", "ip_set", "CONFIG_IP_SET", nil},
}

// host is where the kernel, cgroup and tool checks look: this host's
// root and kernel, or in tests a directory of fake /proc, /sys, /boot and
// /lib files.
type host struct {
	root string
	// release is the running kernel's (uname -r): it names the kernel's
	// config in /boot and its modules in /lib/modules.
	release string
	// path is where host tools are looked for.
	path []string
	// modprobe loads a kernel module, where it can.
	modprobe func(module string)
}

func thisHost() host {
	h := host{
		root: "/",
		path: filepath.SplitList(os.Getenv("PATH") + ":/usr/sbin:/sbin"),
		// Harmless where modprobe or the modules are missing.
		modprobe: func(module string) { _ = exec.Command("modprobe", module).Run() },
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.release = unix.ByteSliceToString(u.Release[:])
	}
	return h
}

// file is p (an absolute path) on the host.
func (h host) file(p string) string { return filepath.Join(h.root, p) }

// Run runs every check.
func Run(opts Options) []Result {
	var rs []Result
	add := func(name string, err error) { rs = append(rs, Result{name, err}) }
	add("root", root())
	h := thisHost()
	kcfg := h.kernelConfig()
	for _, f := range features {
		add("kernel: "+f.name, h.kernel(f, kcfg))
	}
	add("cgroups", h.cgroups())
	for _, tool := range []string{"iptables", "iptables-save", "iptables-restore", "ipset", "ip", "mount"} {
		add("host tool "+tool, h.lookTool(tool))
	}
	if !opts.SkipPorts {
		c := opts.Config
		ports := []struct {
			port int
			what string
		}{
			{c.HTTPPort, "HTTP ingress (--http-port)"}, {c.HTTPSPort, "HTTPS ingress (--https-port)"},
			{10248, "kubelet health"}, {10250, "kubelet"}, {10256, "kube-proxy health"},
		}
		if !c.IsWorker() {
			ports = append(ports, []struct {
				port int
				what string
			}{
				{c.APIPort, "kube-apiserver"}, {c.RegistryPort, "registry"}, {c.ClusterPort, "the cluster port workers join on"},
				{10257, "kube-controller-manager"}, {10259, "kube-scheduler"},
			}...)
		}
		for _, p := range ports {
			add(fmt.Sprintf("port %d free", p.port), portFree(p.port, p.what))
		}
	}
	add("disk", disk(opts.Config.DataDir))
	add("memory", memory())
	return rs
}

func root() error {
	if os.Geteuid() != 0 {
		return errors.New("cameleer must run as root (try sudo)")
	}
	return nil
}

// kernel checks that the kernel has f, loading its module if need be.
func (h host) kernel(f kernelFeature, kcfg map[string]string) error {
	if h.present(f) {
		return nil
	}
	switch kcfg[f.option] {
	case "y":
		return nil
	case "m":
		h.modprobe(f.module)
		if h.present(f) {
			return nil
		}
		return fmt.Errorf("the %s module is not loaded: run `modprobe %s`", f.module, f.module)
	}
	if h.builtin(f.module) {
		return nil
	}
	if kcfg == nil {
		h.modprobe(f.module)
		if h.present(f) {
			return nil
		}
	}
	return fmt.Errorf("the kernel lacks %s (%s): load it with `modprobe %s` or use a kernel built with it", f.name, f.option, f.module)
}

func (h host) present(f kernelFeature) bool {
	paths := append([]string{"/sys/module/" + f.module}, f.paths...)
	for _, p := range paths {
		if _, err := os.Stat(h.file(p)); err == nil {
			return true
		}
	}
	if f.module == "overlay" {
		b, _ := os.ReadFile(h.file("/proc/filesystems"))
		return strings.Contains(string(b), "\toverlay\n")
	}
	return false
}

// kernelConfig reads /proc/config.gz or /boot/config-RELEASE; nil if
// neither is there.
func (h host) kernelConfig() map[string]string {
	var r io.Reader
	if f, err := os.Open(h.file("/proc/config.gz")); err == nil {
		defer f.Close()
		if zr, err := gzip.NewReader(f); err == nil {
			r = zr
		}
	}
	if r == nil {
		if h.release == "" {
			return nil
		}
		f, err := os.Open(h.file("/boot/config-" + h.release))
		if err != nil {
			return nil
		}
		defer f.Close()
		r = f
	}
	cfg := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.HasPrefix(k, "CONFIG_") {
			cfg[k] = v
		}
	}
	return cfg
}

func (h host) builtin(module string) bool {
	if h.release == "" {
		return false
	}
	b, err := os.ReadFile(h.file(filepath.Join("/lib/modules", h.release, "modules.builtin")))
	return err == nil && strings.Contains(string(b), "/"+module+".ko")
}

func (h host) cgroups() error {
	var st unix.Statfs_t
	if err := unix.Statfs(h.file("/sys/fs/cgroup"), &st); err != nil {
		return fmt.Errorf("/sys/fs/cgroup is not mounted: mount the cgroup filesystems")
	}
	return h.cgroupControllers(st.Type == unix.CGROUP2_SUPER_MAGIC)
}

// cgroupControllers checks that the controllers the engine needs are
// there, in the unified hierarchy (v2) or mounted one by one (v1).
func (h host) cgroupControllers(v2 bool) error {
	if v2 {
		b, err := os.ReadFile(h.file("/sys/fs/cgroup/cgroup.controllers"))
		if err != nil {
			return fmt.Errorf("read cgroup v2 controllers: %w", err)
		}
		have := strings.Fields(string(b))
		for _, c := range []string{"cpu", "memory", "pids"} {
			if !slices.Contains(have, c) {
				return fmt.Errorf("the cgroup v2 %s controller is not enabled", c)
			}
		}
		return nil
	}
	for _, c := range []string{"cpu", "cpuacct", "memory", "pids", "devices", "freezer"} {
		if _, err := os.Stat(h.file(filepath.Join("/sys/fs/cgroup", c))); err != nil {
			return fmt.Errorf("the cgroup v1 %s controller is not mounted at /sys/fs/cgroup/%s", c, c)
		}
	}
	return nil
}

func (h host) lookTool(name string) error {
	for _, dir := range h.path {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.Mode()&0o111 != 0 {
			return nil
		}
	}
	pkg := map[string]string{"iptables-save": "iptables", "iptables-restore": "iptables", "ip": "iproute2"}[name]
	if pkg == "" {
		pkg = name
	}
	return fmt.Errorf("%s is not installed: install the %s package", name, pkg)
}

func portFree(port int, what string) error {
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		return fmt.Errorf("port %d (%s) is in use: stop what holds it", port, what)
	}
	return l.Close()
}

func disk(dataDir string) error {
	dir := dataDir
	for {
		if _, err := os.Stat(dir); err == nil || dir == "/" {
			break
		}
		dir = filepath.Dir(dir)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("free space on %s: %w", dir, err)
	}
	free := st.Bavail * uint64(st.Bsize)
	if free < MinDisk {
		return fmt.Errorf("%s has %d MiB free, the node needs %d MiB", dir, free>>20, MinDisk>>20)
	}
	return nil
}

func memory() error {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return err
	}
	total := uint64(si.Totalram) * uint64(si.Unit)
	if total < MinMemory {
		return fmt.Errorf("the host has %d MiB of memory, the node needs %d MiB", total>>20, MinMemory>>20)
	}
	return nil
}
