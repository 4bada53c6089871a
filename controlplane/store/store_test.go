package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestTenantsAndTokensSurviveReopen(t *testing.T) {
	s, path := open(t)
	if err := s.CreateTenant(Tenant{Name: "acme", Tier: "low"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTenant(Tenant{Name: "acme", Tier: "mid"}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate tenant: %v", err)
	}
	if err := s.CreateAPIToken(APIToken{Hash: "h1", Tenant: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAPIToken(APIToken{Hash: "h2", Tenant: "nobody"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("token for a missing tenant: %v", err)
	}
	s.Close()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if tok, err := s.APIToken("h1"); err != nil || tok.Tenant != "acme" {
		t.Errorf("after reopen: %+v %v", tok, err)
	}
	if _, err := s.APIToken("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown token: %v", err)
	}
}

func TestOpenTwiceIsRefused(t *testing.T) {
	_, path := open(t)
	done := make(chan error, 1)
	go func() {
		s, err := Open(path)
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	if err := <-done; err == nil {
		t.Fatal("a second Open of the same file succeeded")
	}
}

func TestRedeemOnce(t *testing.T) {
	s, _ := open(t)
	now := time.Now()
	if err := s.CreateTenant(Tenant{Name: "acme", Tier: "low"}); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []RunnerToken{
		{Hash: "live", Tenant: "acme", Expires: now.Add(time.Minute)},
		{Hash: "old", Tenant: "acme", Expires: now.Add(-time.Second)},
	} {
		if err := s.CreateRunnerToken(tok); err != nil {
			t.Fatal(err)
		}
	}
	// Many redeem the same token at once: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, used := 0, 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Redeem("live", now, func(tenant string) (Runner, error) {
				return Runner{ID: fmt.Sprintf("r%d", i), Tenant: tenant, Name: fmt.Sprintf("n%d", i)}, nil
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrTokenUsed):
				used++
			default:
				t.Errorf("redeem: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || used != 7 {
		t.Errorf("%d wins, %d refused as used; want 1 and 7", wins, used)
	}
	mk := func(tenant string) (Runner, error) { return Runner{ID: "x", Tenant: tenant, Name: "x"}, nil }
	if _, err := s.Redeem("old", now, mk); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("expired: %v", err)
	}
	if _, err := s.Redeem("unknown", now, mk); !errors.Is(err, ErrTokenUnknown) {
		t.Errorf("unknown: %v", err)
	}
	runners, err := s.Runners("acme")
	if err != nil || len(runners) != 1 {
		t.Fatalf("runners: %v %v", runners, err)
	}
	r, err := s.UpdateRunner(runners[0].ID, func(r *Runner) error { r.Revoked = true; return nil })
	if err != nil || !r.Revoked {
		t.Errorf("revoke: %+v %v", r, err)
	}
	if got, _ := s.Runner(r.ID); !got.Revoked {
		t.Error("revocation not stored")
	}
}
