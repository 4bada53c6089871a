package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
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
	if err := s.CreateAPIToken(APIToken{Hash: "h1", Tenant: "acme"}, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAPIToken(APIToken{Hash: "h2", Tenant: "nobody"}, 10); !errors.Is(err, ErrNotFound) {
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

// TestRedeemAgain: the key that redeemed a token may redeem it again until it
// expires (its host lost the answer), and gets the same runner; no other key
// may, nor the same key once the runner is revoked.
func TestRedeemAgain(t *testing.T) {
	s, _ := open(t)
	now := time.Now()
	if err := s.CreateTenant(Tenant{Name: "acme", Tier: "low"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRunnerToken(RunnerToken{Hash: "tok", Tenant: "acme", Expires: now.Add(time.Minute)}, 10, now); err != nil {
		t.Fatal(err)
	}
	serial := 0
	register := func(tenant string, again *Runner) (Runner, error) {
		serial++
		r := Runner{ID: fmt.Sprintf("new%d", serial), Tenant: tenant, Name: "edge"}
		if again != nil {
			r = *again
		}
		r.Serial = strconv.Itoa(serial)
		return r, nil
	}
	first, err := s.Redeem("tok", "mine", now, register)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Redeem("tok", "theirs", now, register); !errors.Is(err, ErrTokenUsed) {
		t.Errorf("another key: %v", err)
	}
	if _, err := s.Redeem("tok", "", now, register); !errors.Is(err, ErrTokenUsed) {
		t.Errorf("no key: %v", err)
	}
	again, err := s.Redeem("tok", "mine", now.Add(30*time.Second), register)
	if err != nil {
		t.Fatalf("the same key again: %v", err)
	}
	if again.ID != first.ID || again.Serial == first.Serial {
		t.Errorf("again: %+v after %+v; want the same runner with a new serial", again, first)
	}
	if got, _ := s.Runner(first.ID); got.Serial != again.Serial {
		t.Errorf("stored serial %s, want %s", got.Serial, again.Serial)
	}
	if rs, _ := s.Runners("acme"); len(rs) != 1 {
		t.Errorf("%d runners, want 1", len(rs))
	}
	if _, err := s.Redeem("tok", "mine", now.Add(2*time.Minute), register); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("the same key after expiry: %v", err)
	}
	if _, err := s.UpdateRunner(first.ID, func(r *Runner) error { r.Revoked = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Redeem("tok", "mine", now, register); !errors.Is(err, ErrTokenUsed) {
		t.Errorf("the same key after revocation: %v", err)
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
		if err := s.CreateRunnerToken(tok, 10, time.Now()); err != nil {
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
			_, err := s.Redeem("live", fmt.Sprintf("key%d", i), now, func(tenant string, _ *Runner) (Runner, error) {
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
	mk := func(tenant string, _ *Runner) (Runner, error) { return Runner{ID: "x", Tenant: tenant, Name: "x"}, nil }
	if _, err := s.Redeem("old", "k", now, mk); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("expired: %v", err)
	}
	if _, err := s.Redeem("unknown", "k", now, mk); !errors.Is(err, ErrTokenUnknown) {
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

// TestOpenDamaged: a truncated or overwritten state file is a one-line
// error, not a crash (bbolt maps the file and dies of SIGBUS reading past
// its end) and not a new, empty store.
func TestOpenDamaged(t *testing.T) {
	s, path := open(t)
	for i := range 300 {
		if err := s.CreateTenant(Tenant{Name: fmt.Sprintf("tenant-%03d", i), Tier: "low"}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	if len(whole) < 8*page {
		t.Fatalf("the state file is only %d bytes; the test needs more pages", len(whole))
	}
	garbage := bytes.Repeat([]byte("not bbolt "), 1000)
	for name, b := range map[string][]byte{
		"cut to 2 pages":           whole[:2*page],
		"cut to 3 pages":           whole[:3*page],
		"cut to 4 pages":           whole[:4*page],
		"cut in the middle":        whole[:len(whole)/2],
		"cut inside the meta page": whole[:100],
		"garbage":                  garbage,
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.db")
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(p)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, ErrDamaged) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "restore it from a backup") {
				t.Errorf("error %q: want one line that says what to do", err)
			}
		})
	}
	s, err = Open(path)
	if err != nil {
		t.Fatalf("the whole file: %v", err)
	}
	if ts, err := s.Tenants(); err != nil || len(ts) != 300 {
		t.Errorf("the whole file: %d tenants, %v", len(ts), err)
	}
}

// TestCheckLengthOtherPageSize: with its first meta page damaged, a file
// made with another page size than this machine's is judged by its second
// meta page, where bbolt finds it, and opens.
func TestCheckLengthOtherPageSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{PageSize: 16384})
	if err != nil {
		t.Fatal(err)
	}
	// Two commits: the second writes the second meta page (bbolt
	// alternates by transaction id), which then holds the newest state.
	for _, k := range []string{"k1", "k2"} {
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put([]byte(k), bytes.Repeat([]byte("v"), 100000))
		}); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("damage"), 40) // inside the first meta page
	f.Close()
	if err := checkLength(path); err != nil {
		t.Errorf("first meta page damaged: %v", err)
	}
	// Shorter than one of the 100 kB values alone.
	if err := os.Truncate(path, 4*16384); err != nil {
		t.Fatal(err)
	}
	if err := checkLength(path); !errors.Is(err, ErrDamaged) {
		t.Errorf("first meta page damaged, then truncated: %v", err)
	}
}
