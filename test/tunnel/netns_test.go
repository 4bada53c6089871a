package tunnel_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// TestRunnerBehindFirewall runs the runner in a network namespace whose
// firewall drops every inbound new connection: the tunnel works all the
// same, and comes back by itself after the link is cut for a minute.
func TestRunnerBehindFirewall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both binaries, takes over a minute")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	n := os.Getpid() % 10000
	ns, hostIf, nsIf := fmt.Sprintf("cmlr-t%d", n), fmt.Sprintf("cmh%d", n), fmt.Sprintf("cmr%d", n)
	const hostIP, runnerIP = "10.213.0.1", "10.213.0.2"
	ip(t, "netns", "add", ns)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", ns).Run()
		exec.Command("ip", "link", "del", hostIf).Run()
	})
	ip(t, "link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	ip(t, "link", "set", nsIf, "netns", ns)
	ip(t, "addr", "add", hostIP+"/30", "dev", hostIf)
	ip(t, "link", "set", hostIf, "up")
	ip(t, "-n", ns, "addr", "add", runnerIP+"/30", "dev", nsIf)
	ip(t, "-n", ns, "link", "set", nsIf, "up")
	ip(t, "-n", ns, "link", "set", "lo", "up")
	for _, rule := range [][]string{
		{"-A", "INPUT", "-i", "lo", "-j", "ACCEPT"},
		{"-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
		{"-P", "INPUT", "DROP"},
	} {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "iptables"}, rule...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables %v: %v: %s", rule, err, out)
		}
	}

	l, err := net.Listen("tcp", hostIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e := newEnv(t, addr, hostIP)
	e.tenant("acme", "mid")
	var ott struct{ Token string }
	e.call("POST", "/api/v1/tenants/acme/runner-tokens", e.admin, nil, &ott)
	// The runner reaches the control plane through an HTTP CONNECT proxy,
	// as from behind a corporate firewall.
	proxyAddr, connects := connectProxy(t, hostIP)
	inNS := func(args ...string) *exec.Cmd {
		cmd := exec.Command("ip", append([]string{"netns", "exec", ns, e.runBin}, args...)...)
		cmd.Env = append(os.Environ(), "HTTPS_PROXY=http://"+proxyAddr)
		return cmd
	}
	runnerDir := e.dir + "/runner"
	if out, err := inNS("token", "redeem", ott.Token, "--data-dir", runnerDir, "--name", "fenced").CombinedOutput(); err != nil {
		t.Fatalf("redeem in the namespace: %v: %s", err, out)
	}
	run := inNS("run", "--no-engine", "--data-dir", runnerDir)
	run.Stdout, run.Stderr = &lockedWriter{&e.runnerMu, &e.runLog}, &lockedWriter{&e.runnerMu, &e.runLog}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Process.Kill(); run.Wait() })

	var id string
	connected := func(want bool) func() error {
		return func() error {
			var rs []runnerView
			e.call("GET", "/api/v1/tenants/acme/runners", e.admin, nil, &rs)
			if len(rs) != 1 || rs[0].Connected != want {
				return fmt.Errorf("runners %+v, want connected=%v", rs, want)
			}
			id = rs[0].ID
			return nil
		}
	}
	testutil.Eventually(t, poll, 30*time.Second, "fenced runner connected", connected(true))
	var st struct{ RunnerID string }
	if code := e.call("GET", "/api/v1/tenants/acme/runners/"+id+"/proxy/status", e.admin, nil, &st); code != http.StatusOK || st.RunnerID != id {
		t.Fatalf("proxied status through the firewall: %d %+v", code, st)
	}
	if connects.Load() < 2 {
		t.Errorf("%d CONNECTs through the proxy, want the enrollment's and the tunnel's", connects.Load())
	}
	// Nothing gets in: a new connection to the runner's host goes nowhere.
	if c, err := net.DialTimeout("tcp", runnerIP+":22", 2*time.Second); err == nil {
		c.Close()
		t.Fatal("the runner's namespace accepted an inbound connection")
	}

	// Cut the link for 60 s; the runner comes back by itself.
	ip(t, "link", "set", hostIf, "down")
	cut := time.Now()
	testutil.Eventually(t, poll, 45*time.Second, "control plane notices the dead tunnel", connected(false))
	t.Logf("control plane noticed the cut after %.1fs", time.Since(cut).Seconds())
	time.Sleep(time.Until(cut.Add(60 * time.Second)))
	ip(t, "link", "set", hostIf, "up")
	restored := time.Now()
	testutil.Eventually(t, poll, 60*time.Second, "runner back after the link returns", connected(true))
	t.Logf("runner back %.1fs after the link returned", time.Since(restored).Seconds())
	if code := e.call("GET", "/api/v1/tenants/acme/runners/"+id+"/proxy/status", e.admin, nil, &st); code != http.StatusOK {
		t.Errorf("proxied status after the cut: %d", code)
	}
}

// connectProxy is a minimal HTTP CONNECT proxy on host; it counts tunnels.
func connectProxy(t *testing.T, host string) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect {
					io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
					return
				}
				up, err := net.DialTimeout("tcp", req.Host, 5*time.Second)
				if err != nil {
					io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
					return
				}
				defer up.Close()
				n.Add(1)
				io.WriteString(c, "HTTP/1.1 200 Connection Established\r\n\r\n")
				go io.Copy(up, br)
				io.Copy(c, up)
			}()
		}
	}()
	return l.Addr().String(), &n
}
