package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/orchestrator"
)

// egressRuntime records the egress it is given and whether an app's
// environment had its egress when the app was deployed.
type egressRuntime struct {
	orchestrator.Runtime
	mu       sync.Mutex
	egress   map[string][]orchestrator.EgressRule
	fail     error
	deployed map[string]bool // by app: its environment's egress was applied
}

func (r *egressRuntime) Egress(_ context.Context, tenant, env string, rules []orchestrator.EgressRule) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.egress[tenant+"/"+env] = rules
	return nil
}

func (r *egressRuntime) Deploy(_ context.Context, a orchestrator.App) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.egress[a.Tenant+"/"+a.Environment]
	r.deployed[a.Name] = ok
	return nil
}

// The runner takes an environment's egress from the control plane and
// applies it, refuses a wrong one, and applies a deployment's before the
// app rolls out.
func TestEgressRoute(t *testing.T) {
	cp := &controlPlane{reports: map[string][]api.DeployReport{}, reported: make(chan struct{}, 1)}
	rt := &egressRuntime{egress: map[string][]orchestrator.EgressRule{}, deployed: map[string]bool{}}
	o := testOptions(t, cp, rt)
	o.Egress.Apply = func(ctx context.Context, env string, rules []orchestrator.EgressRule) error {
		return rt.Egress(ctx, o.Tenant, env, rules)
	}
	w := New(o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := w.Handler(ctx)
	put := func(env string, e any) (int, string) {
		b, _ := json.Marshal(e)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, api.RunnerAppsPath+env+api.RunnerEgressPath, bytes.NewReader(b)))
		return rec.Code, rec.Body.String()
	}

	code, body := put("dev", api.Egress{Revision: 1, Allow: []api.EgressRule{{CIDR: "10.1.2.0/24", Ports: []int{443}}}})
	want := []orchestrator.EgressRule{{To: []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24")}, Ports: []int{443}, Protocol: "tcp"}}
	if code != http.StatusNoContent || !reflect.DeepEqual(rt.egress["acme/dev"], want) {
		t.Errorf("put: %d %s, applied %+v, want %+v", code, body, rt.egress["acme/dev"], want)
	}
	for _, c := range []struct {
		env  string
		body any
		want string
	}{
		{"dev", api.Egress{Revision: 2, Allow: []api.EgressRule{{CIDR: "10.1.2.0/24; rm -rf /", Ports: []int{443}}}}, "not an IPv4 CIDR"},
		{"Dev_1", api.Egress{Revision: 2}, "must be 1-63 lower-case"},
		{"dev", "not an egress", "bad egress"},
	} {
		if code, body := put(c.env, c.body); code != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("%s %v: %d %s, want 400 with %q", c.env, c.body, code, body, c.want)
		}
	}
	rt.fail = errors.New("iptables: not found")
	if code, body := put("prod", api.Egress{Revision: 1, Allow: []api.EgressRule{{CIDR: "10.1.2.0/24", Ports: []int{443}}}}); code != http.StatusBadGateway || !strings.Contains(body, "iptables: not found") {
		t.Errorf("an apply that fails: %d %s, want 502 with why", code, body)
	}
	rt.fail = nil

	// A deployment brings its environment's egress, applied before the
	// app rolls out; a wrong one is refused up front.
	d := api.Deploy{ID: "0001", Environment: "staging", App: "orders", Image: "img",
		Egress: api.Egress{Revision: 4, Allow: []api.EgressRule{{CIDR: "192.0.2.0/24", Ports: []int{5432}, Protocol: "tcp"}}}}
	if err := w.Accept(ctx, d); err != nil {
		t.Fatal(err)
	}
	for !api.Done(cp.last("0001").Phase) {
		<-cp.reported
	}
	rt.mu.Lock()
	if r := cp.last("0001"); r.Phase != api.PhaseRunning || !rt.deployed["orders"] {
		t.Errorf("deployment %+v; egress applied before the rollout: %v", r, rt.deployed["orders"])
	}
	rt.mu.Unlock()
	d.ID, d.Egress.Allow[0].Ports = "0002", []int{70000}
	if err := w.Accept(ctx, d); err == nil || !strings.Contains(err.Error(), "egress: ") {
		t.Errorf("a deployment with a wrong egress: %v", err)
	}
}
