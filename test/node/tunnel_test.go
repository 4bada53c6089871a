//go:build node

package node_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testutil"
)

// testTunnelWithEngine registers the node with a control plane, restarts
// `cameleer run` (SIGTERM, then install starts it again), and reads the
// engine's status through the tunnel.
func (n *node) testTunnelWithEngine(t *testing.T) {
	dir := t.TempDir()
	cpBin := filepath.Join(dir, "cameleer-controlplane")
	build := exec.Command("go", "build", "-o", cpBin, "github.com/cameleer/cameleer/cmd/cameleer-controlplane")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build control plane: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cp := exec.Command(cpBin, "serve", "--data-dir", filepath.Join(dir, "cp"), "--listen", addr, "--url", "https://"+addr)
	cp.Stdout, cp.Stderr = io.Discard, io.Discard
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cp.Process.Signal(os.Interrupt); cp.Wait() }()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	var admin string
	call := func(method, path string, body, out any) (int, error) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, "https://"+addr+path, rd)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode, nil
	}
	testutil.Eventually(t, poll, 30*time.Second, "control plane up", func() error {
		b, err := os.ReadFile(filepath.Join(dir, "cp", "admin.token"))
		if err != nil {
			return err
		}
		admin = strings.TrimSpace(string(b))
		_, err = call("GET", "/healthz", nil, nil)
		return err
	})
	if code, err := call("POST", "/api/v1/tenants", map[string]string{"name": "acme", "tier": "high"}, nil); code != http.StatusCreated {
		t.Fatalf("tenant: %d %v", code, err)
	}
	var ott struct{ Token string }
	call("POST", "/api/v1/tenants/acme/runner-tokens", nil, &ott)
	n.run("token", "redeem", ott.Token, "--data-dir", dataDir, "--name", "e2e-node")

	// Restart cameleer run so that it picks the identity up.
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

	var runners []struct {
		ID        string
		Connected bool
	}
	testutil.Eventually(t, poll, time.Minute, "the node's runner connected", func() error {
		call("GET", "/api/v1/tenants/acme/runners", nil, &runners)
		if len(runners) != 1 || !runners[0].Connected {
			return fmt.Errorf("runners %+v", runners)
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
	if code, err := call("GET", "/api/v1/tenants/acme/runners/"+runners[0].ID+"/proxy/status", nil, &st); code != http.StatusOK || err != nil {
		t.Fatalf("proxied status: %d %v", code, err)
	}
	if !st.Engine || !st.Node.Ready || len(st.Node.Components) < 10 {
		t.Errorf("the engine's status through the tunnel: %+v", st)
	}
}
