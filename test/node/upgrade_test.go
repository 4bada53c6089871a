//go:build node

package node_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// testUpgrade has the control plane move the running node, with its apps,
// to another build it serves (scripts/upgrade-binaries.sh: another version
// stamp, kine changed) while an app is asked through Traefik all along;
// then `cameleer upgrade` to a build whose kine cannot start: the node
// rolls back by itself to the one before, says why in `cameleer status`
// and to the control plane, and the app answers; then back to the build
// under test, which leaves bin/cameleer as it was.
func (n *node) testUpgrade(t *testing.T) {
	dir := os.Getenv("CAMELEER_UPGRADE_DIR")
	if dir == "" {
		t.Skip("CAMELEER_UPGRADE_DIR is not set (make test-node makes the binaries and sets it)")
	}
	next, broken := filepath.Join(dir, "cameleer-next"), filepath.Join(dir, "cameleer-broken")
	underTest := filepath.Join(t.TempDir(), "cameleer")
	if out, err := exec.Command("cp", n.bin, underTest).CombinedOutput(); err != nil {
		t.Fatalf("keep the build under test: %v %s", err, out)
	}
	testutil.Eventually(t, poll, 2*time.Minute, "the app answers before the upgrade", func() error {
		_, err := getHello("hello.e2e.test")
		return err
	})
	upgrade := func(bin, timeout string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, n.bin, "upgrade", "--data-dir", dataDir, "--binary", bin, "--timeout", timeout).CombinedOutput()
		return string(out), err
	}
	version := func(bin string) string {
		out, _ := exec.Command(bin, "version").Output()
		v, _, _ := strings.Cut(strings.TrimPrefix(string(out), "cameleer "), " ")
		return v
	}
	running := func() string {
		pid := n.status(t).PID
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		return version(strings.TrimSuffix(exe, " (deleted)"))
	}

	var runners []struct{ ID string }
	n.cp.Must(t, http.StatusOK, "GET", "/api/v1/tenants/acme/runners", nil, &runners)
	runner := "/api/v1/tenants/acme/runners/" + runners[0].ID
	type runnerStatus struct {
		Version string
		Node    struct {
			LastUpgrade struct{ From, To, Result, Reason string }
		}
	}
	var proxied runnerStatus
	status := func() {
		proxied = runnerStatus{}
		n.cp.Call("GET", runner+"/proxy/status", nil, &proxied)
	}
	n.cp.Stop()
	n.cp.RestartWith(t, "--runner-binary", next)
	testutil.Eventually(t, poll, time.Minute, "the runner back after the control plane's restart", func() error {
		status()
		if proxied.Version == "" {
			return fmt.Errorf("no status")
		}
		return nil
	})
	if code, _ := n.cp.Call("POST", runner+"/upgrade", map[string]string{"version": "v0.0.1"}, nil); code != http.StatusConflict {
		t.Errorf("an upgrade to a version the control plane does not serve: %d, want 409", code)
	}
	stop := askAlong(t, "hello.e2e.test")
	start := time.Now()
	var begun struct{ From, To string }
	n.cp.Must(t, http.StatusAccepted, "POST", runner+"/upgrade", map[string]string{"version": version(next)}, &begun)
	if begun.To != version(next) || begun.From != version(n.bin) {
		t.Errorf("the upgrade begun: %+v", begun)
	}
	testutil.Eventually(t, poll, 10*time.Minute, "the runner upgraded, as the control plane sees it", func() error {
		status()
		if u := proxied.Node.LastUpgrade; u.Result != "upgraded" || u.To != version(next) || proxied.Version != version(next) {
			return fmt.Errorf("%+v", proxied)
		}
		return nil
	})
	took := time.Since(start)
	failures, requests := stop()
	if got := running(); got != version(next) {
		t.Errorf("running %s after the upgrade, want %s", got, version(next))
	}
	t.Logf("upgrade to the next build, from the control plane: %v; the app failed %d of %d requests meanwhile", took.Round(time.Second), failures, requests)

	stop = askAlong(t, "hello.e2e.test")
	start = time.Now()
	out, err := upgrade(broken, "90s")
	took = time.Since(start)
	failures, requests = stop()
	if err == nil || !strings.Contains(out, "Rolled back to "+version(next)) || !strings.Contains(out, "kine") {
		t.Fatalf("upgrade to a broken build: %v, want it rolled back, saying kine\n%s", err, out)
	}
	if got := running(); got != version(next) {
		t.Errorf("running %s after the rollback, want %s", got, version(next))
	}
	t.Logf("upgrade to a broken build, rolled back: %v; the app failed %d of %d requests meanwhile", took.Round(time.Second), failures, requests)
	if st := n.run("status", "--data-dir", dataDir); !strings.Contains(st, "last upgrade: "+version(next)+" -> "+version(broken)+": rolled back") {
		t.Errorf("status does not say the rollback:\n%s", st)
	}
	testutil.Eventually(t, poll, time.Minute, "the control plane sees the rollback", func() error {
		status()
		if u := proxied.Node.LastUpgrade; u.Result != "rolled back" || !strings.Contains(u.Reason, "kine") || proxied.Version != version(next) {
			return fmt.Errorf("%+v", proxied)
		}
		return nil
	})
	testutil.Eventually(t, poll, 2*time.Minute, "the app answers after the rollback", func() error {
		_, err := getHello("hello.e2e.test")
		return err
	})

	if out, err := upgrade(underTest, "5m"); err != nil {
		t.Fatalf("back to the build under test: %v\n%s", err, out)
	}
	n.cp.Stop()
	n.cp.RestartWith(t, "--runner-binary", n.bin)
	if got := running(); got != version(n.bin) {
		t.Errorf("running %s, want the build under test %s", got, version(n.bin))
	}
}
