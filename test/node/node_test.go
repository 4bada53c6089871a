//go:build node

// Package node_test brings a real node up on this host with the built
// bin/cameleer and checks what issue 3 asks of it: install (also killed
// half-way, also twice), every component Ready offline, storage, ingress,
// DNS, the local registry, network policy, recovery from kill -9, and a
// reset that leaves nothing behind. It needs root and ports 80, 443, 5000,
// 6443 and 10248-10259 free; it removes everything it made.
//
//	CAMELEER_BIN=$PWD/bin/cameleer go test -tags node -count=1 -v ./test/node/
package node_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cameleer/cameleer/appliance/images"
	"github.com/cameleer/cameleer/appliance/reset"
	"github.com/cameleer/cameleer/internal/testkit/apptest"
	"github.com/cameleer/cameleer/internal/testkit/cptest"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

const (
	dataDir = "/var/lib/cameleer-e2e"
	// testImage is what pods run; the test pushes it to the node's
	// registry at registryImage.
	testImage     = "cameleer.local/e2e/testapp:1"
	registryImage = "127.0.0.1:5000/e2e/testapp:1"
)

// poll is how often a waiting test checks again; each check may start a
// kubectl.
const poll = 500 * time.Millisecond

type node struct {
	t   *testing.T
	bin string
	// cp is the control plane the node registers with.
	cp *cptest.ControlPlane
}

func TestNode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	bin := os.Getenv("CAMELEER_BIN")
	if bin == "" {
		t.Skip("CAMELEER_BIN is not set (make test sets it)")
	}
	n := &node{t: t, bin: bin}
	if _, err := os.Stat(dataDir); err == nil {
		t.Logf("removing a node left by an earlier run")
		n.run("reset", "--data-dir", dataDir)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logTail(t, filepath.Join(dataDir, "logs", "cameleer.log"), 150)
		}
		if _, err := os.Stat(dataDir); err == nil {
			n.cameleer(context.Background(), "reset", "--data-dir", dataDir)
		}
	})

	ok := t.Run("install killed half-way converges", n.testInstallKilled) &&
		t.Run("install twice is harmless", n.testInstallTwice)
	if !ok {
		t.Fatal("no node; the other tests cannot run")
	}
	t.Run("status", n.testStatus)
	t.Run("kubectl and ctr take --data-dir", n.testToolDataDir)
	t.Run("registry answers and serves pushed images", n.testRegistry)
	t.Run("storage", n.testStorage)
	t.Run("ingress", n.testIngress)
	t.Run("dns", n.testDNS)
	t.Run("network policy", n.testNetworkPolicy)
	t.Run("app runtime", n.testAppRuntime)
	if t.Run("tunnel with the engine", n.testTunnelWithEngine) {
		t.Run("deploy through the control plane", n.testDeploy)
		t.Run("support bundle", n.testSupportBundle)
		t.Run("upgrade, and a rollback by itself", n.testUpgrade)
	}
	t.Run("recovers from kill -9", n.testKill)
	if t.Run("reset leaves nothing", n.testReset) && t.Run("curl | sh from the control plane", n.testCurlInstall) &&
		t.Run("reset after curl | sh leaves nothing", n.testReset) {
		t.Run("README's quickstart", n.testQuickstart)
		t.Run("reset after the quickstart leaves nothing", n.testReset)
	}
}

