package tunnel_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// TestCertificateRotation runs runners with 6-second certificates: a
// connected runner renews before expiry and reconnects with the new one;
// a runner left offline past expiry is refused.
func TestCertificateRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both binaries")
	}
	e := newEnvArgs(t, freeAddr(t), nil, []string{"--runner-cert-lifetime", "6s"})
	e.tenant("acme", "low")
	register := func(name string) string {
		dir := filepath.Join(e.dir, name)
		e.register("acme", name, dir)
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
	e.startRunner(live, io.Discard)
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
	var buf strings.Builder
	e.startRunner(offline, &buf)
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

// TestRenewalAnswerLost: a runner that could not store its renewed
// certificate (here a directory stands where it is written; a lost answer
// or a kill does the same) still reconnects with the one it holds, renews
// again, and once it has connected with the new certificate the old one is
// refused.
func TestRenewalAnswerLost(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both binaries")
	}
	// Renewal is due after 30 s; the first certificate expires after 60 s,
	// long after the steps below that need it.
	e := newEnvArgs(t, freeAddr(t), nil, []string{"--runner-cert-lifetime", "60s"})
	e.tenant("acme", "low")
	dir := filepath.Join(e.dir, "edge")
	e.register("acme", "edge", dir)
	ident := filepath.Join(dir, "controlplane")
	first := testutil.ReadCert(t, filepath.Join(ident, "client.crt"))
	// A copy of the identity as it is now, to try the first certificate
	// once it has been replaced.
	stale := filepath.Join(e.dir, "stale")
	if err := os.CopyFS(filepath.Join(stale, "controlplane"), os.DirFS(ident)); err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(ident, "client.crt.new")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o700); err != nil {
		t.Fatal(err)
	}

	connected := func() error {
		var rs []runnerView
		e.call("GET", "/api/v1/tenants/acme/runners", e.admin, nil, &rs)
		if len(rs) == 1 && rs[0].Connected {
			return nil
		}
		return fmt.Errorf("edge not connected: %+v", rs)
	}
	var buf strings.Builder
	start := func(dir string) func() { return e.startRunner(dir, &buf) }
	logged := func(what string) func() error {
		return func() error {
			e.runnerMu.Lock()
			defer e.runnerMu.Unlock()
			if !strings.Contains(buf.String(), what) {
				return fmt.Errorf("no %q in the runner log:\n%s", what, buf.String())
			}
			return nil
		}
	}

	cpLogged := func(what string) func() error {
		return func() error {
			e.cpMu.Lock()
			defer e.cpMu.Unlock()
			if !strings.Contains(e.cpLog.String(), what) {
				return fmt.Errorf("no %q in the control plane's log", what)
			}
			return nil
		}
	}

	stop := start(dir)
	testutil.Eventually(t, poll, 20*time.Second, "edge connected", connected)
	testutil.Eventually(t, poll, 50*time.Second, "a renewal that could not be stored", logged("certificate renewal failed"))
	stop()
	testutil.Eventually(t, poll, 20*time.Second, "edge gone", func() error {
		if connected() == nil {
			return errors.New("still connected")
		}
		return nil
	})
	if s := testutil.ReadCert(t, filepath.Join(ident, "client.crt")).SerialNumber; s.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("the runner holds certificate %s; want the first one, %s", s, first.SerialNumber)
	}
	start(dir)
	testutil.Eventually(t, poll, 20*time.Second, "edge reconnects with the certificate it holds", connected)

	// Once stored, the runner's next heartbeat (sent at once) shows it
	// holds the new certificate: the first one is retired, though the
	// tunnel still runs on it.
	os.RemoveAll(blocker)
	testutil.Eventually(t, poll, 20*time.Second, "certificate renewed", func() error {
		if s := testutil.ReadCert(t, filepath.Join(ident, "client.crt")).SerialNumber; s.Cmp(first.SerialNumber) == 0 {
			return fmt.Errorf("still serial %s", s)
		}
		return nil
	})
	testutil.Eventually(t, poll, 20*time.Second, "the first certificate retired", cpLogged("previous runner certificate retired"))

	// The first certificate has not expired, but it was replaced.
	e.runnerMu.Lock()
	buf.Reset()
	e.runnerMu.Unlock()
	start(stale)
	testutil.Eventually(t, poll, 20*time.Second, "the replaced certificate refused", logged("refused this runner's certificate"))
	testutil.Eventually(t, poll, 5*time.Second, "the refusal's reason", cpLogged("certificate "+first.SerialNumber.String()+" was replaced"))
}
