package originals

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
)

const marker = "CARD-4111111111111111-MARKER"

func original(id string, body string) api.Original {
	return api.Original{Exchange: id, Context: "camel-1", Route: "orders", Start: 1, Status: api.StatusFailed,
		Body: []byte(body), Headers: map[string]string{"orderId": id, "secret": marker}}
}

func open(t *testing.T, dir string, b Bounds) *Store {
	t.Helper()
	s, err := Open(filepath.Join(dir, "originals"), filepath.Join(dir, "originals.key"), func(string) Bounds { return b })
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var week = Bounds{MaxBytes: 256 << 20, MaxAge: 7 * 24 * time.Hour}

func TestKeptEncryptedAndBackAfterReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, week)
	now := time.UnixMilli(1_700_000_000_000)
	until, ev, err := s.Put("dev", "orders", "orders-1", original("ID-1", "body "+marker), now)
	if err != nil || len(ev) != 0 {
		t.Fatal(err, ev)
	}
	if want := now.Add(week.MaxAge); !until.Equal(want) {
		t.Fatalf("until %v, want %v", until, want)
	}
	// Nothing of the message is in clear on disk; the key is the owner's alone.
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if info.IsDir() {
			if info.Mode().Perm() != 0o700 && path != dir {
				t.Errorf("%s: mode %v, want 0700", path, info.Mode().Perm())
			}
			return nil
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", path, info.Mode().Perm())
		}
		raw, _ := os.ReadFile(path)
		if bytes.Contains(raw, []byte(marker)) || bytes.Contains(raw, []byte("CARD-4111")) {
			t.Errorf("%s holds the message in clear", path)
		}
		return nil
	})

	s = open(t, dir, week)
	st, err := s.Get("dev", "orders", "ID-1")
	if err != nil {
		t.Fatal(err)
	}
	if string(st.Body) != "body "+marker || st.Headers["secret"] != marker || st.Instance != "orders-1" || st.App != "orders" ||
		st.Environment != "dev" || st.Route != "orders" || !st.Kept.Equal(now) {
		t.Fatalf("got back %+v", st)
	}
	// Pulled again after a restart: kept once, the first time's until.
	until2, _, err := s.Put("dev", "orders", "orders-1", original("ID-1", "other"), now.Add(time.Hour))
	if err != nil || !until2.Equal(until) {
		t.Fatal(err, until2)
	}
	if n, _ := s.Usage("dev"); n != 1 {
		t.Fatalf("%d originals, want 1", n)
	}
	if _, err := s.Get("dev", "billing", "ID-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another app's exchange: %v", err)
	}
	if _, err := s.Get("prod", "orders", "ID-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another environment's: %v", err)
	}
}

func TestBoundInBytesPerEnvironment(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, week)
	_, _, err := s.Put("dev", "orders", "i", original("ID-0", "x"), time.UnixMilli(1000))
	if err != nil {
		t.Fatal(err)
	}
	_, one := s.Usage("dev")
	// Room for three of these in each environment.
	s = open(t, dir, Bounds{MaxBytes: 3*one + one/2, MaxAge: week.MaxAge})
	for i := 1; i <= 4; i++ {
		id := "ID-" + string(rune('0'+i))
		_, ev, err := s.Put("dev", "orders", "i", original(id, "x"), time.UnixMilli(int64(1000+i)))
		if err != nil {
			t.Fatal(err)
		}
		if i < 3 && len(ev) != 0 || i >= 3 && (len(ev) != 1 || ev[0].Reason != EvictedBytes || ev[0].App != "orders" ||
			ev[0].Exchange != "ID-"+string(rune('0'+i-3)) || ev[0].Environment != "dev") {
			t.Fatalf("put %d evicted %+v", i, ev)
		}
	}
	if n, b := s.Usage("dev"); n != 3 || b > 3*one+one/2 {
		t.Fatalf("dev holds %d originals of %d bytes", n, b)
	}
	// Another environment has a bound of its own.
	if _, ev, err := s.Put("prod", "orders", "i", original("ID-9", "x"), time.UnixMilli(5000)); err != nil || len(ev) != 0 {
		t.Fatal(err, ev)
	}
	if _, err := s.Get("dev", "orders", "ID-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("evicted: %v", err)
	}
	if _, err := s.Get("dev", "orders", "ID-4"); err != nil {
		t.Fatal(err)
	}
	// One alone past the bound is not kept, and said so.
	_, ev, err := s.Put("dev", "orders", "i", original("ID-big", strings.Repeat("x", int(4*one))), time.UnixMilli(6000))
	if err != nil || len(ev) != 1 || ev[0].Exchange != "ID-big" || ev[0].Reason != EvictedBytes {
		t.Fatal(err, ev)
	}
	if n, _ := s.Usage("dev"); n != 3 {
		t.Fatalf("dev holds %d originals after a refused one", n)
	}
}

