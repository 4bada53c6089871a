package upgrade

import (
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/appliance/engine"
	"github.com/cameleer/cameleer/appliance/kube"
	"github.com/cameleer/cameleer/appliance/node"
)

// What keeps a node from healthy is said by name, with the component's
// own message: it is what an upgrade that rolled back tells the user.
func TestUnhealthySaysWhy(t *testing.T) {
	ready := &kube.Condition{Status: "True"}
	for _, c := range []struct {
		st   node.Status
		want string
	}{
		{node.Status{Node: ready, Components: []engine.ComponentStatus{{Name: "kine", State: "running", Ready: true}}}, ""},
		{node.Status{Node: ready, Components: []engine.ComponentStatus{{Name: "kine", State: "failed", Message: "exit status 1"},
			{Name: "kubelet", State: "running", Ready: true}}}, "kine failed (exit status 1)"},
		{node.Status{Components: []engine.ComponentStatus{{Name: "kine", State: "running", Ready: true}}}, "node not Ready"},
	} {
		if got := unhealthy(c.st, nil); got != c.want {
			t.Errorf("unhealthy(%+v) = %q, want %q", c.st, got, c.want)
		}
	}
	if got := unhealthy(node.Status{}, node.ErrNotRunning); !strings.HasPrefix(got, "no status: ") {
		t.Errorf("no status: %q", got)
	}
}

func TestLine(t *testing.T) {
	at := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	o := Outcome{From: "v1", To: "v2", Started: at, Finished: at.Add(time.Minute), Result: RolledBack, Reason: "kine failed"}
	if got := Line(o); got != "v1 -> v2: rolled back at 2026-12-06T07:01:00Z (kine failed)" {
		t.Errorf("Line: %q", got)
	}
}
