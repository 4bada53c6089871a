package store

import (
	"errors"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
)

// TestDeploymentsAndTheirApp: a deployment is written with its app in one
// transaction, as decide says; a refusal writes nothing; an update sees the
// app only while the deployment is the app's latest.
func TestDeploymentsAndTheirApp(t *testing.T) {
	s, _ := open(t)
	now := time.Now()
	v1 := Deployment{ID: "1", Tenant: "acme", Environment: "dev", App: "orders", Runner: "r", Phase: api.PhaseValidating, Created: now}
	first := func(a *App, exists bool) error {
		if exists || a.Name != "orders" || a.Tenant != "acme" || a.Environment != "dev" {
			t.Errorf("a new app given to decide as %+v, exists %v", a, exists)
		}
		a.Deployment, a.Runner = "1", "r"
		return nil
	}
	if err := s.CreateDeployment(v1, 10, first); err != nil {
		t.Fatal(err)
	}
	refused := errors.New("runs elsewhere")
	v2 := v1
	v2.ID = "2"
	if err := s.CreateDeployment(v2, 10, func(*App, bool) error { return refused }); !errors.Is(err, refused) {
		t.Fatalf("a refused deployment: %v", err)
	}
	if _, err := s.Deployment("acme", "2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused deployment was stored: %v", err)
	}
	if err := s.CreateDeployment(v1, 10, first); err != ErrExists {
		t.Errorf("a deployment ID used twice: %v", err)
	}
	seen := func(id string) (app *App) {
		t.Helper()
		if _, err := s.UpdateDeployment(DeploymentKey{"acme", id}, func(d *Deployment, a *App) error {
			d.Phase, app = api.PhaseRunning, a
			if a != nil {
				a.Phase = d.Phase
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return app
	}
	if a := seen("1"); a == nil || a.Name != "orders" {
		t.Errorf("the latest deployment's update saw app %+v", a)
	}
	if err := s.CreateDeployment(v2, 10, func(a *App, exists bool) error {
		if !exists || a.Deployment != "1" {
			t.Errorf("the app given to decide as %+v, exists %v", a, exists)
		}
		a.Deployment = "2"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if a := seen("1"); a != nil {
		t.Errorf("an older deployment's update saw the app: %+v", a)
	}
	a, err := s.App("acme", "dev", "orders")
	if err != nil || a.Deployment != "2" || a.Phase != api.PhaseRunning {
		t.Errorf("app: %+v %v", a, err)
	}
	if _, err := s.UpdateDeployment(DeploymentKey{"acme", "nope"}, func(*Deployment, *App) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown deployment: %v", err)
	}
}
