package node

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/appliance/tunnelclient"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// TestTunnelWaitsOutADamagedIdentity: a runner.json that cannot be read is
// shown in the status (not "not registered", which would send the user to
// redeem a second runner), and waited out: once removed, the node waits for
// a registration like any unregistered one.
func TestTunnelWaitsOutADamagedIdentity(t *testing.T) {
	dataDir := t.TempDir()
	ident := tunnelclient.IdentityDir(dataDir)
	if err := os.MkdirAll(ident, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ident, "runner.json"), []byte(`{"runnerId": "ab`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	view := &tunnelView{}
	done := make(chan error, 1)
	go func() {
		done <- runTunnel(ctx, slog.New(slog.DiscardHandler), tunnelOptions{DataDir: dataDir, Wait: true, View: view})
	}()
	testutil.Eventually(t, 50*time.Millisecond, 10*time.Second, "the damage shown", func() error {
		if st := view.status(); st.Registered || !strings.Contains(st.LastError, "runner.json") {
			return errors.New("status: " + st.LastError)
		}
		return nil
	})
	os.RemoveAll(ident)
	testutil.Eventually(t, 50*time.Millisecond, 10*time.Second, "waiting for a registration", func() error {
		if st := view.status(); st.LastError != "" {
			return errors.New("status: " + st.LastError)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("runTunnel: %v", err)
	}
}

// TestControlPlaneLineShowsARefusal: a control plane that refuses this
// runner's version over a tunnel that is up has its line in `cameleer
// status`, not only "connected".
func TestControlPlaneLineShowsARefusal(t *testing.T) {
	const refusal = "this runner speaks version 2 of the runner API; this control plane speaks 3 to 3: upgrade the runner"
	cp := &TunnelStatus{Registered: true, URL: "https://cp:8443", RunnerID: "r1",
		State: tunnelclient.State{Connected: true, Since: time.Now(), Refused: refusal}}
	if got := ControlPlaneLine(cp); !strings.Contains(got, "refused: "+refusal) {
		t.Errorf("status line %q does not show the refusal", got)
	}
	cp.Refused = ""
	if got := ControlPlaneLine(cp); !strings.Contains(got, "connected since") || strings.Contains(got, "refused") {
		t.Errorf("status line %q, want connected", got)
	}
}
