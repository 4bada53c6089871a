// Package dockertest starts a Docker Engine of a test's own and removes it,
// and everything it made, when the test ends. It is test support: only
// tests import it, and they need root and dockerd (docker.io from
// scripts/deps.sh).
package dockertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Daemon is a running Docker Engine of the test's.
type Daemon struct {
	// Socket is its API socket.
	Socket string
	// Dir holds everything it keeps: its data and exec roots, its
	// config and its log (dockerd.log).
	Dir string

	client *http.Client
}

// Start runs a Docker Engine of the test's own and returns it once it
// answers. Everything it keeps is under a temporary directory, and it
// stays off what another engine on this host uses: it runs in a mount
// namespace of its own with empty /run and /opt (so it neither finds nor
// touches a containerd under /run/containerd or /opt/containerd and starts
// its own, whose state is under the exec root), with no default bridge,
// no iptables rules, no IP forwarding and a cgroup parent of its own.
//
// Cleanup, registered on t (so it runs after the cleanups the test
// registers later), removes its containers and networks through its API
// and checks that none is left, stops it by its PID, and then checks that
// no process, mount, bridge or cgroup of it is left, removing what is.
func Start(t testing.TB) *Daemon {
	t.Helper()
	path := "/usr/sbin:/usr/bin:/sbin:/bin"
	dockerd, err := lookPath("dockerd", path)
	if err != nil {
		t.Fatalf("dockerd: %v (scripts/deps.sh installs docker.io)", err)
	}
	dir := t.TempDir()
	linksBefore := links(t)
	cgroupParent := fmt.Sprintf("cameleer-docker-test-%d", os.Getpid())
	config := fmt.Sprintf(`{"deprecated-key-path": %q}`, filepath.Join(dir, "key.json"))
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{Socket: filepath.Join(dir, "docker.sock"), Dir: dir}
	d.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", d.Socket)
		},
		Proxy: nil,
	}}
	logFile, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	script := `mount -t tmpfs -o mode=0755 cameleer-test /run && mount -t tmpfs -o mode=0755 cameleer-test /opt && exec "$0" "$@"`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, dockerd,
		"--data-root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "exec"),
		"-H", "unix://"+d.Socket, "--pidfile", filepath.Join(dir, "docker.pid"),
		"--config-file", filepath.Join(dir, "daemon.json"),
		"--iptables=false", "--ip6tables=false", "--ip-forward=false", "--bridge=none",
		"--cgroup-parent=/"+cgroupParent)
	cmd.Env = append(os.Environ(), "PATH="+path)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := d.ping(ctx); err == nil {
			d.removeEverything(t, ctx)
		} else {
			t.Errorf("dockerd before stopping: %v", err)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			t.Errorf("dockerd did not stop on SIGTERM in a minute; killing it")
			cmd.Process.Kill()
			<-exited
		}
		// What it started (containerd, shims) names the directory in its
		// command line; nothing else does.
		for _, pid := range processesNaming(dir) {
			t.Errorf("process %d of the test's dockerd outlived it; killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, m := range mountsUnder(t, dir) {
			t.Errorf("%s is still mounted; unmounting it", m)
			syscall.Unmount(m, syscall.MNT_DETACH)
		}
		for _, l := range links(t) {
			// cml-: the bridges cameleer names its environments' after.
			if !slices.Contains(linksBefore, l) && (strings.HasPrefix(l, "br-") || strings.HasPrefix(l, "cml-") || l == "docker0") {
				t.Errorf("bridge %s is left; deleting it", l)
				if out, err := exec.Command("ip", "link", "delete", l).CombinedOutput(); err != nil {
					t.Errorf("ip link delete %s: %v: %s", l, err, out)
				}
			}
		}
		cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupParent)
		cgroups = append(cgroups, "/sys/fs/cgroup/"+cgroupParent)
		for _, cg := range cgroups {
			if err := os.Remove(cg); err != nil && !os.IsNotExist(err) {
				t.Errorf("remove cgroup %s: %v", cg, err)
			}
		}
		if t.Failed() {
			t.Logf("dockerd's log ends:\n%s", d.logTail())
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if d.ping(ctx) == nil {
			return d
		}
		select {
		case <-exited:
			t.Fatalf("dockerd exited:\n%s", d.logTail())
		case <-ctx.Done():
			t.Fatalf("dockerd does not answer on %s after a minute:\n%s", d.Socket, d.logTail())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Container is what Containers tells of one.
type Container struct {
	ID              string `json:"Id"`
	Names           []string
	Image           string
	State           string
	Labels          map[string]string
	NetworkSettings struct {
		Networks map[string]struct{ IPAddress string }
	}
}

// Containers lists the daemon's containers, running or not.
func (d *Daemon) Containers(ctx context.Context) ([]Container, error) {
	var cs []Container
	err := d.do(ctx, http.MethodGet, "/containers/json", url.Values{"all": {"1"}}, &cs)
	return cs, err
}

func (d *Daemon) ping(ctx context.Context) error {
	return d.do(ctx, http.MethodGet, "/_ping", nil, nil)
}

// do sends an API request (at the daemon's own API version) and decodes
// its JSON answer into out unless out is nil.
func (d *Daemon) do(ctx context.Context, method, path string, query url.Values, out any) error {
	u := url.URL{Scheme: "http", Host: "docker", Path: path, RawQuery: query.Encode()}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

func (d *Daemon) logTail() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "dockerd.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// removeEverything removes the daemon's containers, then its networks,
// which takes their bridges off the host, and checks that no container
// is left.
func (d *Daemon) removeEverything(t testing.TB, ctx context.Context) {
	cs, err := d.Containers(ctx)
	if err != nil {
		t.Errorf("list containers: %v", err)
	}
	for _, c := range cs {
		if err := d.do(ctx, http.MethodDelete, "/containers/"+c.ID, url.Values{"force": {"1"}}, nil); err != nil {
			t.Errorf("remove container %v: %v", c.Names, err)
		}
	}
	if cs, err := d.Containers(ctx); err != nil || len(cs) > 0 {
		t.Errorf("containers left after removing them all: %+v %v", cs, err)
	}
	var ns []struct {
		ID   string `json:"Id"`
		Name string
	}
	if err := d.do(ctx, http.MethodGet, "/networks", nil, &ns); err != nil {
		t.Errorf("list networks: %v", err)
	}
	for _, n := range ns {
		if n.Name == "host" || n.Name == "none" || n.Name == "bridge" {
			continue
		}
		if err := d.do(ctx, http.MethodDelete, "/networks/"+n.ID, nil, nil); err != nil {
			t.Errorf("remove network %s: %v", n.Name, err)
		}
	}
}

func lookPath(file, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not in %s", file, path)
}

// links names this host's network interfaces.
func links(t testing.TB) []string {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	return names
}

// processesNaming lists the processes whose command line mentions s.
func processesNaming(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, en := range entries {
		pid, err := strconv.Atoi(en.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountsUnder lists this mount namespace's mount points under dir, deepest
// first.
func mountsUnder(t testing.TB, dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var ms []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			ms = append(ms, f[4])
		}
	}
	slices.SortFunc(ms, func(a, b string) int { return len(b) - len(a) })
	return ms
}

// Fences lists the iptables rules cameleer fences its environments'
// networks with (docs/apps.md, Egress): its chains and the jumps to them.
func Fences(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("iptables", "-w", "-S").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables -S: %v: %s", err, out)
	}
	var rules []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "CAMELEER-") {
			rules = append(rules, l)
		}
	}
	return rules
}

// RemoveFences removes those rules, which stay as long as the networks they
// fence (a test's cleanup removes both), and checks that none is left.
func RemoveFences(t testing.TB) {
	t.Helper()
	var chains []string
	for _, l := range Fences(t) {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "-N":
			chains = append(chains, f[1])
		case len(f) > 2 && f[0] == "-A" && !strings.HasPrefix(f[1], "CAMELEER-"):
			f[0] = "-D"
			if out, err := exec.Command("iptables", append([]string{"-w"}, f...)...).CombinedOutput(); err != nil {
				t.Errorf("iptables %s: %v: %s", strings.Join(f, " "), err, out)
			}
		}
	}
	for _, c := range chains {
		for _, op := range []string{"-F", "-X"} {
			if out, err := exec.Command("iptables", "-w", op, c).CombinedOutput(); err != nil {
				t.Errorf("iptables %s %s: %v: %s", op, c, err, out)
			}
		}
	}
	if left := Fences(t); len(left) > 0 {
		t.Errorf("iptables rules of cameleer's left: %q", left)
	}
}
