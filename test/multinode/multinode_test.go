//go:build multinode

// Package multinode_test runs a cluster of three hosts on this one
// machine, each a container of a Docker Engine the test starts (kind's and
// k0s's way): its own network address, host name, mounts, data dir,
// cgroups and processes, booted from a Debian root file system built from
// Debian's packages (scripts/node-rootfs.sh). c1 is installed as a
// controller and registered with a control plane on the host; w1 joins
// with `cameleer join`, w2 with install.sh, which downloads cameleer from
// c1. An app's replicas go to every node and answer through Traefik on
// each; w2's host is killed and the app goes on answering from the others;
// w2 boots again, comes back, and is reset: gone from the cluster, nothing
// left on it.
//
// It needs root, debootstrap and docker.io (scripts/deps.sh), and
// CAMELEER_BIN (bin/cameleer), CAMELEER_UPGRADE_DIR (the builds of
// scripts/upgrade-binaries.sh) and CAMELEER_NODE_ROOTFS (the tar of
// scripts/node-rootfs.sh): `make test-multinode`.
package multinode_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/apptest"
	"github.com/cameleer/cameleer/internal/testkit/cptest"
	"github.com/cameleer/cameleer/internal/testkit/dockertest"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

const (
	network = "cml-multinode"
	subnet  = "172.31.251.0/24"
	gateway = "172.31.251.1"
	image   = "cameleer-node:test"
	poll    = 500 * time.Millisecond
)

type cluster struct {
	t      *testing.T
	socket string
	bin    string
}

