//go:build node

package node_test

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/cptest"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// testTunnelWithEngine registers the node with a control plane, restarts
// `cameleer run` (SIGTERM, then install starts it again), and reads the
// engine's status through the tunnel. The control plane stays up for the
// tests that follow (n.cp).
func (n *node) testTunnelWithEngine(t *testing.T) {
	n.cp = cptest.Start(t, n.t, "--runner-binary", n.bin)
	call := n.cp.Call
	if code, err := call("POST", "/api/v1/tenants", map[string]string{"name": "acme", "tier": "high"}, nil); code != http.StatusCreated {
		t.Fatalf("tenant: %d %v", code, err)
	}
	var ott struct{ Token string }
	call("POST", "/api/v1/tenants/acme/runner-tokens", nil, &ott)
	n.run("token", "redeem", ott.Token, "--data-dir", dataDir, "--name", "e2e-node")
	var runners []struct {
		ID        string
		Connected bool
	}
	connected := func() error {
		call("GET", "/api/v1/tenants/acme/runners", nil, &runners)
		if len(runners) != 1 || !runners[0].Connected {
			return fmt.Errorf("runners %+v", runners)
		}
		return nil
	}
	// The running node picks its registration up by itself.
	testutil.Eventually(t, poll, time.Minute, "the running node connected after redeem", connected)

	// And connects again after a restart of cameleer run.
	before := n.status(t)
	if err := syscall.Kill(before.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, poll, 2*time.Minute, "cameleer run stopped", func() error {
		if syscall.Kill(before.PID, 0) == nil {
			return fmt.Errorf("pid %d still runs", before.PID)
		}
		return nil
	})
	out := n.run("install", "--data-dir", dataDir)
	if !strings.Contains(out, "is Ready") {
		t.Fatalf("install after stop:\n%s", out)
	}

	testutil.Eventually(t, poll, time.Minute, "the node's runner connected after the restart", connected)
	// The control plane counts a runner connected once the TLS handshake is
	// done; the runner, once its first ping came back.
	testutil.Eventually(t, poll, 30*time.Second, "cameleer status shows the link", func() error {
		st, err := n.tryStatus()
		if err != nil {
			return err
		}
		if !st.ControlPlane.Connected || st.ControlPlane.RunnerID != runners[0].ID {
			return fmt.Errorf("control plane %+v, want connected as %s", st.ControlPlane, runners[0].ID)
		}
		return nil
	})
	var st struct {
		Engine bool
		Node   struct {
			Ready      bool
			Components []struct{ Name string }
		}
	}
	testutil.Eventually(t, poll, 30*time.Second, "status proxied through the tunnel", func() error {
		if code, err := call("GET", "/api/v1/tenants/acme/runners/"+runners[0].ID+"/proxy/status", nil, &st); code != http.StatusOK || err != nil {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	if !st.Engine || !st.Node.Ready || len(st.Node.Components) < 10 {
		t.Errorf("the engine's status through the tunnel: %+v", st)
	}
}
