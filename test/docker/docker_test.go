//go:build docker

// Package docker_test runs `cameleer run --orchestrator docker` the way a
// user does: a runner registered with a real control plane, its apps on a
// Docker Engine (one the test starts and removes), deployed, used, operated
// and promoted through the control plane's API and the tunnel.
package docker_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/apptest"
	"github.com/cameleer/cameleer/internal/testkit/camelapps"
	"github.com/cameleer/cameleer/internal/testkit/cptest"
	"github.com/cameleer/cameleer/internal/testkit/dockertest"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

const poll = 500 * time.Millisecond

// TestRunnerOnDocker: register a runner, run it on Docker, upload a JAR,
// deploy it to dev, use it through Traefik, read and follow its logs,
// stop, start and restart it, promote it to prod with prod's secret.
func TestRunnerOnDocker(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a Docker Engine")
	}
	bin := os.Getenv("CAMELEER_BIN")
	if bin == "" {
		t.Skip("CAMELEER_BIN is unset: run `make test-docker`, which builds bin/cameleer and points here")
	}
	// The runner's registry has a fixed port.
	dockertest.RegistryFree(t)

	daemon := dockertest.Start(t)
	cp := cptest.Start(t, t)
	const tenant, app, secret, base = apptest.Tenant, apptest.App, apptest.Secret, apptest.Base
	cp.Must(t, http.StatusCreated, "POST", "/api/v1/tenants", map[string]string{"name": tenant, "tier": "high"}, nil)
	apptest.Environments(t, cp)

	// Register, then run on the test's Docker Engine.
	dataDir := t.TempDir()
	var ott struct{ Token string }
	cp.Must(t, http.StatusCreated, "POST", base+"/runner-tokens", nil, &ott)
	if out, err := exec.Command(bin, "token", "redeem", ott.Token, "--data-dir", dataDir, "--name", "docker-runner").CombinedOutput(); err != nil {
		t.Fatalf("token redeem: %v\n%s", err, out)
	}
	port := testutil.FreePort(t)
	// The fences stay with the environments' networks, which the runner
	// never removes; the test removes them once the runner is gone
	// (registered before it).
	t.Cleanup(func() { dockertest.RemoveFences(t) })
	hosts := filepath.Join(t.TempDir(), "hosts")
	r := startRunner(t, daemon, hosts, bin, "run", "--orchestrator", "docker", "--docker-socket", daemon.Socket,
		"--http-port", strconv.Itoa(port), "--data-dir", dataDir)

	var runners []struct {
		ID, Name  string
		Connected bool
	}
	testutil.Eventually(t, poll, 3*time.Minute, "the runner connected", func() error {
		if err := r.Alive(); err != nil {
			t.Fatal(err)
		}
		cp.Call("GET", base+"/runners", nil, &runners)
		if len(runners) != 1 || !runners[0].Connected {
			return fmt.Errorf("runners %+v", runners)
		}
		return nil
	})
	var st struct {
		Name, Orchestrator string
		Engine             bool
	}
	cp.Must(t, http.StatusOK, "GET", base+"/runners/"+runners[0].ID+"/proxy/status", nil, &st)
	if st.Orchestrator != "docker" || st.Engine || st.Name != "docker-runner" {
		t.Errorf("the runner's status through the tunnel: %+v, want orchestrator docker, no engine", st)
	}

	ar := apptest.Runner{
		CP:          cp,
		Get:         testutil.HostGetter("127.0.0.1:" + strconv.Itoa(port)),
		URL:         func(host string) string { return fmt.Sprintf("http://%s:%d/", host, port) },
		ImagePrefix: "127.0.0.1:5000/acme/invoices@sha256:",
		Instances:   func(t *testing.T, env, app string) []string { return containers(t, daemon, env, app) },
		Alive:       func() error { return r.Alive() }, // r is replaced when the runner restarts
		SetHost: func(t *testing.T, name, addr string) {
			writeHosts(t, hosts, addr+" "+name)
		},
	}
	apptest.Refusals(t, cp, apptest.Flow(t, ar).Artifact)

	// Egress: every environment's network is fenced; emptied, dev's fence
	// opens nothing any more.
	apptest.Egress(t, ar)
	apptest.Observe(t, ar, []string{filepath.Join(dataDir, "telemetry"), cp.DataDir()}, camelapps.MainNewest, camelapps.Boot4)
	runnerAway := func(d time.Duration) {
		r.Kill()
		time.Sleep(d)
		r = startRunner(t, daemon, hosts, bin, "run", "--orchestrator", "docker", "--docker-socket", daemon.Socket,
			"--http-port", strconv.Itoa(port), "--data-dir", dataDir)
	}
	restartRunner := func() { runnerAway(5 * time.Second) }
	apptest.Replay(t, ar, apptest.ReplayDirs{Originals: filepath.Join(dataDir, "originals"),
		Elsewhere: []string{filepath.Join(dataDir, "telemetry"), cp.DataDir(), cp.LogFile, r.LogFile}}, camelapps.MainNewest, restartRunner)
	agentsRefuseStrangers(t, daemon, apptest.CamelApp(camelapps.MainNewest))
	survivesOutages(t, cp, ar, restartRunner)
	dropsAreCounted(t, cp, ar, runnerAway)
	if rules := dockertest.Fences(t); !slices.ContainsFunc(rules, func(r string) bool { return strings.HasPrefix(r, "-N CAMELEER-F-") }) ||
		slices.ContainsFunc(rules, func(r string) bool { return strings.Contains(r, apptest.TargetAddr) }) {
		t.Errorf("the fences after egress was emptied: %q", rules)
	}

	// The secret reaches the app as an environment variable, which Docker
	// shows to whoever may inspect the container (docs/apps.md says so);
	// neither the runner nor the control plane writes it in its log, and
	// no container's labels (which `docker ps` lists) have it.
	for _, f := range []string{r.LogFile, cp.LogFile} {
		if b, err := os.ReadFile(f); err != nil || strings.Contains(string(b), secret) {
			t.Errorf("%s: has the secret's value, or cannot be read (%v)", f, err)
		}
	}
	cs, err := daemon.Containers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		for k, v := range c.Labels {
			if strings.Contains(k+"="+v, secret) {
				t.Errorf("container %v has the secret's value in its label %s", c.Names, k)
			}
		}
	}
}

