package tunnelclient_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/appliance/tunnelclient"
	"github.com/cameleer/cameleer/controlplane/server"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// TestSecondRenewalLost: a runner renews over a tunnel that came up with an
// older certificate than the one it holds; when that renewal cannot be
// stored, the runner still connects with the one it holds. (The control
// plane used to keep only the tunnel's certificate good.) The control
// plane runs in this process: the runner's side is what is tested, through
// the real server, TLS and tunnel.
func TestSecondRenewalLost(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for two renewals (20 s)")
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + l.Addr().String()
	// Renewal is due after 10 s; the renewed certificate expires 20 s
	// after it was made, well after the runner is restarted below.
	s, admin, err := server.New(server.Options{DataDir: filepath.Join(dir, "cp"), URL: url, RunnerCertLifetime: 20 * time.Second,
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { s.Serve(ctx, l); close(served) }()
	t.Cleanup(func() { cancel(); <-served })

	api := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	post := func(path string, body, out any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", url+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := api.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
	}
	post("/api/v1/tenants", map[string]string{"name": "acme", "tier": "low"}, nil)
	var ott struct{ Token string }
	post("/api/v1/tenants/acme/runner-tokens", map[string]string{}, &ott)
	dataDir := filepath.Join(dir, "runner")
	reg, err := tunnelclient.Redeem(ctx, dataDir, ott.Token, "", "edge")
	if err != nil {
		t.Fatal(err)
	}
	// The same command again (install.sh run twice) is the registration
	// it made; another token is refused, and the registration stays.
	if again, err := tunnelclient.Redeem(ctx, dataDir, ott.Token, "", "edge"); err != nil || !again.Again || again.RunnerID != reg.RunnerID {
		t.Fatalf("the same token again: %+v %v, want runner %s again", again, err, reg.RunnerID)
	}
	var other struct{ Token string }
	post("/api/v1/tenants/acme/runner-tokens", map[string]string{}, &other)
	if _, err := tunnelclient.Redeem(ctx, dataDir, other.Token, "", "edge"); err == nil || !strings.Contains(err.Error(), "already registered as runner "+reg.RunnerID) {
		t.Fatalf("another token on a registered host: %v", err)
	}
	ident := tunnelclient.IdentityDir(dataDir)
	serial := func() string {
		return testutil.ReadCert(t, filepath.Join(ident, "client.crt")).SerialNumber.String()
	}
	first := serial()

	var logs testutil.Logs
	run := func() (*tunnelclient.Client, func()) {
		id, err := tunnelclient.LoadIdentity(ident)
		if err != nil {
			t.Fatal(err)
		}
		c := tunnelclient.New(tunnelclient.Options{Identity: id, Log: logs.Logger(),
			LocalAPI: func(*http.Client) http.Handler { return http.NotFoundHandler() }})
		cctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { c.Run(cctx); close(done) }()
		return c, func() { stop(); <-done }
	}
	connected := func(c *tunnelclient.Client) func() error {
		return func() error {
			if st := c.State(); !st.Connected {
				return fmt.Errorf("not connected: %s", st.LastError)
			}
			return nil
		}
	}

	c, stop := run()
	testutil.Eventually(t, 100*time.Millisecond, 10*time.Second, "connected", connected(c))
	testutil.Eventually(t, 100*time.Millisecond, 20*time.Second, "first renewal stored", func() error {
		if serial() == first {
			return errors.New("still the first certificate")
		}
		return nil
	})
	second := serial()
	// The second renewal, over the same tunnel, cannot be stored.
	blocker := filepath.Join(ident, "client.crt.new")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 100*time.Millisecond, 20*time.Second, "a renewal that could not be stored", func() error {
		if logs.Count(slog.LevelWarn, "certificate renewal failed") == 0 {
			return errors.New("no failed renewal logged")
		}
		return nil
	})
	stop()
	os.RemoveAll(blocker)
	if got := serial(); got != second {
		t.Fatalf("the runner holds %s; want %s", got, second)
	}
	c, stop = run()
	defer stop()
	testutil.Eventually(t, 100*time.Millisecond, 8*time.Second, "connected with the certificate it holds", connected(c))
}
