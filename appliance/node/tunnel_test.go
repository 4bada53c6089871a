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
	"github.com/cameleer/cameleer/internal/testutil"
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
	go func() { done <- runTunnel(ctx, slog.New(slog.DiscardHandler), dataDir, true, nil, "", nil, view) }()
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
