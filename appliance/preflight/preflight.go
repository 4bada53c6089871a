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

// Run runs every check.
func Run(opts Options) []Result {
	var rs []Result
	add := func(name string, err error) { rs = append(rs, Result{name, err}) }
	add("root", root())
	kcfg := kernelConfig()
	for _, f := range features {
		add("kernel: "+f.name, f.check(kcfg))
	}
	add("cgroups", cgroups())
	for _, tool := range []string{"iptables", "iptables-save", "iptables-restore", "ipset", "ip", "mount"} {
		add("host tool "+tool, lookTool(tool))
	}
	if !opts.SkipPorts {
		c := opts.Config
		ports := []struct {
			port int
			what string
		}{
			{c.HTTPPort, "HTTP ingress (--http-port)"}, {c.HTTPSPort, "HTTPS ingress (--https-port)"},
			{c.APIPort, "kube-apiserver"}, {c.RegistryPort, "registry"}, {10248, "kubelet health"},
			{10250, "kubelet"}, {10256, "kube-proxy health"}, {10257, "kube-controller-manager"}, {10259, "kube-scheduler"},
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

func (f kernelFeature) check(kcfg map[string]string) error {
	if present(f) {
		return nil
	}
	switch kcfg[f.option] {
	case "y":
		return nil
	case "m":
		// Load it; harmless where modprobe or the modules are missing.
		_ = exec.Command("modprobe", f.module).Run()
		if present(f) {
			return nil
		}
		return fmt.Errorf("the %s module is not loaded: run `modprobe %s`", f.module, f.module)
	}
	if builtin(f.module) {
		return nil
	}
	if kcfg == nil {
		_ = exec.Command("modprobe", f.module).Run()
		if present(f) {
			return nil
		}
	}
	return fmt.Errorf("the kernel lacks %s (%s): load it with `modprobe %s` or use a kernel built with it", f.name, f.option, f.module)
}

func present(f kernelFeature) bool {
	paths := append([]string{"/sys/module/" + f.module}, f.paths...)
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	if f.module == "overlay" {
		b, _ := os.ReadFile("/proc/filesystems")
		return strings.Contains(string(b), "\toverlay\n")
	}
	return false
}

// kernelConfig reads /proc/config.gz or /boot/config-RELEASE; nil if
// neither is there.
func kernelConfig() map[string]string {
	var r io.Reader
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if zr, err := gzip.NewReader(f); err == nil {
			r = zr
		}
	}
	if r == nil {
		var u unix.Utsname
		if unix.Uname(&u) != nil {
			return nil
		}
		f, err := os.Open("/boot/config-" + unix.ByteSliceToString(u.Release[:]))
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

func builtin(module string) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:]), "modules.builtin"))
	return err == nil && strings.Contains(string(b), "/"+module+".ko")
}

func cgroups() error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return fmt.Errorf("/sys/fs/cgroup is not mounted: mount the cgroup filesystems")
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
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
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", c)); err != nil {
			return fmt.Errorf("the cgroup v1 %s controller is not mounted at /sys/fs/cgroup/%s", c, c)
		}
	}
	return nil
}

func lookTool(name string) error {
	path := os.Getenv("PATH") + ":/usr/sbin:/sbin"
	for _, dir := range filepath.SplitList(path) {
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
