package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/cameleer/cameleer/controlplane/store"
)

func TestAuditLog(t *testing.T) {
	f := everything(t)
	c := f.c
	tokens := map[string]struct{ Token, ID string }{}
	for _, ro := range []string{"viewer", "operator"} {
		var tok struct{ Token, ID string }
		c.do("POST", "/api/v1/tenants/acme/api-tokens", c.admin, map[string]string{"role": ro}, &tok)
		tokens[ro] = tok
	}
	var globex struct{ Token string }
	c.do("POST", "/api/v1/tenants/globex/api-tokens", c.admin, nil, &globex)
	// acme is set up by the admin in everything; now its own tokens act.
	var before []store.AuditRecord
	c.do("GET", "/api/v1/tenants/acme/audit", f.acmeTok.Token, nil, &before)

	c.do("GET", "/api/v1/tenants/acme/environments", tokens["operator"].Token, nil, nil) // a read: not recorded
	c.do("POST", "/api/v1/tenants/acme/environments/prod/apps/orders/stop", tokens["operator"].Token, nil, nil)
	c.do("POST", "/api/v1/tenants/acme/api-tokens", tokens["operator"].Token, nil, nil) // refused: 403
	c.do("PUT", "/api/v1/tenants/acme/environments/prod/config", f.acmeTok.Token,
		map[string]any{"secrets": map[string]string{"S": "marker-of-a-secret"}}, nil)
	c.do("POST", "/api/v1/tenants/acme/environments", globex.Token, map[string]string{"name": "x"}, nil) // 404: in globex's log

	var recs []store.AuditRecord
	if code := c.do("GET", "/api/v1/tenants/acme/audit?after="+strconv.FormatUint(last(before), 10), f.acmeTok.Token, nil, &recs); code != http.StatusOK {
		t.Fatalf("audit: %d", code)
	}
	type seen struct {
		action, role, token string
		status              int
	}
	var got []seen
	for _, r := range recs {
		got = append(got, seen{r.Action, r.Role, r.Token, r.Status})
		if r.Tenant != "acme" || r.Path == "" || r.Time.IsZero() {
			t.Errorf("record %+v", r)
		}
	}
	want := []seen{
		{"POST /api/v1/tenants/{tenant}/environments/{env}/apps/{app}/{op}", "operator", tokens["operator"].ID, got[0].status},
		{"POST /api/v1/tenants/{tenant}/api-tokens", "operator", tokens["operator"].ID, http.StatusForbidden},
		{"PUT /api/v1/tenants/{tenant}/environments/{env}/config", "admin", f.acmeTok.ID, http.StatusOK},
	}
	if len(got) != len(want) {
		t.Fatalf("acme's log after the setup: %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	var newest []store.AuditRecord
	c.do("GET", "/api/v1/tenants/acme/audit?order=newest&limit=2", f.acmeTok.Token, nil, &newest)
	if len(newest) != 2 || newest[0].ID != recs[2].ID || newest[1].ID != recs[1].ID {
		t.Errorf("the newest two: %+v, want %d and %d", newest, recs[2].ID, recs[1].ID)
	}
	if code := c.do("GET", "/api/v1/tenants/acme/audit?order=sideways", f.acmeTok.Token, nil, nil); code != http.StatusBadRequest {
		t.Errorf("order=sideways: %d, want 400", code)
	}
	raw, _ := json.Marshal(recs)
	if strings.Contains(string(raw), "marker-of-a-secret") {
		t.Errorf("a secret is in the audit log: %s", raw)
	}
	// globex's probe is in globex's log, not acme's; the admin's tenant
	// creation in the control plane's.
	var g, cp []store.AuditRecord
	c.do("GET", "/api/v1/tenants/globex/audit", globex.Token, nil, &g)
	// The admin made globex's token; then globex's token probed acme.
	if len(g) != 2 || g[0].Role != "control plane admin" || g[1].Path != "/api/v1/tenants/acme/environments" || g[1].Status != http.StatusNotFound {
		t.Errorf("globex's log: %+v", g)
	}
	c.do("GET", "/api/v1/audit", c.admin, nil, &cp)
	if len(cp) == 0 || cp[0].Action != "POST /api/v1/tenants" || cp[0].Role != "control plane admin" {
		t.Errorf("the control plane's log: %+v", cp)
	}
	// Who may read it.
	if code := c.do("GET", "/api/v1/tenants/acme/audit", tokens["viewer"].Token, nil, nil); code != http.StatusForbidden {
		t.Errorf("a viewer reads the audit log: %d", code)
	}
	if code := c.do("GET", "/api/v1/tenants/acme/audit", globex.Token, nil, nil); code != http.StatusNotFound {
		t.Errorf("another tenant reads acme's audit log: %d", code)
	}
	if code := c.do("GET", "/api/v1/tenants/acme/audit?limit=0", f.acmeTok.Token, nil, nil); code != http.StatusBadRequest {
		t.Errorf("limit 0: %d", code)
	}
}

func last(recs []store.AuditRecord) uint64 {
	if len(recs) == 0 {
		return 0
	}
	return recs[len(recs)-1].ID
}
