//go:build node

package node_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/appliance/orchestrator"
	"github.com/cameleer/cameleer/internal/cptest"
	"github.com/cameleer/cameleer/internal/testutil"
)

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

// testDeploy runs an app the way a user does, through the control plane's
// API and the tunnel: upload a JAR, deploy it to dev, use it through
// Traefik, read its logs, stop, start and restart it, promote it to prod.
func (n *node) testDeploy(t *testing.T) {
	cp := n.cp
	const tenant, app = "acme", "invoices"
	base := "/api/v1/tenants/" + tenant
	const secret = "prod-s3cr3t-token"
	for env, cfg := range map[string]any{
		"dev":  map[string]any{"env": map[string]string{"GREETING": "hello-dev"}},
		"prod": map[string]any{"env": map[string]string{"GREETING": "hello-prod"}, "secrets": map[string]string{"API_TOKEN": secret}},
	} {
		cp.Must(t, http.StatusCreated, "POST", base+"/environments", map[string]string{"name": env}, nil)
		cp.Must(t, http.StatusOK, "PUT", base+"/environments/"+env+"/config", cfg, nil)
	}

	uploaded := time.Now()
	sha := cp.Upload(t, tenant, app, javaApp(t))
	// The tenant has one runner: the deployment need not name it.
	var d deployment
	cp.Must(t, http.StatusAccepted, "POST", base+"/environments/dev/deployments", map[string]any{"app": app, "artifact": sha}, &d)
	if d.Phase != "validating" {
		t.Errorf("a new deployment is %q", d.Phase)
	}
	dev := n.waitRunning(t, base+"/environments/dev/deployments/"+d.ID)
	devHost := app + ".dev." + tenant + ".localhost"
	if dev.URL != "http://"+devHost+"/" || !strings.HasPrefix(dev.Image, "cameleer.local/acme/invoices@sha256:") {
		t.Errorf("running deployment %+v", dev)
	}
	testutil.Eventually(t, 100*time.Millisecond, 2*time.Minute, "dev answers through Traefik", answers(devHost, "orders says hello-dev, token-length=0"))
	t.Logf("upload to first answer through Traefik: %v", time.Since(uploaded).Round(10*time.Millisecond))

	logs := appLogs(t, cp, base+"/environments/dev/apps/"+app+"/logs?tail=50")
	if !strings.Contains(logs, "cameleer-agent ") || !strings.Contains(logs, "GREETING=hello-dev") {
		t.Errorf("logs lack the agent's line or the overlay's value:\n%s", logs)
	}
	n.followLogs(t, base+"/environments/dev/apps/"+app+"/logs?follow=true&tail=1")

	var st appStatus
	cp.Must(t, http.StatusOK, "GET", base+"/environments/dev/apps/"+app+"/status", nil, &st)
	if st.Phase != "running" || !st.Connected || st.Live == nil || st.Live.Ready != 1 || st.Live.Image != dev.Image {
		t.Fatalf("status %+v live %+v", st, st.Live)
	}
	// The runner reads the JVM's facts from the agent in the app.
	if j := st.Live.JVM; j.AgentVersion == "" || j.HeapUsedBytes <= 0 || !strings.Contains(j.MainCommand, "app.jar") {
		t.Errorf("the agent's JVM facts in the status: %+v", j)
	}
	var list []appStatus
	cp.Must(t, http.StatusOK, "GET", base+"/environments/dev/apps", nil, &list)
	if len(list) != 1 || list[0].Name != app || list[0].Running != dev.Image {
		t.Errorf("list %+v", list)
	}

	cp.Must(t, http.StatusOK, "POST", base+"/environments/dev/apps/"+app+"/stop", nil, nil)
	cp.Must(t, http.StatusOK, "GET", base+"/environments/dev/apps/"+app+"/status", nil, &st)
	if st.Live == nil || st.Live.Replicas != 0 {
		t.Errorf("stopped: %+v", st.Live)
	}
	testutil.Eventually(t, poll, time.Minute, "stopped app does not answer", func() error {
		if answers(devHost, "orders says")() == nil {
			return fmt.Errorf("still answering")
		}
		return nil
	})
	cp.Must(t, http.StatusOK, "POST", base+"/environments/dev/apps/"+app+"/start", nil, nil)
	testutil.Eventually(t, poll, 2*time.Minute, "started app answers", answers(devHost, "hello-dev"))
	cp.Must(t, http.StatusOK, "POST", base+"/environments/dev/apps/"+app+"/restart", nil, nil)
	testutil.Eventually(t, poll, 2*time.Minute, "restarted app answers", answers(devHost, "hello-dev"))
	cp.Must(t, http.StatusNotFound, "POST", base+"/environments/dev/apps/"+app+"/explode", nil, nil)
	cp.Must(t, http.StatusNotFound, "GET", base+"/environments/dev/apps/nosuchapp/status", nil, nil)

	// Promotion: the image running in dev, with prod's config, no build.
	var p deployment
	cp.Must(t, http.StatusAccepted, "POST", base+"/environments/prod/promotions", map[string]string{"app": app, "from": "dev"}, &p)
	prod := n.waitRunning(t, base+"/environments/prod/deployments/"+p.ID)
	if prod.Image != dev.Image || prod.PromotedFrom != "dev" {
		t.Errorf("promoted %+v, want image %s", prod, dev.Image)
	}
	testutil.Eventually(t, poll, 2*time.Minute, "prod answers", answers(app+".prod."+tenant+".localhost",
		fmt.Sprintf("orders says hello-prod, token-length=%d", len(secret))))
	spec := n.kubectl(t, "", "get", "deployment", app, "-n", orchestrator.Namespace(tenant, "prod"), "-o", "json")
	if strings.Contains(spec, secret) {
		t.Error("the secret's value is in the prod Deployment")
	}

	// Environments are fenced: a pod in prod cannot reach the app in dev.
	podIP := strings.TrimSpace(n.kubectl(t, "", "get", "pods", "-n", orchestrator.Namespace(tenant, "dev"), "-l", "app.kubernetes.io/name="+app,
		"--field-selector=status.phase=Running", "-o", "jsonpath={.items[0].status.podIP}"))
	out, err := n.tryKubectl("", "run", "intruder", "-n", orchestrator.Namespace(tenant, "prod"), "--image="+testImage, "--restart=Never",
		"--attach", "--rm", "-q", "--", "get", "http://"+podIP+":8080/")
	if err == nil || !strings.Contains(out, "testapp: ") {
		t.Errorf("a pod in prod reaching dev's app: %v\n%s", err, out)
	}

	// The control plane goes away during a deployment: the runner carries
	// on, and its report reaches the control plane once it is back.
	var r deployment
	cp.Must(t, http.StatusAccepted, "POST", base+"/environments/dev/deployments", map[string]any{"app": app, "artifact": sha, "replicas": 2}, &r)
	testutil.Eventually(t, 50*time.Millisecond, time.Minute, "the runner took the deployment", func() error {
		cp.Call("GET", base+"/environments/dev/deployments/"+r.ID, nil, &r)
		if r.Phase == "validating" {
			return fmt.Errorf("phase %s", r.Phase)
		}
		return nil
	})
	cp.Stop()
	testutil.Eventually(t, poll, 3*time.Minute, "two dev replicas ready while the control plane is down", func() error {
		out, err := n.tryKubectl("", "get", "deployment", app, "-n", orchestrator.Namespace(tenant, "dev"), "-o", "jsonpath={.status.readyReplicas}/{.status.updatedReplicas}")
		if err != nil || strings.TrimSpace(out) != "2/2" {
			return fmt.Errorf("ready/updated %q %v", out, err)
		}
		return nil
	})
	cp.Restart(t)
	n.waitRunning(t, base+"/environments/dev/deployments/"+r.ID)

	// A version that cannot start fails its deployment with why, and the
	// running version goes on serving.
	broken := cp.Upload(t, tenant, app, testutil.JavaJar(t, "Broken", `public class Broken {
    public static void main(String[] args) {
        System.out.println("broken on purpose");
        System.exit(3);
    }
}
`))
	var b deployment
	cp.Must(t, http.StatusAccepted, "POST", base+"/environments/dev/deployments", map[string]any{"app": app, "artifact": broken}, &b)
	testutil.Eventually(t, poll, 3*time.Minute, "the broken version's deployment fails", func() error {
		cp.Call("GET", base+"/environments/dev/deployments/"+b.ID, nil, &b)
		if b.Phase != "failed" {
			return fmt.Errorf("phase %s", b.Phase)
		}
		return nil
	})
	t.Logf("the broken version's deployment: %s", b.Reason)
	if !strings.Contains(b.Reason, "exited with code 3") || !strings.Contains(b.Reason, "broken on purpose") || !strings.Contains(b.Reason, "rolled back") {
		t.Errorf("the failed deployment's reason does not say why: %s", b.Reason)
	}
	if err := answers(devHost, "orders says hello-dev")(); err != nil {
		t.Errorf("the running version stopped serving after a failed deployment: %v", err)
	}
	testutil.Eventually(t, poll, time.Minute, "the app rolled back to the version before", func() error {
		cp.Must(t, http.StatusOK, "GET", base+"/environments/dev/apps/"+app+"/status", nil, &st)
		if st.Live == nil || st.Live.Image != dev.Image || st.Live.Ready == 0 || st.Live.Ready != st.Live.Replicas || st.Running != dev.Image {
			return fmt.Errorf("status %+v live %+v", st, st.Live)
		}
		return nil
	})

	// What cannot be deployed is refused up front.
	cp.Must(t, http.StatusNotFound, "POST", base+"/environments/dev/deployments", map[string]any{"app": app, "artifact": strings.Repeat("0", 64)}, nil)
	cp.Must(t, http.StatusNotFound, "POST", base+"/environments/staging/deployments", map[string]any{"app": app, "artifact": sha}, nil)
	cp.Must(t, http.StatusNotFound, "POST", base+"/environments/prod/promotions", map[string]string{"app": "nosuchapp", "from": "dev"}, nil)
}

// waitRunning polls a deployment until it runs; a failed one fails the
// test with its reason.
func (n *node) waitRunning(t *testing.T, path string) deployment {
	t.Helper()
	var d deployment
	seen := map[string]bool{}
	testutil.Eventually(t, 100*time.Millisecond, 5*time.Minute, "deployment running", func() error {
		if _, err := n.cp.Call("GET", path, nil, &d); err != nil {
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

// answers checks that Traefik on :80 routes host to an app whose answer
// contains want.
func answers(host, want string) func() error {
	return func() error {
		body, err := getHello(host)
		if err == nil && !strings.Contains(body, want) {
			err = fmt.Errorf("body %q", body)
		}
		return err
	}
}

func appLogs(t *testing.T, cp *cptest.ControlPlane, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "https://"+cp.Addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+cp.Admin)
	resp, err := cp.HTTP.Do(req)
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

// followLogs shows that followed logs stream: a line of the app's comes
// through, and the answer stays open until the caller hangs up.
func (n *node) followLogs(t *testing.T, path string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+n.cp.Addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+n.cp.Admin)
	resp, err := n.cp.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("followed logs: %s %q %v", resp.Status, line, err)
	}
}
