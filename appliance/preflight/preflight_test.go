package preflight

import (
	"bytes"
	"compress/gzip"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const release = "6.1.0-test"

// fakeHost is a host rooted in a temporary directory holding files, by
// their absolute paths; a path ending in / or with the content "/" is a
// directory. Its modprobe records the modules asked for and loads those in
// loadable.
func fakeHost(t *testing.T, files map[string]string, loadable ...string) (host, *[]string) {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if strings.HasSuffix(name, "/") || content == "/" {
			mkdir(t, p)
			continue
		}
		mkdir(t, filepath.Dir(p))
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var asked []string
	h := host{root: root, release: release, modprobe: func(m string) {
		asked = append(asked, m)
		for _, l := range loadable {
			if l == m {
				mkdir(t, filepath.Join(root, "sys/module", m))
			}
		}
	}}
	return h, &asked
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func feature(t *testing.T, module string) kernelFeature {
	t.Helper()
	for _, f := range features {
		if f.module == module {
			return f
		}
	}
	t.Fatalf("no feature %s", module)
	return kernelFeature{}
}

// A kernel feature passes when its module is loaded, the kernel config has
// it built in, or loading it works; modprobe is tried only where it can
// help; a failure says which command to run.
func TestKernelFeature(t *testing.T) {
	builtin := "kernel/drivers/net/vxlan.ko\n"
	for _, tc := range []struct {
		name      string
		module    string
		files     map[string]string
		kcfg      map[string]string
		loadable  []string
		wantErr   string // "" passes
		modprobed bool
	}{
		{name: "loaded", module: "vxlan", files: map[string]string{"/sys/module/vxlan": "/"}, kcfg: map[string]string{}},
		{name: "its own path", module: "br_netfilter", files: map[string]string{"/proc/sys/net/bridge/bridge-nf-call-iptables": "1\n"}, kcfg: map[string]string{}},
		{name: "overlay in /proc/filesystems", module: "overlay", files: map[string]string{"/proc/filesystems": "nodev\ttmpfs\nnodev\toverlay\n"}, kcfg: map[string]string{}},
		{name: "overlay not in /proc/filesystems", module: "overlay", files: map[string]string{"/proc/filesystems": "nodev\ttmpfs\n"}, kcfg: map[string]string{},
			wantErr: "the kernel lacks overlay filesystem (CONFIG_OVERLAY_FS): load it with `modprobe overlay`"},
		{name: "built in by config", module: "vxlan", kcfg: map[string]string{"CONFIG_VXLAN": "y"}},
		{name: "a module that loads", module: "vxlan", kcfg: map[string]string{"CONFIG_VXLAN": "m"}, loadable: []string{"vxlan"}, modprobed: true},
		{name: "a module that does not load", module: "vxlan", kcfg: map[string]string{"CONFIG_VXLAN": "m"}, modprobed: true,
			wantErr: "the vxlan module is not loaded: run `modprobe vxlan`"},
		{name: "listed in modules.builtin", module: "vxlan", files: map[string]string{"/lib/modules/" + release + "/modules.builtin": builtin}, kcfg: map[string]string{}},
		// ip_set_hash_ip.ko is not ip_set.ko.
		{name: "a namesake in modules.builtin", module: "ip_set", files: map[string]string{"/lib/modules/" + release + "/modules.builtin": "kernel/net/netfilter/ipset/ip_set_hash_ip.ko\n"}, kcfg: map[string]string{},
			wantErr: "the kernel lacks ip sets (CONFIG_IP_SET)"},
		// The config says it is not there: loading cannot help.
		{name: "not in the config", module: "vxlan", kcfg: map[string]string{"CONFIG_BRIDGE": "y"}, loadable: []string{"vxlan"},
			wantErr: "the kernel lacks vxlan (CONFIG_VXLAN)"},
		{name: "no config, loads", module: "ip_set", loadable: []string{"ip_set"}, modprobed: true},
		{name: "no config, does not load", module: "ip_set", modprobed: true,
			wantErr: "the kernel lacks ip sets (CONFIG_IP_SET): load it with `modprobe ip_set` or use a kernel built with it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, asked := fakeHost(t, tc.files, tc.loadable...)
			err := h.kernel(feature(t, tc.module), tc.kcfg)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("fails: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one with %q", err, tc.wantErr)
			}
			var want []string
			if tc.modprobed {
				want = []string{tc.module}
			}
			if !slices.Equal(*asked, want) {
				t.Errorf("modprobe asked for %v, want %v", *asked, want)
			}
		})
	}
}

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The kernel config comes from /proc/config.gz, else from /boot for the
// running release; without either it is unknown (nil), not empty.
func TestKernelConfig(t *testing.T) {
	proc := "# comment\nCONFIG_VXLAN=m\n# CONFIG_IP_SET is not set\nCONFIG_BRIDGE=y\nCONFIG_LOCALVERSION=\"\"\n"
	boot := "CONFIG_VXLAN=y\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  map[string]string
	}{
		{"proc", map[string]string{"/proc/config.gz": gzipped(t, proc), "/boot/config-" + release: boot},
			map[string]string{"CONFIG_VXLAN": "m", "CONFIG_BRIDGE": "y", "CONFIG_LOCALVERSION": `""`}},
		{"boot", map[string]string{"/boot/config-" + release: boot}, map[string]string{"CONFIG_VXLAN": "y"}},
		{"proc not gzip", map[string]string{"/proc/config.gz": proc, "/boot/config-" + release: boot}, map[string]string{"CONFIG_VXLAN": "y"}},
		{"another release's", map[string]string{"/boot/config-5.10.0-other": boot}, nil},
		{"none", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := fakeHost(t, tc.files)
			if got := h.kernelConfig(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("config %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCgroups(t *testing.T) {
	v1 := map[string]string{}
	for _, c := range []string{"cpu", "cpuacct", "memory", "pids", "devices", "freezer"} {
		v1["/sys/fs/cgroup/"+c] = "/"
	}
	h, _ := fakeHost(t, v1)
	// A directory, not a cgroup2 mount: the v1 hierarchies are looked for.
	if err := h.cgroups(); err != nil {
		t.Errorf("v1 with every controller: %v", err)
	}
	delete(v1, "/sys/fs/cgroup/freezer")
	h, _ = fakeHost(t, v1)
	if err := h.cgroups(); err == nil || err.Error() != "the cgroup v1 freezer controller is not mounted at /sys/fs/cgroup/freezer" {
		t.Errorf("v1 without freezer: %v", err)
	}
	h, _ = fakeHost(t, nil)
	if err := h.cgroups(); err == nil || !strings.Contains(err.Error(), "/sys/fs/cgroup is not mounted") {
		t.Errorf("no /sys/fs/cgroup: %v", err)
	}

	for _, tc := range []struct {
		controllers string
		wantErr     string
	}{
		{"cpuset cpu io memory hugetlb pids rdma misc\n", ""},
		{"cpuset cpu io hugetlb pids\n", "the cgroup v2 memory controller is not enabled"},
		{"cpuset cpu io memory\n", "the cgroup v2 pids controller is not enabled"},
		// A controller is a word of the file, not a part of one.
		{"cpuset cpu memory pids_x\n", "the cgroup v2 pids controller is not enabled"},
	} {
		h, _ := fakeHost(t, map[string]string{"/sys/fs/cgroup/cgroup.controllers": tc.controllers})
		err := h.cgroupControllers(true)
		if got := errString(err); got != tc.wantErr {
			t.Errorf("v2 controllers %q: %q, want %q", tc.controllers, got, tc.wantErr)
		}
	}
	h, _ = fakeHost(t, map[string]string{"/sys/fs/cgroup/": "/"})
	if err := h.cgroupControllers(true); err == nil || !strings.HasPrefix(err.Error(), "read cgroup v2 controllers: ") {
		t.Errorf("v2 without cgroup.controllers: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// A tool is an executable file in one of the path's directories; a missing
// one names the Debian package that has it.
func TestLookTool(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(second, "iptables"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(first, "ipset"), []byte("not executable"), 0o644)
	h := host{path: []string{first, filepath.Join(first, "missing"), second}}
	for tool, want := range map[string]string{
		"iptables":         "",
		"ipset":            "ipset is not installed: install the ipset package",
		"ip":               "ip is not installed: install the iproute2 package",
		"iptables-restore": "iptables-restore is not installed: install the iptables package",
		"mount":            "mount is not installed: install the mount package",
	} {
		if got := errString(h.lookTool(tool)); got != want {
			t.Errorf("%s: %q, want %q", tool, got, want)
		}
	}
}

func TestPortFree(t *testing.T) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	err = portFree(port, "registry")
	if want := "port " + strconv.Itoa(port) + " (registry) is in use: stop what holds it"; errString(err) != want {
		t.Errorf("a port held: %v, want %q", err, want)
	}
	l.Close()
	if err := portFree(port, "registry"); err != nil {
		t.Errorf("the port let go: %v", err)
	}
}
