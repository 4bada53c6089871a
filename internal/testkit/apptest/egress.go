package apptest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// Addresses the egress flow serves its two services on: an address of
// this host the test adds to its loopback interface, which apps reach
// through their gateway (as they would a database or an API elsewhere), in
// a block reserved for tests that no network uses; and one nothing serves
// on.
const (
	TargetAddr = "198.18.123.1"
	otherAddr  = "198.18.123.2"
)

// Egress runs the user's way through an environment's egress with the app
// Flow left running in dev: two HTTP services the test starts, which the
// app calls (its /call), reachable as the environment's allow list says
// while the app runs. With r.SetHost, a rule by host name too, which
// follows the name to another address.
func Egress(t *testing.T, r Runner) {
	t.Helper()
	began := time.Now()
	ports := egressTargets(t)
	target := func(i int) string { return "http://" + net.JoinHostPort(TargetAddr, strconv.Itoa(ports[i])) + "/" }
	devHost := Host("dev")
	call := func(i int) error {
		body, err := r.Get(devHost, "/call?url="+url.QueryEscape(target(i)))
		if err == nil && !strings.Contains(body, fmt.Sprintf("egress target %d", i)) {
			err = fmt.Errorf("the app got %q", body)
		}
		return err
	}
	reaches := func(i int) func() error { return func() error { return call(i) } }
	blocked := func(i int) func() error {
		return func() error {
			if err := call(i); err == nil {
				return errors.New("the app reaches it")
			} else if !strings.Contains(err.Error(), "failed: ") {
				return fmt.Errorf("the app did not say why it cannot: %v", err)
			}
			return nil
		}
	}
	put := func(allow ...map[string]any) {
		t.Helper()
		r.CP.Must(t, http.StatusOK, "PUT", Base+"/environments/dev/egress", map[string]any{"allow": append([]map[string]any{}, allow...)}, nil)
	}
	cidr := TargetAddr + "/32"

	// Nothing out by default.
	for i := range ports {
		testutil.Eventually(t, poll, time.Minute, fmt.Sprintf("an environment without egress does not reach target %d", i), blocked(i))
	}
	r.CP.Must(t, http.StatusBadRequest, "PUT", Base+"/environments/dev/egress", map[string]any{"allow": []map[string]any{{"cidr": cidr, "ports": []int{70000}}}}, nil)

	// One port allowed, then the other instead, while the app runs.
	put(map[string]any{"cidr": cidr, "ports": []int{ports[0]}})
	var env struct {
		Egress []struct{ CIDR, Protocol string }
	}
	r.CP.Must(t, http.StatusOK, "GET", Base+"/environments/dev", nil, &env)
	if len(env.Egress) != 1 || env.Egress[0].CIDR != cidr || env.Egress[0].Protocol != "tcp" {
		t.Errorf("the environment shows egress %+v", env.Egress)
	}
	testutil.Eventually(t, poll, 2*time.Minute, "the app reaches the allowed target 0", reaches(0))
	testutil.Eventually(t, poll, time.Minute, "the app does not reach target 1", blocked(1))
	put(map[string]any{"cidr": cidr, "ports": []int{ports[1]}})
	testutil.Eventually(t, poll, 2*time.Minute, "the app reaches target 1, allowed now", reaches(1))
	testutil.Eventually(t, poll, time.Minute, "the app no longer reaches target 0", blocked(0))

	// By host name: resolved by the runner, and again when the name points
	// elsewhere.
	if r.SetHost != nil {
		const name = "egress-target.test"
		r.SetHost(t, name, TargetAddr)
		put(map[string]any{"host": name, "ports": []int{ports[0]}})
		testutil.Eventually(t, poll, 2*time.Minute, "the app reaches target 0, allowed by host name", reaches(0))
		testutil.Eventually(t, poll, time.Minute, "the app does not reach target 1 (not allowed by name)", blocked(1))
		r.SetHost(t, name, otherAddr)
		moved := time.Now()
		testutil.Eventually(t, poll, 2*time.Minute, "target 0 closed once its name points elsewhere", blocked(0))
		t.Logf("the rule followed its host name to another address in %v", time.Since(moved).Round(time.Second))
	}

	// Emptied: nothing out again.
	put()
	for i := range ports {
		testutil.Eventually(t, poll, 2*time.Minute, fmt.Sprintf("emptied egress: target %d closed", i), blocked(i))
	}
	testutil.Eventually(t, poll, 2*time.Minute, "dev still answers", Answers(r.Get, devHost, "orders says hello-dev"))
	t.Logf("egress: closed, opened to one port then the other, closed again, in %v", time.Since(began).Round(time.Second))
}

// egressTargets adds TargetAddr to this host's loopback interface and
// serves "egress target I" on two ports of it, until the test ends.
func egressTargets(t *testing.T) [2]int {
	t.Helper()
	onLoopback(t, TargetAddr)
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(TargetAddr, "0"))
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "egress target %d\n", i)
		}), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
	}
	return ports
}

// onLoopback adds addr to this host's loopback interface until the test ends.
func onLoopback(t *testing.T, addr string) {
	t.Helper()
	if out, err := exec.Command("ip", "addr", "add", addr+"/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("add %s to lo: %v: %s", addr, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "addr", "del", addr+"/32", "dev", "lo").CombinedOutput(); err != nil {
			t.Errorf("remove %s from lo: %v: %s", addr, err, out)
		}
	})
}
