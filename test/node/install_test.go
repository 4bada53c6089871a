//go:build node

package node_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/cptest"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// testCurlInstall makes the bare host (reset before) a runner with the one
// command a one-time token comes with, `curl -sfL CP/install.sh | sh -s -
// --token OTT`, as it is given, with only --bin-dir and --data-dir added to
// keep the test's files its own. The host trusts the control plane's CA
// for the first fetch (CURL_CA_BUNDLE stands for a company CA in its
// store); everything after is pinned to the token's. Then the same command
// again: nothing is downloaded, redeemed or restarted twice.
func (n *node) testCurlInstall(t *testing.T) {
	if _, err := os.Stat(dataDir); err == nil {
		t.Fatalf("the host is not bare: %s is there", dataDir)
	}
	if n.cp == nil {
		n.cp = cptest.Start(t, n.t, "--runner-binary", n.bin)
	}
	n.cp.Must(t, http.StatusCreated, "POST", "/api/v1/tenants", map[string]string{"name": "bare", "tier": "low"}, nil)
	var ott struct{ Token, Install string }
	n.cp.Must(t, http.StatusCreated, "POST", "/api/v1/tenants/bare/runner-tokens", nil, &ott)
	if !strings.HasPrefix(ott.Install, "curl -sfL https://"+n.cp.Addr+"/install.sh | sh -s - --token ") {
		t.Fatalf("the install command: %q", ott.Install)
	}
	binDir := t.TempDir()
	command := ott.Install + " --bin-dir " + binDir + " --data-dir " + dataDir + " --name bare-host"
	install := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", "-c", command)
		// A proxy that answers nothing, as one that must not be used for
		// the node's own traffic: the control plane is around it.
		cmd.Env = append(os.Environ(), "CURL_CA_BUNDLE="+n.cp.CAFile(), "HTTPS_PROXY=http://127.0.0.1:9", "NO_PROXY=127.0.0.1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", command, err, out)
		}
		return string(out)
	}
	var runners []struct {
		ID, Name  string
		Connected bool
	}
	connected := func() error {
		n.cp.Call("GET", "/api/v1/tenants/bare/runners", nil, &runners)
		if len(runners) != 1 || !runners[0].Connected {
			return fmt.Errorf("runners %+v", runners)
		}
		return nil
	}

	start := time.Now()
	out := install()
	ready := time.Since(start)
	testutil.Eventually(t, 100*time.Millisecond, time.Minute, "the runner connected", connected)
	t.Logf("curl | sh on a bare host: node Ready after %v, runner connected after %v", ready.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	for _, want := range []string{"Downloading cameleer", "Registered as runner bare-host", "is Ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("install says no %q:\n%s", want, out)
		}
	}
	got, err := os.ReadFile(filepath.Join(binDir, "cameleer"))
	want, _ := os.ReadFile(n.bin)
	if err != nil || string(got) != string(want) {
		t.Errorf("the installed cameleer is not the control plane's (%v)", err)
	}
	before := n.status(t)
	// The proxy install was run with reaches the components (containerd
	// here), with the node's own networks around it.
	for _, c := range before.Components {
		if c.Name != "containerd" {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", c.PID))
		if err != nil || !bytes.Contains(env, []byte("\x00HTTPS_PROXY=http://127.0.0.1:9\x00")) ||
			!bytes.Contains(env, []byte("\x00NO_PROXY=127.0.0.1,localhost,")) || !bytes.Contains(env, []byte(",10.43.0.0/16,.svc,.cluster.local,cameleer.local\x00")) {
			t.Errorf("containerd's environment has not the proxy (%v):\n%s", err, bytes.ReplaceAll(env, []byte{0}, []byte{'\n'}))
		}
	}

	out = install()
	for _, want := range []string{"is in " + binDir + " already", "redeemed here already", "already running"} {
		if !strings.Contains(out, want) {
			t.Errorf("the same command again says no %q:\n%s", want, out)
		}
	}
	if after := n.status(t); after.PID != before.PID {
		t.Errorf("the same command again restarted cameleer run: pid %d, was %d", after.PID, before.PID)
	}
	if err := connected(); err != nil || runners[0].Name != "bare-host" {
		t.Errorf("after the same command again: %v %+v, want one runner, bare-host", err, runners)
	}
}

// testQuickstart runs README's step 1 after the build, scripts/quickstart.sh,
// on the bare host: a control plane of its own, the host made its runner by
// curl | sh, the sample app built with Maven and deployed; its answer is
// what the script prints. The control plane is stopped by its PID file.
func (n *node) testQuickstart(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "cameleer-controlplane")); err != nil {
		t.Skip("no bin/cameleer-controlplane: make builds it")
	}
	cpDir := filepath.Join(t.TempDir(), "cp")
	t.Cleanup(func() {
		if pid, err := os.ReadFile(cpDir + ".pid"); err == nil {
			exec.Command("kill", strings.TrimSpace(string(pid))).Run()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "quickstart.sh"))
	cmd.Env = append(os.Environ(), "CP_ADDR=127.0.0.1:"+strconv.Itoa(testutil.FreePort(t)), "CP_DIR="+cpDir, "DATA_DIR="+dataDir, "TENANT=quick")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
	t.Logf("quickstart after the build: %v", time.Since(start).Round(100*time.Millisecond))
	for _, want := range []string{"curl -sfL https://127.0.0.1:", "curl http://hello.dev.quick.localhost/", "Hello from Apache Camel on Cameleer, exchange "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("quickstart says no %q:\n%s", want, out)
		}
	}
}
