//go:build docker

// Package docker_test runs `cameleer run --orchestrator docker` the way a
// user does: a runner registered with a real control plane, its apps on a
// Docker Engine (one the test starts and removes), deployed, used, operated
// and promoted through the control plane's API and the tunnel.
package docker_test

import (
	"bufio"
	"context"
	"errors"
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
	"syscall"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/cptest"
	"github.com/cameleer/cameleer/internal/dockertest"
	"github.com/cameleer/cameleer/internal/testutil"
)

const poll = 500 * time.Millisecond

type deployment struct {
	ID, Phase, Reason, Image, URL, Environment, PromotedFrom string
}

type appStatus struct {
	Name, Phase, Image, URL, Running string
	Connected                        bool
	Live                             *struct {
		Image           string
		Replicas, Ready int
		// JVM is what the agent in the app says of its JVM.
		JVM struct {
			AgentVersion  string
			HeapUsedBytes int64
			MainCommand   string
		}
	}
}

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
	if l, err := net.Listen("tcp", "127.0.0.1:5000"); err != nil {
		t.Fatalf("the runner's registry needs 127.0.0.1:5000, which is taken (a node running?): %v", err)
	} else {
		l.Close()
	}

	daemon := dockertest.Start(t)
	cp := cptest.Start(t, t)
	const tenant, app = "acme", "invoices"
	base := "/api/v1/tenants/" + tenant
	const secret = "prod-s3cr3t-token"
	cp.Must(t, http.StatusCreated, "POST", "/api/v1/tenants", map[string]string{"name": tenant, "tier": "high"}, nil)
	for env, cfg := range map[string]any{
		"dev":  map[string]any{"env": map[string]string{"GREETING": "hello-dev"}},
		"prod": map[string]any{"env": map[string]string{"GREETING": "hello-prod"}, "secrets": map[string]string{"API_TOKEN": secret}},
	} {
		cp.Must(t, http.StatusCreated, "POST", base+"/environments", map[string]string{"name": env}, nil)
		cp.Must(t, http.StatusOK, "PUT", base+"/environments/"+env+"/config", cfg, nil)
	}

	// Register, then run on the test's Docker Engine.
	dataDir := t.TempDir()
	var ott struct{ Token string }
	cp.Must(t, http.StatusCreated, "POST", base+"/runner-tokens", nil, &ott)
	if out, err := exec.Command(bin, "token", "redeem", ott.Token, "--data-dir", dataDir, "--name", "docker-runner").CombinedOutput(); err != nil {
		t.Fatalf("token redeem: %v\n%s", err, out)
	}
	port := dockertest.FreePort(t)
	r := startRunner(t, daemon, bin, "run", "--orchestrator", "docker", "--docker-socket", daemon.Socket,
		"--http-port", strconv.Itoa(port), "--data-dir", dataDir)

	var runners []struct {
		ID, Name  string
		Connected bool
	}
	testutil.Eventually(t, poll, 3*time.Minute, "the runner connected", func() error {
		if err := r.alive(); err != nil {
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

	// Upload and deploy to dev: the app answers through Traefik.
	uploaded := time.Now()
	sha := cp.Upload(t, tenant, app, javaApp(t))
	var d deployment
	cp.Must(t, http.StatusAccepted, "POST", base+"/environments/dev/deployments", map[string]any{"app": app, "artifact": sha}, &d)
	dev := waitRunning(t, cp, r, base+"/environments/dev/deployments/"+d.ID)
	devHost := app + ".dev." + tenant + ".localhost"
	if dev.URL != fmt.Sprintf("http://%s:%d/", devHost, port) || !strings.HasPrefix(dev.Image, "127.0.0.1:5000/acme/invoices@sha256:") {
		t.Errorf("running deployment %+v", dev)
	}
	get := getter(port)
	testutil.Eventually(t, 100*time.Millisecond, 2*time.Minute, "dev answers through Traefik", answers(get, devHost, "orders says hello-dev, token-length=0"))
	t.Logf("upload to first answer through Traefik: %v", time.Since(uploaded).Round(10*time.Millisecond))

	// Logs: the agent's line and the overlay's value; followed, what
	// comes.
	logs := appLogs(t, cp, base+"/environments/dev/apps/"+app+"/logs?tail=50")
	if !strings.Contains(logs, "cameleer-agent ") || !strings.Contains(logs, "GREETING=hello-dev") {
		t.Errorf("logs lack the agent's line or the overlay's value:\n%s", logs)
	}
	// tail=1: the control plane sends the answer's header on with the
	// first line it relays, not before.
	followLogs(t, cp, base+"/environments/dev/apps/"+app+"/logs?follow=true&tail=1", func() { get(devHost, "/followed") }, "orders served /followed")

	var as appStatus
	cp.Must(t, http.StatusOK, "GET", base+"/environments/dev/apps/"+app+"/status", nil, &as)
	if as.Phase != "running" || !as.Connected || as.Live == nil || as.Live.Ready != 1 || as.Live.Image != dev.Image {
		t.Fatalf("status %+v live %+v", as, as.Live)
	}
	// The runner reads the JVM's facts from the agent in the app.
	if j := as.Live.JVM; j.AgentVersion == "" || j.HeapUsedBytes <= 0 || !strings.Contains(j.MainCommand, "app.jar") {
		t.Errorf("the agent's JVM facts in the status: %+v", j)
	}
	var list []appStatus
	cp.Must(t, http.StatusOK, "GET", base+"/environments/dev/apps", nil, &list)
	if len(list) != 1 || list[0].Name != app || list[0].Running != dev.Image {
		t.Errorf("list %+v", list)
	}

	// Stop, start, restart.
	cp.Must(t, http.StatusOK, "POST", base+"/environments/dev/apps/"+app+"/stop", nil, nil)
	cp.Must(t, http.StatusOK, "GET", base+"/environments/dev/apps/"+app+"/status", nil, &as)
	if as.Live == nil || as.Live.Replicas != 0 {
		t.Errorf("stopped: %+v", as.Live)
	}
	testutil.Eventually(t, poll, time.Minute, "stopped app does not answer", func() error {
		if answers(get, devHost, "orders says")() == nil {
			return fmt.Errorf("still answering")
		}
		return nil
	})
	cp.Must(t, http.StatusOK, "POST", base+"/environments/dev/apps/"+app+"/start", nil, nil)
	testutil.Eventually(t, poll, 2*time.Minute, "started app answers", answers(get, devHost, "hello-dev"))
	before := containers(t, daemon, "dev", app)
	cp.Must(t, http.StatusOK, "POST", base+"/environments/dev/apps/"+app+"/restart", nil, nil)
	if after := containers(t, daemon, "dev", app); len(after) != 1 || slices.Equal(before, after) {
		t.Errorf("restart: containers %v, then %v, want a new one", before, after)
	}
	testutil.Eventually(t, poll, 2*time.Minute, "restarted app answers", answers(get, devHost, "hello-dev"))
	cp.Must(t, http.StatusNotFound, "POST", base+"/environments/dev/apps/"+app+"/explode", nil, nil)
	cp.Must(t, http.StatusNotFound, "GET", base+"/environments/dev/apps/nosuchapp/status", nil, nil)

	// Promotion: the image running in dev, with prod's config, no build.
	var p deployment
	cp.Must(t, http.StatusAccepted, "POST", base+"/environments/prod/promotions", map[string]string{"app": app, "from": "dev"}, &p)
	prod := waitRunning(t, cp, r, base+"/environments/prod/deployments/"+p.ID)
	if prod.Image != dev.Image || prod.PromotedFrom != "dev" {
		t.Errorf("promoted %+v, want image %s", prod, dev.Image)
	}
	testutil.Eventually(t, poll, 2*time.Minute, "prod answers", answers(get, app+".prod."+tenant+".localhost",
		fmt.Sprintf("orders says hello-prod, token-length=%d", len(secret))))
	testutil.Eventually(t, poll, time.Minute, "dev still answers", answers(get, devHost, "orders says hello-dev, token-length=0"))

	// The secret reaches the app as an environment variable, which Docker
	// shows to whoever may inspect the container (docs/apps.md says so);
	// neither the runner nor the control plane writes it in its log, and
	// no container's labels (which `docker ps` lists) have it.
	for _, f := range []string{r.logFile, cp.LogFile} {
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

	// What cannot be deployed is refused up front.
	cp.Must(t, http.StatusNotFound, "POST", base+"/environments/dev/deployments", map[string]any{"app": app, "artifact": strings.Repeat("0", 64)}, nil)
	cp.Must(t, http.StatusNotFound, "POST", base+"/environments/staging/deployments", map[string]any{"app": app, "artifact": sha}, nil)
	cp.Must(t, http.StatusNotFound, "POST", base+"/environments/prod/promotions", map[string]string{"app": "nosuchapp", "from": "dev"}, nil)
}

// runner is a `cameleer run` child process.
type runner struct {
	cmd     *exec.Cmd
	logFile string
	exited  chan struct{}
}

// startRunner starts the runner with its output in a file. Cleanup stops
// it by its PID (SIGTERM, then SIGKILL after 30 s), shows its log if the
// test failed, and leaves its containers to the daemon's cleanup, which
// removes every container before the daemon stops.
func startRunner(t *testing.T, daemon *dockertest.Daemon, bin string, args ...string) *runner {
	t.Helper()
	r := &runner{logFile: filepath.Join(t.TempDir(), "runner.log"), exited: make(chan struct{})}
	logf, err := os.Create(r.logFile)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(bin, args...)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); logf.Close(); close(r.exited) }()
	t.Cleanup(func() {
		syscall.Kill(r.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(30 * time.Second):
			t.Errorf("the runner did not stop on SIGTERM in 30 s; killing it")
			syscall.Kill(r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(r.logFile)
			t.Logf("runner log:\n%s", b)
			if cs, err := daemon.Containers(context.Background()); err == nil {
				for _, c := range cs {
					t.Logf("container %v: %s %s", c.Names, c.Image, c.State)
				}
			}
		}
	})
	return r
}

// alive says why the runner is no more, if it is not.
func (r *runner) alive() error {
	select {
	case <-r.exited:
		b, _ := os.ReadFile(r.logFile)
		return fmt.Errorf("the runner exited (%v):\n%s", r.cmd.ProcessState, b)
	default:
		return nil
	}
}

// waitRunning polls a deployment until it runs; a failed one fails the
// test with its reason.
func waitRunning(t *testing.T, cp *cptest.ControlPlane, r *runner, path string) deployment {
	t.Helper()
	var d deployment
	seen := map[string]bool{}
	testutil.Eventually(t, 100*time.Millisecond, 5*time.Minute, "deployment running", func() error {
		if err := r.alive(); err != nil {
			t.Fatal(err)
		}
		if _, err := cp.Call("GET", path, nil, &d); err != nil {
			return err
		}
		seen[d.Phase] = true
		if d.Phase == "failed" {
			t.Fatalf("deployment failed: %s", d.Reason)
		}
		if d.Phase != "running" {
			return fmt.Errorf("phase %s %s", d.Phase, d.Reason)
		}
		return nil
	})
	t.Logf("deployment %s: phases seen %v", d.ID, seen)
	return d
}

// getter asks Traefik on the runner's HTTP port for a path of a host; an
// answer other than 200 is an error.
func getter(port int) func(host, path string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	return func(host, path string) (string, error) {
		req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+path, nil)
		if err != nil {
			return "", err
		}
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return string(b), fmt.Errorf("%s: %s", resp.Status, b)
		}
		return string(b), err
	}
}

