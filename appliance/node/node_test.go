package node

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/tunnelclient"
)

func TestParseOrchestrator(t *testing.T) {
	for _, s := range []string{"kubernetes", "docker", "none"} {
		var o Orchestrator
		if err := o.UnmarshalText([]byte(s)); err != nil || string(o) != s {
			t.Errorf("%s: %q, %v", s, o, err)
		}
	}
	var o Orchestrator
	err := o.UnmarshalText([]byte("Docker"))
	if err == nil || !strings.Contains(err.Error(), `"Docker"`) || !strings.Contains(err.Error(), "kubernetes, docker or none") {
		t.Errorf("a wrong name: %v", err)
	}
}

// The control plane reads a runner without an orchestrator as "", as it
// always has.
func TestLocalAPINamesTheOrchestrator(t *testing.T) {
	for o, want := range map[Orchestrator]string{Kubernetes: "kubernetes", Docker: "docker", None: ""} {
		rec := httptest.NewRecorder()
		localAPI(tunnelclient.Identity{}, time.Now(), nil, o, nil, supportBundle(t.TempDir(), nil), nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, api.StatusPath, nil))
		var st api.RunnerStatus
		if err := json.NewDecoder(rec.Body).Decode(&st); err != nil || st.Orchestrator != want {
			t.Errorf("%s: orchestrator %q (%v), want %q", o, st.Orchestrator, err, want)
		}
	}
}