// agentsRefuseStrangers: an app's agent hands its telemetry only to the
// runner, which shows the app's token; what the test (like another app of
// the environment) asks without it is refused.
func agentsRefuseStrangers(t *testing.T, daemon *dockertest.Daemon, app string) {
	cs, err := daemon.Containers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	asked := 0
	for _, c := range cs {
		if c.Labels["cameleer.io/app"] != app || c.State != "running" {
			continue
		}
		for _, n := range c.NetworkSettings.Networks {
			resp, err := http.Get("http://" + net.JoinHostPort(n.IPAddress, "9464") + "/cameleer/telemetry")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			asked++
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("the agent of %s answered a request without its token: %s", app, resp.Status)
			}
		}
	}
	if asked == 0 {
		t.Errorf("no running container of %s to ask", app)
	}
}

// survivesOutages runs a load of exchanges, every one traced, through a
// runner that is killed and started again (restartRunner) and a control
// plane stopped for two minutes: each exchange arrives once, the traces
// and the route's figures alike.
func survivesOutages(t *testing.T, cp *cptest.ControlPlane, ar apptest.Runner, restartRunner func()) {
	const count, period = 4000, 50 // 200 s of load
	cp.Must(t, http.StatusOK, "PUT", apptest.Base+"/environments/dev/config", map[string]any{"env": map[string]string{
		"GREETING": "hello-dev", "CAMELEER_SAMPLE": "1", "LOAD_COUNT": strconv.Itoa(count), "LOAD_PERIOD": strconv.Itoa(period)}}, nil)
	apptest.DeployCamel(t, ar, camelapps.MainNewest, "dev", "load")
	started := time.Now()
	time.Sleep(10 * time.Second)
	restartRunner()
	t.Logf("runner killed and started again %v into the load", time.Since(started).Round(time.Second))
	time.Sleep(10 * time.Second)
	cp.Stop()
	t.Logf("control plane stopped %v into the load", time.Since(started).Round(time.Second))
	time.Sleep(2 * time.Minute)
	cp.Restart(t)
	app := apptest.Base + "/environments/dev/apps/load"
	testutil.Eventually(t, poll, 5*time.Minute, "the whole load's figures at the control plane", func() error {
		if n := loadCount(cp, app); n < count {
			return fmt.Errorf("%d of %d exchanges counted", n, count)
		}
		return nil
	})
	t.Logf("the load arrived whole %v after it started", time.Since(started).Round(time.Second))
	if ids, n := loadTraced(t, cp, app), loadCount(cp, app); ids != count || n != count {
		t.Errorf("%d exchanges of the load traced and %d counted, want %d each: lost or taken twice", ids, n, count)
	}
}

