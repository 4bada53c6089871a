//go:build node

package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cameleer/cameleer/appliance/imagebuild"
	"github.com/cameleer/cameleer/appliance/images"
	"github.com/cameleer/cameleer/appliance/kube"
	"github.com/cameleer/cameleer/appliance/orchestrator"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// javaApp compiles a small HTTP server that answers with its name and the
// GREETING from its environment, and packs it as a JAR.
func javaApp(t *testing.T) []byte { return testutil.JavaJar(t, "Orders", testutil.OrdersSource) }

// testAppRuntime builds a Java app into an image with the agent, pushes it
// to the node's registry, and runs it in two environments through the
// orchestrator, routed by Traefik.
func (n *node) testAppRuntime(t *testing.T) {
	payload := filepath.Join(dataDir, "bin", "current")
	base, _, err := images.OpenArchive(filepath.Join(payload, "images", "jre.tar"))
	if err != nil {
		t.Fatal(err)
	}
	agent, err := os.ReadFile(filepath.Join(payload, "agent", "cameleer-agent.jar"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := imagebuild.Image(imagebuild.Input{Base: base, Agent: agent, App: javaApp(t)})
	if err != nil {
		t.Fatal(err)
	}
	digest, err := res.Image.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference("127.0.0.1:5000/acme/orders:build-1", name.Insecure)
	if err := remote.Write(ref, res.Image); err != nil {
		t.Fatalf("push: %v", err)
	}
	image := "cameleer.local/acme/orders@" + digest.String()

	var cfg struct{ NodeIP string }
	b, _ := os.ReadFile(filepath.Join(dataDir, "config.json"))
	json.Unmarshal(b, &cfg)
	k := &orchestrator.Kubernetes{Kubectl: kube.Kubectl{Path: filepath.Join(payload, "bin", "kubectl"), Kubeconfig: filepath.Join(dataDir, "kubeconfig.yaml")},
		NodeIP: cfg.NodeIP, AppsDomain: "apps.test"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dev := orchestrator.App{Tenant: "acme", Environment: "dev", Name: "orders", Image: image, Port: 8080, Env: map[string]string{"GREETING": "hello-dev"}}
	const secret = "s3cr3t-api-token-42"
	prod := dev
	prod.Environment, prod.Env = "prod", map[string]string{"GREETING": "hello-prod"}
	prod.Secrets = map[string]string{"API_TOKEN": secret}
	if err := k.Deploy(ctx, dev); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, poll, 2*time.Minute, "dev answers through Traefik", answers(k.Host(dev), "orders says hello-dev, token-length=0"))
	var logs bytes.Buffer
	if err := k.Logs(ctx, dev, 100, false, &logs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "cameleer-agent ") || !strings.Contains(logs.String(), "orders listening") {
		t.Errorf("logs lack the agent's line or the app's:\n%s", logs.String())
	}

	// The same image digest in prod, with prod's config: no rebuild.
	if err := k.Deploy(ctx, prod); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, poll, 2*time.Minute, "prod answers", answers(k.Host(prod), fmt.Sprintf("orders says hello-prod, token-length=%d", len(secret))))
	// The secret reaches the app through a Secret, not the Deployment.
	spec := n.kubectl(t, "", "get", "deployment", "orders", "-n", orchestrator.Namespace("acme", "prod"), "-o", "json")
	if strings.Contains(spec, secret) || !strings.Contains(spec, "secretKeyRef") {
		t.Error("the secret's value is in the Deployment, or it does not come from the Secret")
	}
	sd, _ := k.Status(ctx, dev)
	sp, _ := k.Status(ctx, prod)
	if sd.Image != image || sp.Image != image || sd.Ready != 1 || sp.Ready != 1 {
		t.Errorf("status dev %+v prod %+v, want image %s ready", sd, sp, image)
	}
	if apps, err := k.List(ctx, "acme", "dev"); err != nil || len(apps) != 1 || apps[0] != "orders" {
		t.Errorf("list: %v %v", apps, err)
	}

	// Stop, start, restart.
	if err := k.Stop(ctx, dev); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, poll, time.Minute, "stopped dev does not answer", func() error {
		if answers(k.Host(dev), "orders says")() == nil {
			return fmt.Errorf("still answering")
		}
		return nil
	})
	if st, _ := k.Status(ctx, dev); st.Replicas != 0 {
		t.Errorf("stopped status %+v", st)
	}
	if err := k.Start(ctx, dev); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, poll, 2*time.Minute, "started dev answers", answers(k.Host(dev), "hello-dev"))
	if err := k.Restart(ctx, dev); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, poll, 2*time.Minute, "restarted dev answers", answers(k.Host(dev), "hello-dev"))

	// The environment is fenced: a pod elsewhere cannot reach the app.
	podIP := strings.TrimSpace(n.kubectl(t, "", "get", "pods", "-n", orchestrator.Namespace("acme", "dev"), "-l", "app.kubernetes.io/name=orders",
		"-o", "jsonpath={.items[0].status.podIP}"))
	out, err := n.tryKubectl("", "run", "intruder", "--image="+testImage, "--restart=Never", "--attach", "--rm", "-q", "--", "get", "http://"+podIP+":8080/")
	// testapp's own error, not kubectl's: the pod ran and its request
	// got nowhere.
	if err == nil || !strings.Contains(out, "testapp: ") {
		t.Errorf("a pod of another namespace: %v\n%s", err, out)
	}
}