// answers checks that Traefik routes host to an app whose answer contains
// want.
func answers(get func(host, path string) (string, error), host, want string) func() error {
	return func() error {
		body, err := get(host, "/")
		if err == nil && !strings.Contains(body, want) {
			err = fmt.Errorf("body %q", body)
		}
		return err
	}
}

func appLogs(t *testing.T, cp *cptest.ControlPlane, path string) string {
	t.Helper()
	resp, err := cp.Request(context.Background(), "GET", path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("logs: %s %s", resp.Status, b)
	}
	return string(b)
}

// followLogs shows that followed logs stream: what the app prints after
// the answer began (poke makes it print) comes through while the answer
// stays open.
func followLogs(t *testing.T, cp *cptest.ControlPlane, path string, poke func(), want string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := cp.Request(ctx, "GET", path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("followed logs: %s %s", resp.Status, b)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	var got []string
	testutil.Eventually(t, poll, time.Minute, "a line the app printed comes through the followed logs", func() error {
		poke()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					return errors.New("the followed logs ended")
				}
				got = append(got, l)
				if strings.Contains(l, want) {
					return nil
				}
				continue
			case <-time.After(poll):
			}
			return fmt.Errorf("followed so far: %q", got)
		}
	})
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

// javaApp compiles a small HTTP server that answers with the GREETING
// from its environment and the length of its API_TOKEN, and prints each
// path it serves, and packs it as a JAR.
func javaApp(t *testing.T) []byte { return testutil.JavaJar(t, "Orders", testutil.OrdersSource) }
