package store

import (
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
)

// An app is what its running deployment made of it: a later deployment that
// fails changes its phase, not its artifact, port or replicas, which a
// promotion copies.
func TestAppIsWhatRuns(t *testing.T) {
	s, _ := open(t)
	if err := s.CreateTenant(Tenant{Name: "acme", Tier: "high"}); err != nil {
		t.Fatal(err)
	}
	set := func(id, phase, image string) {
		t.Helper()
		if _, err := s.UpdateDeployment("acme", id, func(d *Deployment) error {
			d.Phase, d.Image = phase, image
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	v1 := Deployment{ID: "1", Tenant: "acme", Environment: "dev", App: "orders", Runner: "r", Artifact: "a1", Replicas: 2, Port: 8080, Phase: api.PhaseValidating, Created: now}
	if err := s.CreateDeployment(v1); err != nil {
		t.Fatal(err)
	}
	set("1", api.PhaseRunning, "img1")
	v2 := v1
	v2.ID, v2.Artifact, v2.Replicas, v2.Port = "2", "a2", 1, 9090
	if err := s.CreateDeployment(v2); err != nil {
		t.Fatal(err)
	}
	set("2", api.PhaseFailed, "img2")
	a, err := s.App("acme", "dev", "orders")
	if err != nil {
		t.Fatal(err)
	}
	if a.Deployment != "2" || a.Phase != api.PhaseFailed || a.Running != "img1" || a.RunningDeployment != "1" ||
		a.Artifact != "a1" || a.Port != 8080 || a.Replicas != 2 {
		t.Errorf("app after a failed second deployment: %+v", a)
	}
	if err := s.CreateDeployment(v1); err != ErrExists {
		t.Errorf("a deployment ID used twice: %v", err)
	}
}