// docker runs the docker CLI against the test's engine.
func (c *cluster) docker(args ...string) (string, error) {
	cmd := exec.Command("docker", append([]string{"-H", "unix://" + c.socket}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (c *cluster) mustDocker(args ...string) string {
	c.t.Helper()
	out, err := c.docker(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// host is one of the cluster's hosts.
type host struct {
	c        *cluster
	name, ip string
}

// boot starts the host's container: not --privileged (see
// testdata/entrypoint.sh), every capability this machine's root has, its
// own cgroup namespace, /var on a volume of its own (containerd's overlay
// snapshots cannot be on the container's overlay), and with cameleer put
// in unless it is to be downloaded.
func (c *cluster) boot(name, ip string, withCameleer bool) host {
	c.t.Helper()
	entry, err := filepath.Abs("testdata/entrypoint.sh")
	if err != nil {
		c.t.Fatal(err)
	}
	args := []string{"run", "-d", "--name", name, "--hostname", name, "--network", network, "--ip", ip,
		"--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
		"--security-opt", "seccomp=unconfined", "--security-opt", "systempaths=unconfined",
		"--device-cgroup-rule", "a *:* rwm", "--device", "/dev/kmsg",
		"--cgroupns", "private", "--init", "--tmpfs", "/run", "--tmpfs", "/tmp",
		"-v", name + "-var:/var", "-v", entry + ":/usr/local/sbin/boot:ro"}
	c.mustDocker(append(args, image, "/usr/local/sbin/boot")...)
	h := host{c, name, ip}
	h.waitBooted()
	if withCameleer {
		// Copied, not mounted: an upgrade replaces it.
		c.mustDocker("cp", c.bin, name+":/usr/local/bin/cameleer")
	}
	return h
}

func (h host) waitBooted() {
	h.c.t.Helper()
	testutil.Eventually(h.c.t, 200*time.Millisecond, time.Minute, h.name+" booted", func() error {
		_, err := h.exec("test", "-f", "/run/booted")
		return err
	})
}

func (h host) exec(args ...string) (string, error) {
	return h.c.docker(append([]string{"exec", h.name}, args...)...)
}

func (h host) must(args ...string) string {
	h.c.t.Helper()
	out, err := h.exec(args...)
	if err != nil {
		h.c.t.Fatalf("on %s: %v", h.name, err)
	}
	return out
}

// kubectl runs kubectl on the controller.
func (h host) kubectl(args ...string) string {
	h.c.t.Helper()
	return h.must(append([]string{"cameleer", "kubectl"}, args...)...)
}

// get asks Traefik on the host for path of the app routed at name.
func (h host) get(name, path string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+h.ip+path, nil)
	if err != nil {
		return "", err
	}
	req.Host = name
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s through %s: %s: %s", name, h.name, resp.Status, b)
	}
	return string(b), err
}

func TestCluster(t *testing.T) {
	bin, rootfs, upgrades := os.Getenv("CAMELEER_BIN"), os.Getenv("CAMELEER_NODE_ROOTFS"), os.Getenv("CAMELEER_UPGRADE_DIR")
	if bin == "" || rootfs == "" || upgrades == "" {
		t.Fatal("CAMELEER_BIN, CAMELEER_NODE_ROOTFS and CAMELEER_UPGRADE_DIR are not set: run `make test-multinode`")
	}
	daemon := dockertest.Start(t)
	c := &cluster{t: t, socket: daemon.Socket, bin: bin}
	f, err := os.Open(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	imp := exec.Command("docker", "-H", "unix://"+c.socket, "import", "-", image)
	imp.Stdin = f
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v: %s", err, out)
	}
	f.Close()
	c.mustDocker("network", "create", "--subnet", subnet, "--gateway", gateway, network)

	c1 := c.boot("c1", "172.31.251.10", true)
	w1 := c.boot("w1", "172.31.251.11", true)
	w2 := c.boot("w2", "172.31.251.12", false)

	start := time.Now()
	out := c1.must("cameleer", "install", "--node-ip", c1.ip)
	t.Logf("c1: the controller installed and Ready in %v", time.Since(start).Round(100*time.Millisecond))
	if !strings.Contains(out, "is Ready") {
		t.Fatalf("install on c1:\n%s", out)
	}
	token := func(args ...string) string {
		out := c1.must(append([]string{"cameleer", "token", "create", "--role", "worker"}, args...)...)
		return strings.Fields(out)[0]
	}

	t.Run("tokens refused", func(t *testing.T) { refusals(t, c1, w1, token) })

	tok1 := token("--description", "w1")
	start = time.Now()
	out = w1.must("cameleer", "join", tok1, "--node-ip", w1.ip)
	t.Logf("w1: `cameleer join` to Ready in %v", time.Since(start).Round(100*time.Millisecond))
	if !strings.Contains(out, "is Ready") {
		t.Fatalf("join on w1:\n%s", out)
	}
	// The same command again changes nothing.
	if out := w1.must("cameleer", "join", tok1, "--node-ip", w1.ip); !strings.Contains(out, "already running") {
		t.Errorf("the same join again:\n%s", out)
	}

	t.Run("install.sh --join", func(t *testing.T) {
		// The script as the control plane serves it; cameleer comes from
		// c1, its CA checked against the token before it is trusted.
		c.mustDocker("cp", "../../installer/install.sh", w2.name+":/root/install.sh")
		tok2 := token("--description", "w2")
		start := time.Now()
		out := w2.must("sh", "/root/install.sh", "--join", tok2, "--node-ip", w2.ip)
		t.Logf("w2: install.sh --join (a 263 MB download included) to Ready in %v", time.Since(start).Round(100*time.Millisecond))
		if !strings.Contains(out, "is Ready") || !strings.Contains(out, "Downloading cameleer") {
			t.Fatalf("install.sh on w2:\n%s", out)
		}
	})

	t.Run("status shows every node", func(t *testing.T) {
		for _, h := range []host{c1, w1, w2} {
			out := h.must("cameleer", "status")
			for _, want := range []string{"c1", "controller", "w1", "w2", "worker"} {
				if !strings.Contains(out, want) {
					t.Errorf("status on %s lacks %q:\n%s", h.name, want, out)
				}
			}
			if strings.Count(out, " True ") < 3 {
				t.Errorf("status on %s: not every node Ready:\n%s", h.name, out)
			}
		}
		list := c1.must("cameleer", "token", "list")
		if strings.Count(list, "used by w") != 2 {
			t.Errorf("token list:\n%s", list)
		}
	})

	app(t, c, c1, w1, w2, filepath.Join(upgrades, "cameleer-next"))

	// w2, reset, has cameleer still: w1's token, used, adds it to nothing,
	// and it keeps nothing of the attempt.
	if out, err := w2.exec("cameleer", "join", tok1); err == nil || !strings.Contains(out, "was used by node w1") {
		t.Errorf("a used token on w2: %v\n%s", err, out)
	}
	if _, err := w2.exec("test", "-e", "/var/lib/cameleer"); err == nil {
		t.Error("a used token left a data dir on w2")
	}
}

// refusals: a token that is not one, another cluster's, a revoked one and
// an expired one are each refused with one line, and the host keeps
// nothing of the attempt.
func refusals(t *testing.T, c1, h host, token func(...string) string) {
	good := token()
	parts := strings.Split(good, ".")
	parts[2] = strings.Repeat("0", 64)
	foreign := strings.Join(parts, ".")
	revoked := token()
	c1.must("cameleer", "token", "revoke", strings.Split(revoked, ".")[3])
	expired := token("--ttl", "1s")
	time.Sleep(1100 * time.Millisecond)
	for name, c := range map[string]struct{ token, says string }{
		"garbage": {"cmlj1.worker.nope", "not a Cameleer join token"},
		"foreign": {foreign, "is not the cluster this token is for"},
		"revoked": {revoked, "is not known to this cluster"},
		"expired": {expired, "expired at"},
	} {
		out, err := h.exec("cameleer", "join", c.token)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if err == nil || !strings.Contains(lines[len(lines)-1], c.says) {
			t.Errorf("%s token: %v\n%s", name, err, out)
		}
		if _, err := h.exec("test", "-e", "/var/lib/cameleer"); err == nil {
			t.Errorf("%s token: the data dir is left", name)
			h.exec("rm", "-rf", "/var/lib/cameleer")
		}
	}
	if out := c1.must("cameleer", "token", "list"); !strings.Contains(out, "expired") || strings.Contains(out, strings.Split(revoked, ".")[3]) {
		t.Errorf("token list:\n%s", out)
	}
}

// app deploys an app with a replica on each node through a control plane
// c1 is the runner of, reaches it through each node's Traefik, upgrades
// c1 then w1 to next, kills w2's host, and resets w2.
func app(t *testing.T, c *cluster, c1, w1, w2 host, next string) {
	cp := cptest.StartOn(t, t, gateway)
	cp.Must(t, http.StatusCreated, "POST", "/api/v1/tenants", map[string]string{"name": apptest.Tenant, "tier": "high"}, nil)
	var ott struct{ Token string }
	cp.Must(t, http.StatusCreated, "POST", apptest.Base+"/runner-tokens", nil, &ott)
	c1.must("cameleer", "token", "redeem", ott.Token, "--name", "cluster")
	// A registered controller's tokens come with the control plane's
	// install.sh command too.
	if out := c1.must("cameleer", "token", "create", "--role", "worker", "--ttl", "1m"); !strings.Contains(out, "curl -sfL https://"+cp.Addr+"/install.sh | sh -s - --join cmlj1.") {
		t.Errorf("token create on a registered controller:\n%s", out)
	}
	apptest.Environments(t, cp)
	sha := cp.Upload(t, apptest.Tenant, apptest.App, testutil.JavaJar(t, "Orders", testutil.OrdersSource))
	var d apptest.Deployment
	cp.Must(t, http.StatusAccepted, "POST", apptest.Base+"/environments/dev/deployments",
		map[string]any{"app": apptest.App, "artifact": sha, "replicas": 3}, &d)
	testutil.Eventually(t, time.Second, 5*time.Minute, "the deployment runs", func() error {
		cp.Must(t, http.StatusOK, "GET", apptest.Base+"/environments/dev/deployments/"+d.ID, nil, &d)
		if d.Phase != "running" {
			return fmt.Errorf("phase %s %s", d.Phase, d.Reason)
		}
		return nil
	})
	// The nodes the app's replicas run on: a pod deleted on a node that
	// is gone stays Running, Terminating, until the node is removed.
	placed := func() []string {
		out := c1.kubectl("get", "pods", "-A", "-l", "app.kubernetes.io/name="+apptest.App, "--field-selector", "status.phase=Running",
			"-o", `jsonpath={range .items[*]}{.spec.nodeName} {.metadata.deletionTimestamp}{"\n"}{end}`)
		var nodes []string
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 1 {
				nodes = append(nodes, f[0])
			}
		}
		slices.Sort(nodes)
		return nodes
	}
	if got := placed(); !slices.Equal(got, []string{"c1", "w1", "w2"}) {
		t.Errorf("the app's replicas run on %v, want one on each node", got)
	}
	name := apptest.Host("dev")
	for _, h := range []host{c1, w1, w2} {
		testutil.Eventually(t, poll, time.Minute, "the app answers through Traefik on "+h.name, apptest.Answers(h.get, name, "orders says hello-dev"))
	}

	// ask asks for the app through the hosts' Traefik every 200 ms until
	// the returned func is called, which says how many requests failed.
	ask := func(hosts ...host) func() (failed, asked int64) {
		var n, failed atomic.Int64
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ctx.Err() == nil {
				for _, h := range hosts {
					n.Add(1)
					if _, err := h.get(name, "/"); err != nil {
						failed.Add(1)
						t.Logf("through %s: %v", h.name, err)
					}
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
		end := func() (int64, int64) {
			stop()
			<-done
			return failed.Load(), n.Load()
		}
		// A test that stops half-way stops the asking too.
		t.Cleanup(func() { end() })
		return end
	}

	t.Run("upgrade: the controller, then a worker", func(t *testing.T) {
		for _, h := range []host{c1, w1} {
			c.mustDocker("cp", next, h.name+":/root/cameleer-next")
		}
		want := strings.Fields(c1.must("/root/cameleer-next", "version"))[1]
		// A worker does not go ahead of its controller.
		if out, err := w1.exec("cameleer", "upgrade", "--binary", "/root/cameleer-next"); err == nil || !strings.Contains(out, "upgrade the controller first") {
			t.Errorf("a worker upgraded before its controller: %v\n%s", err, out)
		}
		done := ask(c1, w1, w2)
		for _, h := range []host{c1, w1} {
			start := time.Now()
			out := h.must("cameleer", "upgrade", "--binary", "/root/cameleer-next", "--timeout", "3m")
			t.Logf("%s upgraded to %s in %v", h.name, want, time.Since(start).Round(100*time.Millisecond))
			if !strings.Contains(out, "Upgraded") && !strings.Contains(out, "upgraded") {
				t.Errorf("upgrade on %s:\n%s", h.name, out)
			}
			if v := strings.Fields(h.must("cameleer", "version"))[1]; v != want {
				t.Errorf("%s runs %s after its upgrade, want %s", h.name, v, want)
			}
		}
		failed, asked := done()
		t.Logf("the controller's and a worker's upgrades: %d of %d requests through c1, w1 and w2 failed meanwhile", failed, asked)
	})

	t.Run("a worker's host dies", func(t *testing.T) {
		done := ask(c1, w1)
		died := time.Now()
		c.mustDocker("kill", w2.name)
		testutil.Eventually(t, time.Second, 3*time.Minute, "w2's replica runs again elsewhere", func() error {
			if got := placed(); len(got) != 3 || slices.Contains(got, "w2") {
				return fmt.Errorf("replicas on %v", got)
			}
			return nil
		})
		moved := time.Since(died)
		for _, h := range []host{c1, w1} {
			testutil.Eventually(t, poll, time.Minute, "the app answers on "+h.name, apptest.Answers(h.get, name, "orders says hello-dev"))
		}
		failed, asked := done()
		t.Logf("w2 killed: its replica ran again on another node after %v; %d of %d requests through c1 and w1 failed meanwhile",
			moved.Round(time.Second), failed, asked)
		if out := c1.must("cameleer", "status"); !strings.Contains(out, "w2") {
			t.Errorf("status on c1 no longer shows w2:\n%s", out)
		}
	})

	t.Run("the worker boots again and is reset", func(t *testing.T) {
		c.mustDocker("start", w2.name)
		w2.waitBooted()
		// No systemd on these hosts: install starts the node again.
		if out := w2.must("cameleer", "install"); !strings.Contains(out, "is Ready") {
			t.Fatalf("w2 after its boot:\n%s", out)
		}
		start := time.Now()
		out := w2.must("cameleer", "reset")
		t.Logf("w2 reset (drained, removed) in %v", time.Since(start).Round(100*time.Millisecond))
		if !strings.Contains(out, "Removed the node") {
			t.Errorf("reset on w2:\n%s", out)
		}
		if nodes := c1.kubectl("get", "nodes", "-o", "name"); strings.Contains(nodes, "w2") {
			t.Errorf("w2 is still in the cluster:\n%s", nodes)
		}
		for what, cmd := range map[string]string{
			"data dir":       "test ! -e /var/lib/cameleer",
			"mounts":         "! grep -E 'cameleer|kubelet|/run/netns|overlay' /proc/mounts | grep -v ' / '",
			"iptables":       "! iptables-save | grep -E '^:(KUBE|CNI|FLANNEL)'",
			"links":          "! ip -o link | grep -E 'flannel|cni0|veth'",
			"kubepods":       "test ! -e /sys/fs/cgroup/cpu/kubepods",
			"cameleer stays": "test -x /usr/local/bin/cameleer",
		} {
			if out, err := w2.exec("sh", "-c", cmd); err != nil {
				t.Errorf("w2 after reset, %s: %v\n%s", what, err, out)
			}
		}
		// What runs on the host: its init, its sleep, and this ps.
		ps := strings.Fields(w2.must("ps", "-e", "-o", "comm="))
		if left := slices.DeleteFunc(ps, func(p string) bool { return p == "docker-init" || p == "sleep" || p == "ps" }); len(left) > 0 {
			t.Errorf("w2 after reset runs %v", left)
		}
		if got := placed(); len(got) != 3 || slices.Contains(got, "w2") {
			t.Errorf("after w2's reset the replicas run on %v", got)
		}
		for _, h := range []host{c1, w1} {
			testutil.Eventually(t, poll, time.Minute, "the app answers on "+h.name, apptest.Answers(h.get, name, "orders says hello-dev"))
		}
	})
}
