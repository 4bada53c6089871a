//go:build console

// Package console_test runs the console end to end in a real browser
// (web/e2e/console.e2e.mjs: Debian's Chromium driven by playwright-core)
// against a real control plane and a real runner on a Docker Engine the
// test starts. The browser script asks this test, on its stdout, to do
// what a user does on a host or what is not the console's to do, one line
// each, answered "OK" (or "FAILED") on the script's stdin:
//
//   - "REDEEM <token>" registers a runner with the token the page showed
//     and starts it;
//   - "EGRESS <env>" waits until the runner applied the egress the page
//     gave the environment (to reach the downstream service the
//     deliveries post to, apptest.Downstream);
//   - "DOWNSTREAM up" starts that service, down until then.
//
// Needs root, docker.io, chromium and Maven (scripts/deps.sh), and
// CAMELEER_BIN: `make test-console`.
package console_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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

func TestConsole(t *testing.T) {
	bin := os.Getenv("CAMELEER_BIN")
	if bin == "" || os.Geteuid() != 0 {
		t.Fatal("needs root and CAMELEER_BIN: run `make test-console`")
	}
	dockertest.RegistryFree(t)
	daemon := dockertest.Start(t)
	t.Cleanup(func() { dockertest.RemoveFences(t) })
	cp := cptest.Start(t, t)
	cp.Must(t, http.StatusCreated, "POST", "/api/v1/tenants", map[string]string{"name": apptest.Tenant, "tier": "high"}, nil)

	dir := t.TempDir()
	jar := filepath.Join(dir, "orders.jar")
	if err := os.WriteFile(jar, testutil.JavaJar(t, "Orders", testutil.OrdersSource), 0o644); err != nil {
		t.Fatal(err)
	}
	httpPort := testutil.FreePort(t)
	// A real Camel app (test/apps, built with Maven) whose deliveries
	// fail while the downstream is down: what the exchanges and the
	// route diagrams show.
	camelJar := camelapps.Build(t, camelapps.MainNewest)
	ds := apptest.NewDownstream(t)

	script := exec.Command("node", "e2e/console.e2e.mjs")
	script.Dir = "../../web"
	script.Env = append(os.Environ(), "CONSOLE_URL=https://"+cp.Addr, "ADMIN_TOKEN="+cp.Admin, "CP_CA="+cp.CAFile(),
		"APP_JAR="+jar, "APP_HTTP_PORT="+strconv.Itoa(httpPort), "CAMEL_JAR="+camelJar, "DOWNSTREAM_URL="+ds.URL())
	stdin, err := script.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := script.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	script.Stderr = os.Stderr
	if err := script.Start(); err != nil {
		t.Fatalf("node: %v", err)
	}
	answer := func(err error) {
		if err != nil {
			t.Error(err)
			fmt.Fprintln(stdin, "FAILED")
			return
		}
		fmt.Fprintln(stdin, "OK")
	}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		line := lines.Text()
		verb, arg, _ := strings.Cut(line, " ")
		switch verb {
		case "REDEEM":
			runnerDir := filepath.Join(dir, "runner")
			if out, err := exec.Command(bin, "token", "redeem", arg, "--data-dir", runnerDir, "--name", "edge-1").CombinedOutput(); err != nil {
				answer(fmt.Errorf("token redeem: %v\n%s", err, out))
				continue
			}
			daemon.StartRunner(t, filepath.Join(dir, "runner.log"), exec.Command(bin, "run", "--orchestrator", "docker",
				"--docker-socket", daemon.Socket, "--http-port", strconv.Itoa(httpPort), "--data-dir", runnerDir))
			answer(nil)
		case "EGRESS":
			// Answered once the runner applied the egress the page saved:
			// it makes the environment's network again, and the browser
			// drops requests in flight while the host's interfaces change.
			answer(waitLog(filepath.Join(dir, "runner.log"), `msg="egress applied" component=egress env=`+arg+` revision=1 rules=1`))
		case "DOWNSTREAM":
			ds.Up(t)
			answer(nil)
		default:
			t.Log(line)
		}
	}
	io.Copy(io.Discard, stdout)
	if err := script.Wait(); err != nil {
		t.Fatalf("the browser run failed: %v", err)
	}
}

// waitLog waits up to a minute for a line of file that holds s.
func waitLog(file, s string) error {
	for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if b, err := os.ReadFile(file); err == nil && strings.Contains(string(b), s) {
			return nil
		}
	}
	return fmt.Errorf("%s: no %q after a minute", file, s)
}
