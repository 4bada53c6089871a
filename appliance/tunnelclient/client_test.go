package tunnelclient

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/internal/httpjson"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
	"github.com/cameleer/cameleer/tunnel"
)

// TestUpgradeRequired: over a tunnel, the runner says its capability
// version in every request (heartbeats, and what its routes send through
// the client Run gives them) and every answer of its local API; a control
// plane that answers a heartbeat 426 has its line shown in the state and
// logged once for the tunnel, not once a heartbeat.
func TestUpgradeRequired(t *testing.T) {
	const refusal = "this runner speaks version 2 of the runner API; this control plane speaks 3 to 3: upgrade the runner"
	rs, cs := testutil.Tunnel(t, slog.New(slog.DiscardHandler))
	var (
		mu    sync.Mutex
		heard = map[string]string{} // path: the version its last request said
		beats int
	)
	cp := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		heard[r.URL.Path] = r.Header.Get(api.VersionHeader)
		if r.URL.Path == api.HeartbeatPath {
			beats++
		}
		mu.Unlock()
		if r.URL.Path == api.HeartbeatPath {
			httpjson.Error(w, http.StatusUpgradeRequired, refusal)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go cp.Serve(cs.Listener())
	t.Cleanup(func() { cp.Close() })

	id := Identity{Dir: t.TempDir(), RunnerID: "r", Tenant: "t", Name: "n", URL: "https://cp"}
	key, cert := pair(t)
	if err := id.store(key, api.EnrollResponse{Certificate: cert, CA: cert}); err != nil {
		t.Fatal(err)
	}
	var logs testutil.Logs
	c := New(Options{Identity: id, Log: logs.Logger()})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { c.serve(ctx, rs, http.NotFoundHandler(), "cp"); close(served) }()
	t.Cleanup(func() { cancel(); <-served })

	testutil.Eventually(t, 20*time.Millisecond, 5*time.Second, "the refusal shown", func() error {
		if st := c.State(); !st.Connected || st.Refused != refusal {
			return fmt.Errorf("state %+v", st)
		}
		return nil
	})
	report := api.DeployReportPath + "d1"
	if err := Post(ctx, c.controlPlane(), report, api.DeployReport{Phase: api.PhaseBuilding}, nil); err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(api.Version)
	mu.Lock()
	for _, p := range []string{api.HeartbeatPath, report} {
		if heard[p] != want {
			t.Errorf("%s said version %q, want %q", p, heard[p], want)
		}
	}
	mu.Unlock()

	// The control plane calls the runner's local API.
	local := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return cs.Open(ctx, tunnel.KindHTTP) },
	}}
	resp, err := local.Get("http://runner" + api.StatusPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get(api.VersionHeader); got != want {
		t.Errorf("the local API's answer says version %q, want %q", got, want)
	}

	if testing.Short() {
		return
	}
	testutil.Eventually(t, 100*time.Millisecond, heartbeatInterval+5*time.Second, "a second heartbeat", func() error {
		mu.Lock()
		defer mu.Unlock()
		if beats < 2 {
			return fmt.Errorf("%d heartbeats", beats)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // for the runner to take the answer
	if n := logs.Count(slog.LevelError, ""); n != 1 {
		t.Errorf("the refusal was logged %d times for one tunnel, want once", n)
	}
}
