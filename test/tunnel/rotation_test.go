package tunnel_test

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func serial(t *testing.T, path string) (string, time.Time) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String(), c.NotAfter
}

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
	first, firstExpiry := serial(t, filepath.Join(live, "controlplane", "client.crt"))
	run := exec.Command(e.runBin, "run", "--no-engine", "--data-dir", live)
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Process.Kill(); run.Wait() })
	eventually(t, 20*time.Second, "live connected", connected("live"))
	eventually(t, 20*time.Second, "certificate renewed", func() error {
		if s, _ := serial(t, filepath.Join(live, "controlplane", "client.crt")); s == first {
			return fmt.Errorf("still serial %s", s)
		}
		return nil
	})
	// Past the first certificate's expiry, a reconnect uses the new one.
	time.Sleep(time.Until(firstExpiry.Add(time.Second)))
	e.stopCP()
	e.startCP()
	eventually(t, 20*time.Second, "live reconnects with its renewed certificate", connected("live"))

	// An expired certificate is refused.
	offline := register("offline")
	_, expiry := serial(t, filepath.Join(offline, "controlplane", "client.crt"))
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
	eventually(t, 30*time.Second, "expired certificate refused", func() error {
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