func TestSweepByAge(t *testing.T) {
	s := open(t, t.TempDir(), Bounds{MaxBytes: week.MaxBytes, MaxAge: time.Hour})
	t0 := time.UnixMilli(1_700_000_000_000)
	for i, id := range []string{"old", "new"} {
		if _, _, err := s.Put("dev", "orders", "i", original(id, "x"), t0.Add(time.Duration(i)*45*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := s.Sweep(t0.Add(61 * time.Minute))
	if err != nil || len(ev) != 1 || ev[0].Exchange != "old" || ev[0].Reason != EvictedAge {
		t.Fatal(err, ev)
	}
	if _, err := s.Get("dev", "orders", "new"); err != nil {
		t.Fatal(err)
	}
	if ev, err := s.Sweep(t0.Add(106 * time.Minute)); err != nil || len(ev) != 1 || ev[0].Exchange != "new" {
		t.Fatal(err, ev)
	}
	if n, b := s.Usage("dev"); n != 0 || b != 0 {
		t.Fatalf("left %d, %d bytes", n, b)
	}
}

// TestDeleteApp: an app's originals go with it, another app's stay, and
// reopened the store has none of them back.
func TestDeleteApp(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, week)
	now := time.Now()
	for i, app := range []string{"orders", "billing", "orders"} {
		if _, _, err := s.Put("dev", app, "i", original("X-"+strconv.Itoa(i), "x"), now); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Millisecond)
	}
	ev, err := s.DeleteApp("dev", "orders")
	if err != nil || len(ev) != 2 || ev[0].App != "orders" || ev[1].App != "orders" || ev[0].Reason != EvictedDeleted {
		t.Fatal(err, ev)
	}
	if ev, err := s.DeleteApp("dev", "orders"); err != nil || len(ev) != 0 {
		t.Fatal("deleted again:", err, ev)
	}
	if n, _ := open(t, dir, week).Usage("dev"); n != 1 {
		t.Errorf("reopened: %d originals, want billing's", n)
	}
}

func TestDamagedSwappedAndForeign(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, week)
	now := time.UnixMilli(1_700_000_000_000)
	// A first: the names sort by when.
	for i, id := range []string{"a", "b"} {
		if _, _, err := s.Put("dev", "orders", "i", original(id, "body of "+id), now.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "originals", "dev", "*"))
	if len(files) != 2 {
		t.Fatalf("files %v", files)
	}
	// A's file swapped into b's place: its head says whose it is.
	raw0, _ := os.ReadFile(files[0])
	raw1, _ := os.ReadFile(files[1])
	os.WriteFile(files[1], raw0, 0o600)
	if _, err := s.Get("dev", "orders", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("dev", "orders", "b"); err == nil || !strings.Contains(err.Error(), "another's") {
		t.Fatalf("a's file in b's place: %v", err)
	}
	// A flipped byte in the sealed part does not decrypt.
	raw1[len(raw1)-1] ^= 1
	os.WriteFile(files[1], raw1, 0o600)
	if _, err := s.Get("dev", "orders", "b"); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Fatalf("tampered: %v", err)
	}
	// Another host's key opens none.
	os.WriteFile(files[1], []byte("not an original"), 0o600)
	if err := os.WriteFile(filepath.Join(dir, "originals.key"), bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, week)
	if _, err := s.Get("dev", "orders", "a"); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Fatalf("with another key: %v", err)
	}
	// The file that was not an original is gone, and said at the next sweep.
	ev, err := s.Sweep(now)
	if err != nil || len(ev) != 1 || ev[0].Reason != EvictedDamaged {
		t.Fatal(err, ev)
	}
	// A half-written file of a killed process is not an original.
	os.WriteFile(filepath.Join(dir, "originals", "dev", ".123-x.tmp-1"), []byte("half"), 0o600)
	s = open(t, dir, week)
	if n, _ := s.Usage("dev"); n != 1 {
		t.Fatalf("%d originals after reopening", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "originals", "dev", ".123-x.tmp-1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "originals.key"), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(dir, "originals"), filepath.Join(dir, "originals.key"), func(string) Bounds { return week }); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("a short key: %v", err)
	}
}

func TestRefusesBadNames(t *testing.T) {
	s := open(t, t.TempDir(), week)
	for _, c := range []struct{ env, app, id string }{{"../x", "a", "1"}, {"dev", "A/b", "1"}, {"dev", "a", ""}, {"dev", "a", strings.Repeat("x", 257)}} {
		if _, _, err := s.Put(c.env, c.app, "i", original(c.id, "x"), time.Now()); err == nil {
			t.Errorf("put %+v: no error", c)
		}
	}
}