// dropsAreCounted runs a load through an app whose agent holds little
// (CAMELEER_BUFFER_BYTES) while the runner is away for longer than that
// lasts: the agent drops the oldest traces, and the control plane's
// counter of the runner's agents' drops says how many, to the exchange.
// The route's figures count every exchange: the agent holds them apart
// from the traces, which cannot push them out.
func dropsAreCounted(t *testing.T, cp *cptest.ControlPlane, ar apptest.Runner, runnerAway func(time.Duration)) {
	const count, period = 1000, 50 // 50 s of load
	cp.Must(t, http.StatusOK, "PUT", apptest.Base+"/environments/dev/config", map[string]any{"env": map[string]string{
		"GREETING": "hello-dev", "CAMELEER_SAMPLE": "1", "LOAD_COUNT": strconv.Itoa(count), "LOAD_PERIOD": strconv.Itoa(period),
		"CAMELEER_BUFFER_BYTES": "131072", "LOAD_ONLY": "1"}}, nil)
	before := agentDrops(t, cp)
	apptest.DeployCamel(t, ar, camelapps.MainNewest, "dev", "overflow")
	time.Sleep(5 * time.Second)
	runnerAway(25 * time.Second) // 500 exchanges, some 100 traces held
	app := apptest.Base + "/environments/dev/apps/overflow"
	var traced int
	var dropped float64
	testutil.Eventually(t, poll, 5*time.Minute, "every exchange of the load traced or counted as dropped", func() error {
		traced, dropped = loadTraced(t, cp, app), agentDrops(t, cp)-before
		if n := loadCount(cp, app); n < count || traced+int(dropped) < count {
			return fmt.Errorf("%d of %d exchanges counted, %d traced, %v dropped", n, count, traced, dropped)
		}
		return nil
	})
	if n := loadCount(cp, app); traced+int(dropped) != count || dropped == 0 || n != count {
		t.Errorf("%d exchanges traced and %v counted as dropped (want %d together, some dropped); %d in the route's figures, want %d",
			traced, dropped, count, n, count)
	}
	t.Logf("runner away for 25 s, agent buffer 128 KiB: %d traced, %v dropped and counted", traced, dropped)
}

// loadCount is the load route's count of exchanges in the last hour's figures.
func loadCount(cp *cptest.ControlPlane, app string) int {
	var routes []apptest.RouteView
	cp.Call("GET", app+"/routes?window=1h", nil, &routes)
	for _, r := range routes {
		if r.ID == "load" {
			return r.Stats.Count
		}
	}
	return 0
}

// loadTraced is how many of the load route's exchanges are traced, each once.
func loadTraced(t *testing.T, cp *cptest.ControlPlane, app string) int {
	ids := map[string]bool{}
	for cursor, pages := "", 0; pages == 0 || cursor != ""; pages++ {
		var page struct {
			Exchanges []apptest.Summary
			Next      string
		}
		cp.Must(t, http.StatusOK, "GET", app+"/exchanges?route=load&limit=500&cursor="+cursor, nil, &page)
		for _, x := range page.Exchanges {
			ids[x.ID] = true
		}
		cursor = page.Next
	}
	return len(ids)
}

// agentDrops sums the control plane's counters of what the runners'
// agents dropped.
func agentDrops(t *testing.T, cp *cptest.ControlPlane) float64 {
	resp, err := cp.Request(context.Background(), "GET", "/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "cameleer_telemetry_agent_dropped_total{") {
			_, v, _ := strings.Cut(line, "} ")
			n, _ := strconv.ParseFloat(v, 64)
			sum += n
		}
	}
	return sum
}

// startRunner starts the runner in a mount namespace of its own where the
// file hosts is its /etc/hosts (written with writeHosts: the names the
// test gives it).
func startRunner(t *testing.T, daemon *dockertest.Daemon, hosts, bin string, args ...string) *dockertest.Runner {
	t.Helper()
	writeHosts(t, hosts)
	// unshare and sh exec what follows: the PID is the runner's.
	script := `mount --bind "$CAMELEER_TEST_HOSTS" /etc/hosts && exec "$0" "$@"`
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, bin}, args...)...)
	cmd.Env = append(os.Environ(), "CAMELEER_TEST_HOSTS="+hosts)
	return daemon.StartRunner(t, filepath.Join(t.TempDir(), "runner.log"), cmd)
}

// containers lists the IDs of an app's containers in an environment.
func containers(t *testing.T, daemon *dockertest.Daemon, env, app string) []string {
	t.Helper()
	cs, err := daemon.Containers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range cs {
		if c.Labels["cameleer.io/environment"] == env && c.Labels["cameleer.io/app"] == app {
			ids = append(ids, c.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// writeHosts writes the runner's /etc/hosts: localhost and lines. In
// place, so the runner's bind mount of it sees the change.
func writeHosts(t *testing.T, path string, lines ...string) {
	t.Helper()
	b := "127.0.0.1 localhost\n::1 localhost\n" + strings.Join(append(lines, ""), "\n")
	if err := os.WriteFile(path, []byte(b), 0o644); err != nil {
		t.Fatal(err)
	}
}
