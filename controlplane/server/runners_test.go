package server

import (
	"net/http"
	"testing"
	"time"
)

// A runner's view says whether it is connected and since when: the time
// its tunnel opened, not its last heartbeat.
func TestRunnerConnectedSince(t *testing.T) {
	c := start(t)
	c.do("POST", "/api/v1/tenants", c.admin, map[string]string{"name": "acme", "tier": "mid"}, nil)
	before := time.Now().UTC().Add(-time.Second)
	c.runner(t, "r1", http.NotFoundHandler())
	var rs []struct {
		ID             string
		Connected      bool
		ConnectedSince time.Time
	}
	if code := c.do("GET", "/api/v1/tenants/acme/runners", c.admin, nil, &rs); code != http.StatusOK {
		t.Fatalf("runners: %d", code)
	}
	if len(rs) != 1 || !rs[0].Connected || rs[0].ConnectedSince.Before(before) || rs[0].ConnectedSince.After(time.Now()) {
		t.Errorf("runners: %+v, want r1 connected since it connected (after %v)", rs, before)
	}
}
