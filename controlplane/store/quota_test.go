package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cameleer/cameleer/api"
)

func TestAPITokenQuotaAndAdminTokens(t *testing.T) {
	s, _ := open(t)
	s.CreateTenant(Tenant{Name: "acme", Tier: "low"})
	for i := range 3 {
		if err := s.CreateAPIToken(APIToken{Hash: fmt.Sprintf("acme%d", i), Tenant: "acme"}, 3); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateAPIToken(APIToken{Hash: "acme3", Tenant: "acme"}, 3); !errors.Is(err, ErrQuota) {
		t.Errorf("a fourth token of three allowed: %v", err)
	}
	// The admin's tokens count apart from the tenant's.
	if err := s.SetAdminToken(APIToken{Hash: "admin0"}, "first"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAPIToken(APIToken{Hash: "admin1"}, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAPIToken("", APITokenID("admin0")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAPIToken("", APITokenID("admin1")); !errors.Is(err, ErrLastAdmin) {
		t.Errorf("the last admin token removed: %v", err)
	}
	if err := s.DeleteAPIToken("acme", APITokenID("admin1")); !errors.Is(err, ErrNotFound) {
		t.Errorf("an admin token removed as a tenant's: %v", err)
	}
	// A rotation leaves exactly the new admin token, and the tenant's.
	s.CreateAPIToken(APIToken{Hash: "admin2"}, 3)
	if err := s.SetAdminToken(APIToken{Hash: "admin3"}, "rotated"); err != nil {
		t.Fatal(err)
	}
	admins, _ := s.APITokens("")
	if len(admins) != 1 || admins[0].Hash != "admin3" {
		t.Errorf("admin tokens after a rotation: %+v", admins)
	}
	if mark, _ := s.Meta("admin-token-created"); mark != "rotated" {
		t.Errorf("mark %q", mark)
	}
	if toks, _ := s.APITokens("acme"); len(toks) != 3 {
		t.Errorf("the rotation took the tenant's tokens: %d left", len(toks))
	}
}

func TestRunnerTokenQuotaAndPurge(t *testing.T) {
	s, _ := open(t)
	s.CreateTenant(Tenant{Name: "acme", Tier: "low"})
	s.CreateTenant(Tenant{Name: "globex", Tier: "low"})
	now := time.Now()
	tok := func(hash, tenant string, ttl time.Duration) error {
		return s.CreateRunnerToken(RunnerToken{Hash: hash, Tenant: tenant, Expires: now.Add(ttl)}, 2, now)
	}
	if err := tok("a1", "acme", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := tok("a2", "acme", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := tok("a3", "acme", time.Minute); !errors.Is(err, ErrQuota) {
		t.Errorf("a third open token of two allowed: %v", err)
	}
	if err := tok("g1", "globex", -time.Second); err != nil {
		t.Fatal(err)
	}
	// A used token no longer counts; an expired one is gone at the next
	// creation, whoever's it was.
	if _, err := s.Redeem("a1", "k", now, func(tenant string, _ *Runner) (Runner, error) {
		return Runner{ID: "r1", Tenant: tenant, Name: "edge"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := tok("a3", "acme", time.Minute); err != nil {
		t.Errorf("a token after one was used: %v", err)
	}
	if _, err := s.Redeem("g1", "k", now, func(string, *Runner) (Runner, error) { return Runner{}, nil }); !errors.Is(err, ErrTokenUnknown) {
		t.Errorf("an expired token was not purged: %v", err)
	}
}

func TestArtifactQuota(t *testing.T) {
	s, _ := open(t)
	s.CreateTenant(Tenant{Name: "acme", Tier: "low"})
	s.CreateTenant(Tenant{Name: "globex", Tier: "low"})
	q := ArtifactQuota{Count: 2, Bytes: 100}
	add := func(tenant, sha string, size int64) error {
		_, err := s.AddArtifact(Artifact{Tenant: tenant, App: "orders", SHA256: sha, Size: size}, q)
		return err
	}
	if err := add("acme", "a", 60); err != nil {
		t.Fatal(err)
	}
	if err := add("acme", "b", 41); !errors.Is(err, ErrQuota) {
		t.Errorf("101 bytes of 100 allowed: %v", err)
	}
	if err := s.ArtifactRoom("acme", 41, q); !errors.Is(err, ErrQuota) {
		t.Errorf("room for 101 bytes of 100: %v", err)
	}
	if err := add("acme", "b", 40); err != nil {
		t.Fatal(err)
	}
	if err := add("acme", "a", 60); err != nil {
		t.Errorf("the same bytes again are no new artifact: %v", err)
	}
	if err := add("acme", "c", 0); !errors.Is(err, ErrQuota) {
		t.Errorf("a third artifact of two allowed: %v", err)
	}
	if err := add("globex", "c", 100); err != nil {
		t.Errorf("another tenant's quota is its own: %v", err)
	}
}

func TestDeploymentsPruned(t *testing.T) {
	s, _ := open(t)
	start := time.Now()
	deploy := func(i int, phase api.Phase) {
		t.Helper()
		d := Deployment{ID: fmt.Sprintf("%04d", i), Tenant: "acme", Environment: "dev", App: "orders", Runner: "r",
			Phase: api.PhaseValidating, Created: start.Add(time.Duration(i) * time.Second)}
		if err := s.CreateDeployment(d, 3, func(a *App, _ bool) error { a.Deployment = d.ID; return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateDeployment(DeploymentKey{"acme", d.ID}, func(d *Deployment, a *App) error {
			d.Phase, d.Image = phase, "img"
			if a != nil && phase == api.PhaseRunning {
				a.RunningDeployment = d.ID
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	deploy(0, api.PhaseRunning)
	for i := 1; i <= 10; i++ {
		deploy(i, api.PhaseFailed)
	}
	// Another app's are its own.
	other := Deployment{ID: "9999", Tenant: "acme", Environment: "dev", App: "billing", Phase: api.PhaseFailed}
	s.CreateDeployment(other, 3, func(*App, bool) error { return nil })
	ds, _ := s.Deployments("acme", func(d Deployment) bool { return d.App == "orders" })
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	// The one that runs, the three newest finished before the last
	// creation, and the last (pruned at the next creation).
	if fmt.Sprint(ids) != "[0000 0007 0008 0009 0010]" {
		t.Errorf("kept %v", ids)
	}
	if _, err := s.Deployment("acme", "9999"); err != nil {
		t.Errorf("another app's deployment: %v", err)
	}
}

// TestRunnerTokenIndexOfAnOlderState: a state file from before the index
// gets one at open, and its tokens count and expire as new ones do.
func TestRunnerTokenIndexOfAnOlderState(t *testing.T) {
	s, path := open(t)
	s.CreateTenant(Tenant{Name: "acme", Tier: "low"})
	now := time.Now()
	for i, ttl := range []time.Duration{time.Minute, -time.Minute} {
		if err := s.CreateRunnerToken(RunnerToken{Hash: fmt.Sprint("t", i), Tenant: "acme", Expires: now.Add(ttl)}, 2, now.Add(-2*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bRunnerTokenIndex) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// t1 has expired: purged, so one open token (t0) and room for one.
	if err := s.CreateRunnerToken(RunnerToken{Hash: "t2", Tenant: "acme", Expires: now.Add(time.Minute)}, 2, now); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRunnerToken(RunnerToken{Hash: "t3", Tenant: "acme", Expires: now.Add(time.Minute)}, 2, now); !errors.Is(err, ErrQuota) {
		t.Errorf("a third open token of two: %v", err)
	}
	if _, err := s.Redeem("t1", "k", now, func(string, *Runner) (Runner, error) { return Runner{}, nil }); !errors.Is(err, ErrTokenUnknown) {
		t.Errorf("the expired token of the older state: %v", err)
	}
}