// logTail logs the last n lines of the file at path: what cameleer run said
// before a test failed.
func logTail(t *testing.T, path string, n int) {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Logf("no log: %v", err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	t.Logf("last lines of %s:\n%s", path, strings.Join(lines[max(0, len(lines)-n):], "\n"))
}

// cameleer runs bin/cameleer and returns its combined output.
func (n *node) cameleer(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, n.bin, args...)
	cmd.Env = append(os.Environ(), "CAMELEER_DATA_DIR="+dataDir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (n *node) run(args ...string) string {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	out, err := n.cameleer(ctx, args...)
	if err != nil {
		n.t.Fatalf("cameleer %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (n *node) kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := n.tryKubectl(stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (n *node) tryKubectl(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.bin, append([]string{"kubectl"}, args...)...)
	cmd.Env = append(os.Environ(), "CAMELEER_DATA_DIR="+dataDir)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (n *node) testInstallKilled(t *testing.T) {
	// Kill install while it extracts the payload, then install again.
	cmd := exec.Command(n.bin, "install", "--data-dir", dataDir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Extracting the engine") {
			break
		}
	}
	// Let it write part of the payload.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m, _ := filepath.Glob(filepath.Join(dataDir, "bin", ".extract-*")); len(m) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	go io.Copy(io.Discard, stdout)
	cmd.Wait()

	out := n.run("install", "--data-dir", dataDir)
	t.Logf("install:\n%s", out)
	if !strings.Contains(out, "is Ready") {
		t.Fatalf("install did not report a Ready node:\n%s", out)
	}
}

func (n *node) testInstallTwice(t *testing.T) {
	before := n.status(t)
	out := n.run("install", "--data-dir", dataDir)
	if !strings.Contains(out, "already running") || !strings.Contains(out, "is Ready") {
		t.Fatalf("second install:\n%s", out)
	}
	after := n.status(t)
	if after.PID != before.PID {
		t.Errorf("second install replaced cameleer run: pid %d, was %d", after.PID, before.PID)
	}
	for i, c := range after.Components {
		if c.PID != before.Components[i].PID {
			t.Errorf("second install restarted %s", c.Name)
		}
	}
}

type status struct {
	PID   int  `json:"pid"`
	Ready bool `json:"ready"`
	Node  *struct {
		Status string `json:"status"`
	} `json:"node"`
	Components   []componentStatus `json:"components"`
	ControlPlane struct {
		Registered bool   `json:"registered"`
		Connected  bool   `json:"connected"`
		RunnerID   string `json:"runnerId"`
	} `json:"controlPlane"`
}

type componentStatus struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	PID      int    `json:"pid"`
	Restarts int    `json:"restarts"`
	Ready    bool   `json:"ready"`
}

func (n *node) tryStatus() (status, error) {
	var st status
	out, err := n.cameleer(context.Background(), "status", "--data-dir", dataDir, "-o", "json")
	if jerr := json.Unmarshal([]byte(out), &st); jerr != nil {
		return st, fmt.Errorf("status: %v %v: %s", err, jerr, out)
	}
	if !st.Ready {
		return st, fmt.Errorf("node not ready: %s", out)
	}
	return st, nil
}

func (n *node) status(t *testing.T) status {
	t.Helper()
	st, err := n.tryStatus()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (n *node) testStatus(t *testing.T) {
	st := n.status(t)
	if st.ControlPlane.Registered || st.ControlPlane.Connected {
		t.Errorf("a node never registered shows a control plane: %+v", st.ControlPlane)
	}
	want := []string{"kine", "containerd", "registry", "system-images", "kube-apiserver", "rbac",
		"kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "flannel", "network-policy", "add-ons", "cluster-port"}
	if len(st.Components) != len(want) {
		t.Fatalf("components: %+v", st.Components)
	}
	for i, c := range st.Components {
		if c.Name != want[i] || !c.Ready {
			t.Errorf("component %d: %+v, want %s ready", i, c, want[i])
		}
	}
	if st.Node == nil || st.Node.Status != "True" {
		t.Errorf("node condition: %+v", st.Node)
	}
	// The system pods the add-ons bring.
	out := n.kubectl(t, "", "get", "pods", "-n", "kube-system", "-o", "jsonpath={range .items[*]}{.metadata.labels}{\" \"}{.status.phase}{\"\\n\"}{end}")
	for _, app := range []string{"kube-dns", "local-path-provisioner", "traefik"} {
		if !strings.Contains(out, app) {
			t.Errorf("no %s pod:\n%s", app, out)
		}
	}
	if strings.Count(out, "Running") != 3 {
		t.Errorf("system pods not all Running:\n%s", out)
	}
	text := n.run("status", "--data-dir", dataDir)
	if !strings.Contains(text, "Ready=True") || !strings.Contains(text, "kube-apiserver") {
		t.Errorf("status text:\n%s", text)
	}
}

// testToolDataDir runs kubectl and ctr as a user would who installed with
// --data-dir and set no variable: given --data-dir, or for kubectl only
// --kubeconfig (its kubectl then comes from the binary's payload: the
// default data dir has none).
func (n *node) testToolDataDir(t *testing.T) {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "CAMELEER_DATA_DIR=") {
			env = append(env, e)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"kubectl", "--data-dir", dataDir, "get", "nodes"}, "Ready"},
		{[]string{"kubectl", "get", "nodes", "--data-dir=" + dataDir}, "Ready"},
		{[]string{"kubectl", "--kubeconfig", filepath.Join(dataDir, "kubeconfig.yaml"), "get", "nodes"}, "Ready"},
		{[]string{"ctr", "--data-dir", dataDir, "images", "ls", "-q"}, "cameleer.local/"},
	} {
		cmd := exec.Command(n.bin, c.args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("cameleer %s: %v\n%s", strings.Join(c.args, " "), err, out)
		}
	}
}

// testRegistry pushes the test app, as an image built here, into the node's
// registry from the host; later tests run it as pods.
func (n *node) testRegistry(t *testing.T) {
	resp, err := http.Get("http://127.0.0.1:5000/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("registry /v2/: %s", resp.Status)
	}
	root := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(root, "testapp"), "./testapp")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build testapp: %v\n%s", err, out)
	}
	layer, err := images.LayerFromDir(root)
	if err != nil {
		t.Fatal(err)
	}
	img, err := images.Build(nil, []v1.Layer{layer}, images.Config{Entrypoint: []string{"/testapp"}, User: "65534"})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(registryImage, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	n.kubectl(t, `apiVersion: v1
kind: Pod
metadata:
  name: pushed
  namespace: default
spec:
  restartPolicy: Never
  containers:
    - name: app
      image: `+testImage+`
      args: [resolve, localhost]
`, "apply", "-f", "-")
	testutil.Eventually(t, poll, 2*time.Minute, "pod from the pushed image succeeds", func() error {
		out, _ := n.tryKubectl("", "get", "pod", "pushed", "-o", "jsonpath={.status.phase}")
		if out != "Succeeded" {
			return fmt.Errorf("phase %q", out)
		}
		return nil
	})
	n.kubectl(t, "", "delete", "pod", "pushed", "--wait=false")

	// The pushes and pulls asked the registry for blobs it did not have
	// yet: normal answers, not errors in the node's log, which is slog's
	// alone (logrus writes level=error).
	log, err := os.ReadFile(filepath.Join(dataDir, "logs", "cameleer.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "level=error") || strings.Contains(l, "level=ERROR") && strings.Contains(l, "_UNKNOWN") {
			t.Errorf("cameleer.log: %s", l)
		}
	}
}

func (n *node) testStorage(t *testing.T) {
	n.kubectl(t, `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: default
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 10Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: writer
  namespace: default
spec:
  restartPolicy: Never
  containers:
    - name: w
      image: cameleer.local/busybox:`+busyboxTag(t, n)+`
      command: [sh, -c, "echo persisted-42 > /data/file"]
      volumeMounts: [{name: data, mountPath: /data}]
  volumes:
    - name: data
      persistentVolumeClaim: {claimName: data}
`, "apply", "-f", "-")
	waitPhase(t, n, "writer", "Succeeded")
	n.kubectl(t, `apiVersion: v1
kind: Pod
metadata:
  name: reader
  namespace: default
spec:
  restartPolicy: Never
  containers:
    - name: r
      image: cameleer.local/busybox:`+busyboxTag(t, n)+`
      command: [cat, /data/file]
      volumeMounts: [{name: data, mountPath: /data}]
  volumes:
    - name: data
      persistentVolumeClaim: {claimName: data}
`, "apply", "-f", "-")
	waitPhase(t, n, "reader", "Succeeded")
	if out := n.kubectl(t, "", "logs", "reader"); strings.TrimSpace(out) != "persisted-42" {
		t.Errorf("reader read %q", out)
	}
	pv := n.kubectl(t, "", "get", "pvc", "data", "-o", "jsonpath={.spec.volumeName}")
	if m, _ := filepath.Glob(filepath.Join(dataDir, "storage", pv+"*", "file")); len(m) != 1 {
		t.Errorf("volume %s is not under %s/storage", pv, dataDir)
	}
	n.kubectl(t, "", "delete", "pod", "writer", "reader")
	n.kubectl(t, "", "delete", "pvc", "data")
}

func busyboxTag(t *testing.T, n *node) string {
	t.Helper()
	out := n.kubectl(t, "", "get", "configmap", "-n", "kube-system", "local-path-config", "-o", "jsonpath={.data.helperPod\\.yaml}")
	i := strings.Index(out, "cameleer.local/busybox:")
	if i < 0 {
		t.Fatalf("no busybox image in local-path-config:\n%s", out)
	}
	return strings.Fields(out[i+len("cameleer.local/busybox:"):])[0]
}

func waitPhase(t *testing.T, n *node, pod, phase string) {
	t.Helper()
	testutil.Eventually(t, poll, 2*time.Minute, "pod "+pod+" "+phase, func() error {
		out, _ := n.tryKubectl("", "get", "pod", pod, "-o", "jsonpath={.status.phase}")
		if out != phase {
			return fmt.Errorf("phase %q", out)
		}
		return nil
	})
}

const helloApp = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      containers:
        - name: hello
          image: ` + testImage + `
          args: [serve, ":8080", hello-from-cameleer]
          ports: [{containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /, port: 8080}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: hello
  namespace: default
spec:
  selector: {app: hello}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: hello
  namespace: default
spec:
  rules:
    - host: hello.e2e.test
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: hello
                port: {number: 80}
`

// getHello asks Traefik on the host's port 80 for host.
func getHello(host string) (string, error) { return testutil.HostGetter("127.0.0.1:80")(host, "/") }

// answers checks that Traefik on :80 routes host to an app whose answer
// contains want.
func answers(host, want string) func() error {
	return apptest.Answers(testutil.HostGetter("127.0.0.1:80"), host, want)
}

func (n *node) testIngress(t *testing.T) {
	n.kubectl(t, helloApp, "apply", "-f", "-")
	testutil.Eventually(t, poll, 2*time.Minute, "hello answers through Traefik", func() error {
		body, err := getHello("hello.e2e.test")
		if err == nil && strings.TrimSpace(body) != "hello-from-cameleer" {
			err = fmt.Errorf("body %q", body)
		}
		return err
	})
	if _, err := getHello("other.e2e.test"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("an unknown host should get Traefik's 404, got %v", err)
	}
}

func (n *node) testDNS(t *testing.T) {
	n.kubectl(t, `apiVersion: v1
kind: Pod
metadata:
  name: resolver
  namespace: default
spec:
  restartPolicy: Never
  containers:
    - name: r
      image: `+testImage+`
      args: [resolve, hello.default.svc.cluster.local]
`, "apply", "-f", "-")
	waitPhase(t, n, "resolver", "Succeeded")
	want := strings.TrimSpace(n.kubectl(t, "", "get", "svc", "hello", "-o", "jsonpath={.spec.clusterIP}"))
	if out := strings.TrimSpace(n.kubectl(t, "", "logs", "resolver")); out != want {
		t.Errorf("hello.default.svc.cluster.local resolved to %q, want the ClusterIP %s", out, want)
	}
	n.kubectl(t, "", "delete", "pod", "resolver")
}

func (n *node) testNetworkPolicy(t *testing.T) {
	n.kubectl(t, `apiVersion: v1
kind: Namespace
metadata:
  name: np
---
apiVersion: v1
kind: Pod
metadata:
  name: server
  namespace: np
  labels: {app: server}
spec:
  containers:
    - name: s
      image: `+testImage+`
      args: [serve, ":8080", np-ok]
---
apiVersion: v1
kind: Service
metadata:
  name: server
  namespace: np
spec:
  selector: {app: server}
  ports: [{port: 8080}]
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: np
  labels: {app: client}
spec:
  containers:
    - name: c
      image: `+testImage+`
      args: [sleep]
`, "apply", "-f", "-")
	for _, p := range []string{"server", "client"} {
		n.kubectl(t, "", "wait", "-n", "np", "--for=condition=Ready", "pod/"+p, "--timeout=120s")
	}
	get := func() error {
		out, err := n.tryKubectl("", "exec", "-n", "np", "client", "--", "/testapp", "get", "http://server.np:8080/")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	testutil.Eventually(t, poll, time.Minute, "client reaches server with no policy", get)

	n.kubectl(t, `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-all
  namespace: np
spec:
  podSelector: {}
  policyTypes: [Ingress]
`, "apply", "-f", "-")
	testutil.Eventually(t, poll, time.Minute, "deny-all blocks client -> server", func() error {
		if get() == nil {
			return fmt.Errorf("still reachable")
		}
		return nil
	})

	n.kubectl(t, `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-client
  namespace: np
spec:
  podSelector:
    matchLabels: {app: server}
  ingress:
    - from:
        - podSelector:
            matchLabels: {app: client}
`, "apply", "-f", "-")
	testutil.Eventually(t, poll, time.Minute, "allow rule opens client -> server", get)
	n.kubectl(t, "", "delete", "namespace", "np", "--wait=false")
}

// testKill kill -9s the apiserver, kubelet and containerd in turn: each comes
// back, the node is Ready again, and the app answers all along while
// containerd and kubelet restart.
func (n *node) testKill(t *testing.T) {
	// The claim is about an app that answers: make sure it does first
	// (after an engine restart Traefik takes a moment to see its routes).
	testutil.Eventually(t, poll, 2*time.Minute, "app answers before the kills", func() error {
		_, err := getHello("hello.e2e.test")
		return err
	})
	stop := askAlong(t, "hello.e2e.test")
	var failures, requests int64
	watching := true
	for _, comp := range []string{"containerd", "kubelet", "kube-apiserver"} {
		if comp == "kube-apiserver" {
			// Traefik may drop routes while the apiserver is gone; the
			// app is only required to keep answering for the other two.
			failures, requests = stop()
			watching = false
		}
		before := n.component(t, comp)
		if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s: %v", comp, err)
		}
		testutil.Eventually(t, poll, 3*time.Minute, comp+" restarted and the node Ready", func() error {
			st, err := n.tryStatus()
			if err != nil {
				return err
			}
			for _, c := range st.Components {
				if c.Name == comp && (c.PID == before.PID || c.Restarts <= before.Restarts) {
					return fmt.Errorf("%s not restarted yet: %+v", comp, c)
				}
			}
			return nil
		})
	}
	if watching {
		failures, requests = stop()
	}
	if failures > 0 {
		t.Errorf("the app failed %d of %d requests while containerd and kubelet restarted", failures, requests)
	}
	t.Logf("the app answered %d requests while containerd and kubelet restarted", requests)
	if _, err := getHello("hello.e2e.test"); err != nil {
		testutil.Eventually(t, poll, time.Minute, "app answers after the apiserver restart", func() error {
			_, err := getHello("hello.e2e.test")
			return err
		})
	}
}

// askAlong asks the app at host through Traefik every 200 ms until the
// function it returns is called, which says how many requests failed, of
// how many; each failure is logged.
func askAlong(t *testing.T, host string) func() (failed, asked int64) {
	var failures, requests atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			requests.Add(1)
			if _, err := getHello(host); err != nil {
				failures.Add(1)
				t.Logf("app did not answer: %v", err)
			}
		}
	}()
	return func() (int64, int64) {
		close(stop)
		<-done
		return failures.Load(), requests.Load()
	}
}

func (n *node) component(t *testing.T, name string) componentStatus {
	t.Helper()
	for _, c := range n.status(t).Components {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no component %s", name)
	panic("unreachable")
}

func (n *node) testReset(t *testing.T) {
	out := n.run("reset", "--data-dir", dataDir)
	t.Logf("reset: %s", out)

	// No process of the node: none runs a payload binary, none carries the
	// supervisor's marker, none is in a pod's cgroup.
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if exe, err := os.Readlink(p + "/exe"); err == nil && strings.HasPrefix(exe, dataDir+"/") {
			t.Errorf("process %s still runs %s", filepath.Base(p), exe)
		}
		if env, err := os.ReadFile(p + "/environ"); err == nil && bytes.Contains(env, []byte("@"+dataDir+"/run")) {
			t.Errorf("process %s is still a supervised engine process", filepath.Base(p))
		}
		if cg, err := os.ReadFile(p + "/cgroup"); err == nil && bytes.Contains(cg, []byte("/kubepods")) {
			t.Errorf("process %s is still in a pod cgroup", filepath.Base(p))
		}
	}
	// No mount under the data dir (the kubelet dir is inside it).
	if m, err := reset.Mounts(dataDir); err != nil || len(m) > 0 {
		t.Errorf("mounts left: %v %v", m, err)
	}
	// No engine chains or rules.
	for _, family := range []string{"iptables-save", "ip6tables-save"} {
		save, err := exec.Command(family).Output()
		if err != nil {
			continue
		}
		if _, dirty := reset.WithoutChains(save); dirty {
			t.Errorf("%s still shows engine chains:\n%s", family, grep(save, "KUBE-", "CNI-", "FLANNEL", "flanneld"))
		}
	}
	if sets, err := exec.Command("ipset", "list", "-n").Output(); err == nil {
		for _, s := range strings.Fields(string(sets)) {
			if reset.IsEngineSet(s) {
				t.Errorf("ipset %s left", s)
			}
		}
	}
	for _, l := range reset.Links {
		if _, err := os.Stat("/sys/class/net/" + l); err == nil {
			t.Errorf("link %s left", l)
		}
	}
	if m, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods"); len(m) > 0 {
		t.Errorf("cgroups left: %v", m)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("data dir %s left: %v", dataDir, err)
	}
}

func grep(b []byte, words ...string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
