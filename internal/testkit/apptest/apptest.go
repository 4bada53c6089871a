// Package apptest is a user's way through the app runtime, shared by the
// end-to-end tests of both orchestrators (test/node on Kubernetes,
// test/docker on Docker): upload a JAR, deploy it to dev, use it through
// Traefik, read and follow its logs, stop, start and restart it, promote
// it to prod, and open its environment's egress, all through the control
// plane's API and the tunnel.
// Only tests import it.
package apptest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/cptest"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// What the flow deploys, and where.
const (
	Tenant = "acme"
	App    = "invoices"
	// Secret is prod's API_TOKEN; the app answers with its length.
	Secret = "prod-s3cr3t-token"
	Base   = "/api/v1/tenants/" + Tenant
	poll   = 500 * time.Millisecond
)

// Deployment is what the API says of a deployment.
type Deployment struct {
	ID, Phase, Reason, Image, URL, Environment, PromotedFrom string
}

// AppStatus is what the API says of an app.
type AppStatus struct {
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

// Runner is the runner under test, as the flow sees it.
type Runner struct {
	CP *cptest.ControlPlane
	// Get asks the runner's Traefik for path on host; an answer other
	// than 200 is an error.
	Get func(host, path string) (string, error)
	// URL is the address a running deployment reports for host.
	URL func(host string) string
	// ImagePrefix starts the image reference of every built app.
	ImagePrefix string
	// Instances lists the instances of app in env (pods, containers,
	// stopped ones too): a restart must replace them all, a delete
	// remove them.
	Instances func(t *testing.T, env, app string) []string
	// Alive says why the runner is gone, if it is; nil if not checked.
	Alive func() error
	// SetHost points a host name at an address for the runner's resolver;
	// nil where the test cannot, which leaves rules by host name out of
	// Egress.
	SetHost func(t *testing.T, name, addr string)
}

// Host is where Traefik routes the app in env.
func Host(env string) string { return App + "." + env + "." + Tenant + ".localhost" }

// Environments makes dev (a GREETING) and prod (another GREETING and the
// API_TOKEN secret) in a tenant that exists.
func Environments(t *testing.T, cp *cptest.ControlPlane) {
	t.Helper()
	for env, cfg := range map[string]any{
		"dev":  map[string]any{"env": map[string]string{"GREETING": "hello-dev"}},
		"prod": map[string]any{"env": map[string]string{"GREETING": "hello-prod"}, "secrets": map[string]string{"API_TOKEN": Secret}},
	} {
		cp.Must(t, http.StatusCreated, "POST", Base+"/environments", map[string]string{"name": env}, nil)
		cp.Must(t, http.StatusOK, "PUT", Base+"/environments/"+env+"/config", cfg, nil)
	}
}

// Result is what the flow leaves running, for the checks that only one
// orchestrator has.
type Result struct {
	Artifact  string // the uploaded JAR's SHA-256
	Dev, Prod Deployment
}

// Flow runs the user's way through the app runtime against r.
func Flow(t *testing.T, r Runner) Result {
	cp := r.CP
	uploaded := time.Now()
	sha := cp.Upload(t, Tenant, App, testutil.JavaJar(t, "Orders", testutil.OrdersSource))
	// The tenant has one runner: the deployment need not name it.
	var d Deployment
	cp.Must(t, http.StatusAccepted, "POST", Base+"/environments/dev/deployments", map[string]any{"app": App, "artifact": sha}, &d)
	if d.Phase != "validating" {
		t.Errorf("a new deployment is %q", d.Phase)
	}
	dev := WaitRunning(t, r, Base+"/environments/dev/deployments/"+d.ID)
	devHost := Host("dev")
	if dev.URL != r.URL(devHost) || !strings.HasPrefix(dev.Image, r.ImagePrefix) {
		t.Errorf("running deployment %+v, want URL %s and an image from %s", dev, r.URL(devHost), r.ImagePrefix)
	}
	testutil.Eventually(t, 100*time.Millisecond, 2*time.Minute, "dev answers through Traefik", Answers(r.Get, devHost, "orders says hello-dev, token-length=0"))
	t.Logf("upload to first answer through Traefik: %v", time.Since(uploaded).Round(10*time.Millisecond))

	// Logs: the agent's line and the overlay's value; followed, what
	// comes.
	appPath := Base + "/environments/dev/apps/" + App
	logs := Logs(t, cp, appPath+"/logs?tail=50")
	if !strings.Contains(logs, "cameleer-agent ") || !strings.Contains(logs, "GREETING=hello-dev") {
		t.Errorf("logs lack the agent's line or the overlay's value:\n%s", logs)
	}
	// tail=1: the control plane sends the answer's header on with the
	// first line it relays, not before.
	FollowLogs(t, cp, appPath+"/logs?follow=true&tail=1", func() { r.Get(devHost, "/followed") }, "orders served /followed")

	var st AppStatus
	cp.Must(t, http.StatusOK, "GET", appPath+"/status", nil, &st)
	if st.Phase != "running" || !st.Connected || st.Live == nil || st.Live.Ready != 1 || st.Live.Image != dev.Image {
		t.Fatalf("status %+v live %+v", st, st.Live)
	}
	// The runner reads the JVM's facts from the agent in the app.
	if j := st.Live.JVM; j.AgentVersion == "" || j.HeapUsedBytes <= 0 || !strings.Contains(j.MainCommand, "app.jar") {
		t.Errorf("the agent's JVM facts in the status: %+v", j)
	}
	var list []AppStatus
	cp.Must(t, http.StatusOK, "GET", Base+"/environments/dev/apps", nil, &list)
	if len(list) != 1 || list[0].Name != App || list[0].Running != dev.Image {
		t.Errorf("list %+v", list)
	}

	// Stop, start, restart.
	cp.Must(t, http.StatusOK, "POST", appPath+"/stop", nil, nil)
	cp.Must(t, http.StatusOK, "GET", appPath+"/status", nil, &st)
	if st.Live == nil || st.Live.Replicas != 0 {
		t.Errorf("stopped: %+v", st.Live)
	}
	testutil.Eventually(t, poll, time.Minute, "stopped app does not answer", func() error {
		if Answers(r.Get, devHost, "orders says")() == nil {
			return errors.New("still answering")
		}
		return nil
	})
	cp.Must(t, http.StatusOK, "POST", appPath+"/start", nil, nil)
	testutil.Eventually(t, poll, 2*time.Minute, "started app answers", Answers(r.Get, devHost, "hello-dev"))
	before := r.Instances(t, "dev", App)
	if len(before) == 0 {
		t.Fatal("the started app has no instances")
	}
	cp.Must(t, http.StatusOK, "POST", appPath+"/restart", nil, nil)
	testutil.Eventually(t, poll, 2*time.Minute, "restart replaced the app's instances", func() error {
		after := r.Instances(t, "dev", App)
		if len(after) == 0 || slices.ContainsFunc(after, func(id string) bool { return slices.Contains(before, id) }) {
			return fmt.Errorf("instances %v, then %v", before, after)
		}
		return nil
	})
	testutil.Eventually(t, poll, 2*time.Minute, "restarted app answers", Answers(r.Get, devHost, "hello-dev"))
	cp.Must(t, http.StatusNotFound, "POST", appPath+"/explode", nil, nil)
	cp.Must(t, http.StatusNotFound, "GET", Base+"/environments/dev/apps/nosuchapp/status", nil, nil)

	// Promotion: the image running in dev, with prod's config, no build.
	var p Deployment
	cp.Must(t, http.StatusAccepted, "POST", Base+"/environments/prod/promotions", map[string]string{"app": App, "from": "dev"}, &p)
	prod := WaitRunning(t, r, Base+"/environments/prod/deployments/"+p.ID)
	if prod.Image != dev.Image || prod.PromotedFrom != "dev" {
		t.Errorf("promoted %+v, want image %s", prod, dev.Image)
	}
	testutil.Eventually(t, poll, 2*time.Minute, "prod answers", Answers(r.Get, Host("prod"),
		fmt.Sprintf("orders says hello-prod, token-length=%d", len(Secret))))
	testutil.Eventually(t, poll, time.Minute, "dev still answers", Answers(r.Get, devHost, "orders says hello-dev, token-length=0"))
	return Result{Artifact: sha, Dev: dev, Prod: prod}
}

// Refusals shows that what cannot be deployed is refused up front.
func Refusals(t *testing.T, cp *cptest.ControlPlane, artifact string) {
	t.Helper()
	cp.Must(t, http.StatusNotFound, "POST", Base+"/environments/dev/deployments", map[string]any{"app": App, "artifact": strings.Repeat("0", 64)}, nil)
	cp.Must(t, http.StatusNotFound, "POST", Base+"/environments/staging/deployments", map[string]any{"app": App, "artifact": artifact}, nil)
	cp.Must(t, http.StatusNotFound, "POST", Base+"/environments/prod/promotions", map[string]string{"app": "nosuchapp", "from": "dev"}, nil)
}

// WaitRunning polls a deployment until it runs; a failed one fails the
// test with its reason.
func WaitRunning(t *testing.T, r Runner, path string) Deployment {
	t.Helper()
	var d Deployment
	seen := map[string]bool{}
	testutil.Eventually(t, 100*time.Millisecond, 5*time.Minute, "deployment running", func() error {
		if r.Alive != nil {
			if err := r.Alive(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := r.CP.Call("GET", path, nil, &d); err != nil {
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

// Answers checks that Traefik routes host to an app whose answer contains
// want.
func Answers(get func(host, path string) (string, error), host, want string) func() error {
	return func() error {
		body, err := get(host, "/")
		if err == nil && !strings.Contains(body, want) {
			err = fmt.Errorf("body %q", body)
		}
		return err
	}
}

// Logs reads an app's logs through the API.
func Logs(t *testing.T, cp *cptest.ControlPlane, path string) string {
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

// FollowLogs shows that followed logs stream: what the app prints after
// the answer began (poke makes it print) comes through while the answer
// stays open.
func FollowLogs(t *testing.T, cp *cptest.ControlPlane, path string, poke func(), want string) {
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
