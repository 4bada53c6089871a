package tunnel_test

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testutil"
)

// TestCertificateRotation runs runners with 6-second certificates: a
// connected runner renews before expiry and reconnects with the new one;
// a runner left offline past expiry is refused.
func TestCertificateRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both binaries")
	}
	e := newEnvArgs(t, freeAddr(t), nil, []string{"--runner-cert-lifetime", "6s"})
	if code := e.call("POST", "/api/v1/tenants", e.admin, map[string]string{"name": "acme", "tier": "low"}, nil); code != http.StatusCreated {
		t.Fatalf("tenant: %d", code)
	}
	register := func(name string) string {
		var ott struct{ Token string }
		e.call("POST", "/api/v1/tenants/acme/runner-tokens", e.admin, nil, &ott)
		dir := filepath.Join(e.dir, name)
		if out, err := e.cameleer("token", "redeem", ott.Token, "--data-dir", dir, "--name", name); err != nil {
			t.Fatalf("redeem: %v %s", err, out)
		}
		return dir
	}
	connected := func(name string) func() error {
		return func() error {
			var rs []runnerView
			e.call("GET", "/api/v1/tenants/acme/runners", e.admin, nil, &rs)
			for _, r := range rs {
				if r.Name == name && r.Connected {
					return nil
				}
			}
			return fmt.Errorf("%s not connected: %+v", name, rs)
		}
	}

	// Renewal while connected.
	live := register("live")
	firstCert := testutil.ReadCert(t, filepath.Join(live, "controlplane", "client.crt"))
	first, firstExpiry := firstCert.SerialNumber.String(), firstCert.NotAfter
	run := exec.Command(e.runBin, "run", "--no-engine", "--data-dir", live)
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Process.Kill(); run.Wait() })
	testutil.Eventually(t, poll, 20*time.Second, "live connected", connected("live"))
	testutil.Eventually(t, poll, 20*time.Second, "certificate renewed", func() error {
		if s := testutil.ReadCert(t, filepath.Join(live, "controlplane", "client.crt")).SerialNumber.String(); s == first {
			return fmt.Errorf("still serial %s", s)
		}
		return nil
	})
	// Past the first certificate's expiry, a reconnect uses the new one.
	time.Sleep(time.Until(firstExpiry.Add(time.Second)))
	e.stopCP()
	e.startCP()
	testutil.Eventually(t, poll, 20*time.Second, "live reconnects with its renewed certificate", connected("live"))

	// An expired certificate is refused.
	offline := register("offline")
	expiry := testutil.ReadCert(t, filepath.Join(offline, "controlplane", "client.crt")).NotAfter
	time.Sleep(time.Until(expiry.Add(time.Second)))
	late := exec.Command(e.runBin, "run", "--no-engine", "--data-dir", offline)
	var log lockedWriter
	var buf strings.Builder
	log.mu, log.w = &e.runnerMu, &buf
	late.Stdout, late.Stderr = &log, &log
	if err := late.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { late.Process.Kill(); late.Wait() })
	testutil.Eventually(t, poll, 30*time.Second, "expired certificate refused", func() error {
		e.runnerMu.Lock()
		defer e.runnerMu.Unlock()
		if !strings.Contains(buf.String(), "certificate") || !strings.Contains(buf.String(), "tunnel down") {
			return fmt.Errorf("runner log:\n%s", buf.String())
		}
		return nil
	})
	if connected("offline")() == nil {
		t.Error("a runner with an expired certificate connected")
	}
}
