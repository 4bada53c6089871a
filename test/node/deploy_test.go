//go:build node

package node_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/appliance/orchestrator"
	"github.com/cameleer/cameleer/internal/testkit/apptest"
	"github.com/cameleer/cameleer/internal/testkit/camelapps"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// testDeploy runs an app the way a user does, through the control plane's
// API and the tunnel (apptest.Flow), opens its environment's egress
// (apptest.Egress), then what only a node shows: the secret stays out of
// the Deployment, environments are fenced, a deployment survives the
// control plane going away, and a version that cannot start is rolled
// back.
func (n *node) testDeploy(t *testing.T) {
	cp := n.cp
	const tenant, app, secret, base = apptest.Tenant, apptest.App, apptest.Secret, apptest.Base
	apptest.Environments(t, cp)
	r := apptest.Runner{
		CP:          cp,
		Get:         testutil.HostGetter("127.0.0.1:80"),
		URL:         func(host string) string { return "http://" + host + "/" },
		ImagePrefix: "cameleer.local/acme/invoices@sha256:",
		Instances: func(t *testing.T, env, app string) []string {
			out := n.kubectl(t, "", "get", "pods", "-n", orchestrator.Namespace(tenant, env), "-l", "app.kubernetes.io/name="+app,
				"-o", "jsonpath={.items[*].metadata.name}")
			return strings.Fields(out)
		},
	}
	res := apptest.Flow(t, r)
	dev, sha, devHost := res.Dev, res.Artifact, apptest.Host("dev")

	// Egress opens dev to what its allow list says, as a NetworkPolicy of
	// its own, gone once the list is emptied.
	apptest.Egress(t, r)
	if out, err := n.tryKubectl("", "get", "networkpolicy", "allow-egress-rules", "-n", orchestrator.Namespace(tenant, "dev")); err == nil {
		t.Errorf("the egress policy outlived its rules:\n%s", out)
	}
	spec := n.kubectl(t, "", "get", "deployment", app, "-n", orchestrator.Namespace(tenant, "prod"), "-o", "json")
	if strings.Contains(spec, secret) {
		t.Error("the secret's value is in the prod Deployment")
	}

	// Within an environment apps call each other by name (at the app's
	// own port, as on Docker, and at port 80); across environments they
	// cannot reach each other at all. The calls come from a pod that
	// lives a while: the policy controller learns of a new pod's address
	// a moment after it starts, and refuses its traffic until then.
	call := n.callerIn(t, orchestrator.Namespace(tenant, "dev"))
	for _, url := range []string{"http://" + app + ":8080/", "http://" + app + "/"} {
		testutil.Eventually(t, poll, time.Minute, "a pod in dev calls the app at "+url, func() error {
			if out, err := call(url); err != nil || !strings.Contains(out, "orders says hello-dev") {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
	}
	devPod := strings.TrimSpace(n.kubectl(t, "", "get", "pods", "-n", orchestrator.Namespace(tenant, "dev"), "-l", "app.kubernetes.io/name="+app,
		"--field-selector=status.phase=Running", "-o", "jsonpath={.items[0].status.podIP}"))
	call = n.callerIn(t, orchestrator.Namespace(tenant, "prod"))
	testutil.Eventually(t, poll, time.Minute, "a pod in prod calls prod's app", func() error {
		if out, err := call("http://" + app + ":8080/"); err != nil || !strings.Contains(out, "orders says hello-prod") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if out, err := call("http://" + devPod + ":8080/"); err == nil || !strings.Contains(out, "testapp: ") {
		t.Errorf("a pod in prod reaching dev's app: %v\n%s", err, out)
	}

	// The control plane goes away during a deployment: the runner carries
	// on, and its report reaches the control plane once it is back.
	var d apptest.Deployment
	cp.Must(t, http.StatusAccepted, "POST", base+"/environments/dev/deployments", map[string]any{"app": app, "artifact": sha, "replicas": 2}, &d)
	testutil.Eventually(t, 50*time.Millisecond, time.Minute, "the runner took the deployment", func() error {
		cp.Call("GET", base+"/environments/dev/deployments/"+d.ID, nil, &d)
		if d.Phase == "validating" {
			return fmt.Errorf("phase %s", d.Phase)
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
	apptest.WaitRunning(t, r, base+"/environments/dev/deployments/"+d.ID)

	// A version that cannot start fails its deployment with why, and the
	// running version goes on serving.
	broken := cp.Upload(t, tenant, app, testutil.JavaJar(t, "Broken", `public class Broken {
    public static void main(String[] args) {
        System.out.println("broken on purpose");
        System.exit(3);
    }
}
`))
	var b apptest.Deployment
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
	var st apptest.AppStatus
	testutil.Eventually(t, poll, time.Minute, "the app rolled back to the version before", func() error {
		cp.Must(t, http.StatusOK, "GET", base+"/environments/dev/apps/"+app+"/status", nil, &st)
		if st.Live == nil || st.Live.Image != dev.Image || st.Live.Ready == 0 || st.Live.Ready != st.Live.Replicas || st.Running != dev.Image {
			return fmt.Errorf("status %+v live %+v", st, st.Live)
		}
		return nil
	})

	apptest.Refusals(t, cp, sha)

	// Camel apps of the older lines (the newer ones run on Docker), seen
	// from their agents through the node's runner.
	apptest.Observe(t, r, []string{filepath.Join(dataDir, "telemetry"), cp.DataDir()}, camelapps.MainLTS, camelapps.Boot3)
	// Replay of failed exchanges from their originals on the node (a
	// runner restart in the middle is Docker's part).
	apptest.Replay(t, r, apptest.ReplayDirs{Originals: filepath.Join(dataDir, "originals"),
		Elsewhere: []string{filepath.Join(dataDir, "telemetry"), filepath.Join(dataDir, "logs"), cp.DataDir(), cp.LogFile}}, camelapps.MainLTS, nil)
}

// callerIn starts a pod in namespace ns that stays up, and returns a GET
// of a URL from inside it.
func (n *node) callerIn(t *testing.T, ns string) func(url string) (string, error) {
	t.Helper()
	n.kubectl(t, `apiVersion: v1
kind: Pod
metadata:
  name: caller
  namespace: `+ns+`
spec:
  containers:
    - name: c
      image: `+testImage+`
      args: [sleep]
`, "apply", "-f", "-")
	t.Cleanup(func() { n.tryKubectl("", "delete", "pod", "caller", "-n", ns, "--wait=false") })
	n.kubectl(t, "", "wait", "-n", ns, "--for=condition=Ready", "pod/caller", "--timeout=120s")
	return func(url string) (string, error) {
		return n.tryKubectl("", "exec", "-n", ns, "caller", "--", "/testapp", "get", url)
	}
}
