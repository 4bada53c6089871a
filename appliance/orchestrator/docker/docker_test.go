//go:build docker

package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cameleer/cameleer/appliance/imagebuild"
	"github.com/cameleer/cameleer/appliance/images"
	"github.com/cameleer/cameleer/appliance/orchestrator"
	"github.com/cameleer/cameleer/appliance/registry"
	"github.com/cameleer/cameleer/internal/testkit/dockertest"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

const poll = 500 * time.Millisecond

// TestDocker runs a Java app built with the payload's runtime and agent on
// a Docker Engine started for the test, in two environments, routed by
// the payload's Traefik, through deploy, stop, start, restart, a redeploy
// and a deploy that fails.
func TestDocker(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a Docker Engine")
	}
	buildDir := os.Getenv("CAMELEER_BUILD")
	if buildDir == "" {
		t.Skip("CAMELEER_BUILD is unset: run `make test-docker`, which builds the payload (images, agent) and points here")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	socket := dockertest.Start(t).Socket
	reg := startRegistry(t)
	traefik, _, err := images.OpenArchive(filepath.Join(buildDir, "payload", "images", "traefik.tar"))
	if err != nil {
		t.Fatal(err)
	}
	jre, _, err := images.OpenArchive(filepath.Join(buildDir, "payload", "images", "jre.tar"))
	if err != nil {
		t.Fatal(err)
	}
	agent, err := os.ReadFile(filepath.Join(buildDir, "payload", "agent", "cameleer-agent.jar"))
	if err != nil {
		t.Fatal(err)
	}
	appImage := func(class, src string) v1.Image {
		res, err := imagebuild.Image(imagebuild.Input{Base: jre, Agent: agent, App: testutil.JavaJar(t, class, src)})
		if err != nil {
			t.Fatal(err)
		}
		return res.Image
	}
	image := push(t, ctx, reg, "acme/orders", appImage("Orders", testutil.OrdersSource))
	broken := push(t, ctx, reg, "acme/broken", appImage("Broken", brokenSrc))
	caller := push(t, ctx, reg, "acme/caller", appImage("Caller", callerSrc))

	d := &Orchestrator{Socket: socket, AppsDomain: "apps.test", HTTPPort: testutil.FreePort(t), HTTPAddress: "127.0.0.1",
		TraefikImage: push(t, ctx, reg, "cameleer/traefik", traefik)}
	dev := orchestrator.App{Tenant: "acme", Environment: "dev", Name: "orders", Image: image, Replicas: 2, Port: 8080,
		Env: map[string]string{"GREETING": "hello-dev"}}
	const secret = "s3cr3t-api-token-42"
	prod := dev
	prod.Environment, prod.Replicas = "prod", 1
	prod.Env, prod.Secrets = map[string]string{"GREETING": "hello-prod"}, map[string]string{"API_TOKEN": secret}

	// A connection a request: Traefik balances each over the instances.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(host, path string) (int, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(d.HTTPPort)+path, nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	answers := func(a orchestrator.App, want string) func() error {
		return func() error {
			code, body, err := get(d.Host(a), "/")
			if err == nil && (code != http.StatusOK || !strings.Contains(body, want)) {
				err = fmt.Errorf("HTTP %d %q, want 200 with %q", code, body, want)
			}
			return err
		}
	}
	silent := func(a orchestrator.App) func() error {
		return func() error {
			if code, body, err := get(d.Host(a), "/"); err == nil && code == http.StatusOK {
				return fmt.Errorf("still answers: %q", body)
			}
			return nil
		}
	}
	ids := func(a orchestrator.App) []string {
		t.Helper()
		cli, err := d.connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ins, err := d.instances(ctx, cli, a)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, in := range ins {
			out = append(out, in.ID)
		}
		return out
	}
	// call runs the caller on an environment's network and returns what
	// it printed.
	call := func(env, url string) string {
		t.Helper()
		cli, err := d.connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := pullIfMissing(ctx, cli, caller); err != nil {
			t.Fatal(err)
		}
		c := containerSpec{Image: caller, Env: []string{"CALL_URL=" + url}}
		c.HostConfig.NetworkMode = envNetwork("acme", env)
		id, err := cli.createContainer(ctx, "caller-"+env, c)
		if err != nil {
			t.Fatal(err)
		}
		defer cli.removeContainer(ctx, id)
		exited, err := cli.watchExit(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := cli.startContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		var st exitStatus
		select {
		case st = <-exited:
		case <-time.After(time.Minute):
			st = exitStatus{code: -1, err: errors.New("still running after a minute")}
		}
		var out bytes.Buffer
		if err := cli.logs(ctx, id, -1, false, &out); err != nil {
			t.Fatal(err)
		}
		if st.code != 0 {
			t.Errorf("the caller in %s exited with %d (%v): %s", env, st.code, st.err, out.String())
		}
		return out.String()
	}
	status := func(a orchestrator.App, replicas, ready int) {
		t.Helper()
		st, err := d.Status(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if st.App != a.Name || st.Image != a.Image || st.Replicas != replicas || st.Ready != ready || len(st.Addresses) != ready {
			t.Errorf("status of %s/%s: %+v, want image %s, %d replicas, %d ready with their addresses", a.Environment, a.Name, st, a.Image, replicas, ready)
		}
	}

	// Deploy: the app answers through Traefik, its output has the agent's
	// line and its configuration.
	if err := d.Deploy(ctx, dev); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, poll, 2*time.Minute, "dev answers through Traefik", answers(dev, "orders says hello-dev, token-length=0"))
	var logs bytes.Buffer
	if err := d.Logs(ctx, dev, 100, false, &logs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cameleer-agent ", "orders listening on 8080, GREETING=hello-dev"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
	status(dev, 2, 2)
	if apps, err := d.List(ctx, "acme", "dev"); err != nil || !slices.Equal(apps, []string{"orders"}) {
		t.Errorf("list of acme/dev: %v %v, want [orders]", apps, err)
	}
	if code, body, err := get("nothing.dev.acme.apps.test", "/"); err != nil || code != http.StatusNotFound {
		t.Errorf("an unknown host: HTTP %d %q %v, want 404", code, body, err)
	}

	// Following the logs shows what comes, until its context ends.
	followCtx, stopFollowing := context.WithCancel(ctx)
	var followed testutil.SyncBuffer
	followDone := make(chan error, 1)
	go func() { followDone <- d.Logs(followCtx, dev, 0, true, &followed) }()
	testutil.Eventually(t, poll, time.Minute, "a request shows in the followed logs", func() error {
		get(d.Host(dev), "/followed")
		if !strings.Contains(followed.String(), "orders served /followed") {
			return fmt.Errorf("followed so far: %q", followed.String())
		}
		return nil
	})
	stopFollowing()
	if err := <-followDone; err != nil {
		t.Errorf("logs --follow ended with %v", err)
	}

	// Deploying what runs changes nothing.
	before := ids(dev)
	if err := d.Deploy(ctx, dev); err != nil {
		t.Fatal(err)
	}
	if after := ids(dev); !slices.Equal(before, after) {
		t.Errorf("deploying the same app again replaced its containers: %v, then %v", before, after)
	}

	// The same image digest in prod with prod's configuration and a
	// secret: both environments answer with their own.
	if err := d.Deploy(ctx, prod); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, poll, 2*time.Minute, "prod answers", answers(prod, fmt.Sprintf("orders says hello-prod, token-length=%d", len(secret))))
	testutil.Eventually(t, poll, time.Minute, "dev still answers", answers(dev, "orders says hello-dev, token-length=0"))
	status(prod, 1, 1)

	// An environment's apps reach each other by the app's name, as by the
	// Service named after it on Kubernetes: each environment its own.
	for env, want := range map[string]string{"dev": "orders says hello-dev", "prod": "orders says hello-prod"} {
		if out := call(env, "http://orders:8080/"); !strings.Contains(out, "caller got: "+want) {
			t.Errorf("calling orders by its name in %s: %q, want %q", env, out, want)
		}
	}

	// Stop, start, restart.
	if err := d.Stop(ctx, dev); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, poll, time.Minute, "stopped dev does not answer", silent(dev))
	status(dev, 0, 0)
	testutil.Eventually(t, poll, time.Minute, "prod answers while dev is stopped", answers(prod, "hello-prod"))
	// Traefik gone meanwhile (removed by hand, say): start brings it back.
	cli, err := d.connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.removeContainer(ctx, traefikName); err != nil {
		t.Fatal(err)
	}
	before = ids(dev)
	if err := d.Start(ctx, dev); err != nil {
		t.Fatal(err)
	}
	if after := ids(dev); !slices.Equal(before, after) {
		t.Errorf("start replaced the stopped containers: %v, then %v", before, after)
	}
	status(dev, 2, 2)
	testutil.Eventually(t, poll, 2*time.Minute, "started dev answers", answers(dev, "hello-dev"))

	// An instance a rollout renamed out of the way and left, as one that
	// broke off does, counts for neither status nor restart, and goes with
	// the restart.
	leftover, err := cli.createContainer(ctx, instanceName(dev, 0)+"-retired-leftover", d.appContainer(dev, appSpec(dev)).forInstance(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.startContainer(ctx, leftover); err != nil {
		t.Fatal(err)
	}
	status(dev, 2, 2)
	before = ids(dev)
	if err := d.Restart(ctx, dev); err != nil {
		t.Fatal(err)
	}
	after := ids(dev)
	if len(after) != 2 || slices.ContainsFunc(after, func(id string) bool { return slices.Contains(before, id) }) {
		t.Errorf("restart: containers %v, then %v, want two new ones", before, after)
	}
	testutil.Eventually(t, poll, 2*time.Minute, "restarted dev answers", answers(dev, "hello-dev"))

	// A redeploy with other configuration replaces the containers.
	dev.Env = map[string]string{"GREETING": "hello-again"}
	before = ids(dev)
	if err := d.Deploy(ctx, dev); err != nil {
		t.Fatal(err)
	}
	if after := ids(dev); len(after) != 2 || slices.ContainsFunc(after, func(id string) bool { return slices.Contains(before, id) }) {
		t.Errorf("redeploy: containers %v, then %v, want two new ones", before, after)
	}
	// New instances start with no restart policy (so a failing one stays
	// down, its exit code intact) and get theirs once ready; an instance
	// left without one (a rollout killed before it was ready) gets it at
	// the next rollout that keeps it.
	policies := func() {
		t.Helper()
		for _, id := range ids(dev) {
			if c, err := cli.inspectContainer(ctx, id); err != nil || c.HostConfig.RestartPolicy.Name != "unless-stopped" {
				t.Errorf("instance %s: restart policy %q (%v), want unless-stopped", id, c.HostConfig.RestartPolicy.Name, err)
			}
		}
	}
	policies()
	before = ids(dev)
	if err := cli.setRestartPolicy(ctx, before[0], "no"); err != nil {
		t.Fatal(err)
	}
	if err := d.Deploy(ctx, dev); err != nil {
		t.Fatal(err)
	}
	if after := ids(dev); !slices.Equal(before, after) {
		t.Errorf("the same deploy again replaced instances: %v, then %v", before, after)
	}
	policies()
	testutil.Eventually(t, poll, 2*time.Minute, "redeployed dev answers", answers(dev, "orders says hello-again"))

	// An image whose process exits fails the deploy, which says how, and
	// leaves the app as it was.
	before = ids(dev)
	failing := dev
	failing.Image = broken
	err = d.Deploy(ctx, failing)
	if err == nil || !strings.Contains(err.Error(), "exited with code 3") || !strings.Contains(err.Error(), "broken on purpose") {
		t.Errorf("deploying an app that exits: %v, want an error naming the exit code and its output", err)
	} else {
		t.Logf("deploying an app that exits: %v", err)
	}
	if after := ids(dev); !slices.Equal(before, after) {
		t.Errorf("a failed deploy changed the app's containers: %v, then %v", before, after)
	}
	status(dev, 2, 2)
	testutil.Eventually(t, poll, time.Minute, "dev answers after the failed deploy", answers(dev, "orders says hello-again"))

	// A Traefik that must be replaced but whose replacement cannot run
	// (its port is taken) leaves the old one routing.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := d.HTTPPort
	d.HTTPPort = busy.Addr().(*net.TCPAddr).Port
	err = d.Restart(ctx, dev)
	d.HTTPPort = port
	if err == nil || !strings.Contains(err.Error(), "the old one runs again") {
		t.Errorf("replacing traefik with one that cannot run: %v, want the old one back", err)
	} else {
		t.Logf("replacing traefik with one that cannot run: %v", err)
	}
	testutil.Eventually(t, poll, time.Minute, "dev answers through the old traefik", answers(dev, "orders says hello-again"))

	// Egress fences an environment's network, and makes it again, with a
	// way out or without, when its rules come or go: its instances,
	// running or stopped, stay on it with their names, and running ones
	// with their addresses, which Traefik goes on routing to.
	t.Cleanup(func() { dockertest.RemoveFences(t) })
	network := func(env string) networkInfo {
		t.Helper()
		n, err := cli.inspectNetwork(ctx, envNetwork("acme", env))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	open := []orchestrator.EgressRule{{To: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}, Ports: []int{80}, Protocol: "tcp"}}
	before = ids(prod)
	was := network("prod")
	if err := d.Egress(ctx, "acme", "prod", open); err != nil {
		t.Fatal(err)
	}
	if n := network("prod"); n.Internal || n.ID == was.ID || len(n.Containers) != len(was.Containers) {
		t.Errorf("prod's network with egress: %+v, was %+v", n, was)
	} else {
		for id, c := range was.Containers {
			if n.Containers[id].IPv4Address != c.IPv4Address {
				t.Errorf("container %s moved from %s to %s", id[:12], c.IPv4Address, n.Containers[id].IPv4Address)
			}
		}
	}
	if after := ids(prod); !slices.Equal(before, after) {
		t.Errorf("egress replaced prod's containers: %v, then %v", before, after)
	}
	testutil.Eventually(t, poll, time.Minute, "prod answers on its network made again", answers(prod, "hello-prod"))
	if out := call("prod", "http://orders:8080/"); !strings.Contains(out, "caller got: orders says hello-prod") {
		t.Errorf("calling orders by its name on prod's network made again: %q", out)
	}
	if err := d.Stop(ctx, dev); err != nil {
		t.Fatal(err)
	}
	for _, rules := range [][]orchestrator.EgressRule{open, nil} {
		if err := d.Egress(ctx, "acme", "dev", rules); err != nil {
			t.Fatal(err)
		}
		if n := network("dev"); n.Internal != (rules == nil) {
			t.Errorf("dev's network with egress %v is internal: %v", rules, n.Internal)
		}
	}
	if err := d.Start(ctx, dev); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, poll, 2*time.Minute, "dev, stopped while its network was made again twice, answers", answers(dev, "orders says hello-again"))
	if err := d.Egress(ctx, "acme", "prod", nil); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, poll, time.Minute, "prod answers on its internal network again", answers(prod, "hello-prod"))
	for _, env := range []string{"dev", "prod"} {
		if f := fenceOf("acme", env); !f.has(ctx, f.forward) || !f.has(ctx, f.input) {
			t.Errorf("%s's network has no fence", env)
		}
	}
	if fences := dockertest.Fences(t); slices.ContainsFunc(fences, func(r string) bool { return strings.Contains(r, "192.0.2.1") }) {
		t.Errorf("a fence opens 192.0.2.1 once the rules are gone: %q", fences)
	}
}

const brokenSrc = `public class Broken {
    public static void main(String[] args) {
        System.out.println("broken on purpose");
        System.exit(3);
    }
}
`

// callerSrc GETs CALL_URL and prints the answer, or the error and exits
// with 1.
const callerSrc = `import java.io.InputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;

public class Caller {
    public static void main(String[] args) {
        try (InputStream in = URI.create(System.getenv("CALL_URL")).toURL().openStream()) {
            System.out.println("caller got: " + new String(in.readAllBytes(), StandardCharsets.UTF_8).trim());
        } catch (Exception e) {
            System.out.println("caller failed: " + e);
            System.exit(1);
        }
        System.exit(0);
    }
}
`

// startRegistry serves the in-process registry on loopback, which Docker
// pulls from over plain HTTP.
func startRegistry(t *testing.T) string {
	ctx, cancel := context.WithCancel(context.Background())
	r, err := registry.New(ctx, registry.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("registry: %v", err)
		}
	})
	return l.Addr().String()
}

// push writes img to the registry and returns its reference by digest.
func push(t *testing.T, ctx context.Context, reg, repo string, img v1.Image) string {
	t.Helper()
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg+"/"+repo+":test", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return reg + "/" + repo + "@" + digest.String()
}
