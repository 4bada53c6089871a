package store

import (
	"path/filepath"
	"testing"
	"time"
)

// TestPruneReplays: what is known of originals long gone goes, with their
// replays and keys and the bulk replays that ended long ago; the rest stays.
func TestPruneReplays(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	old, recent := now.Add(-40*24*time.Hour), now.Add(-time.Hour)
	err = s.NoteOriginals("acme", "edge", []OriginalNote{
		{Environment: "dev", App: "orders", Exchange: "kept-long-ago", Route: "r", Until: old},
		{Environment: "dev", App: "orders", Exchange: "evicted-long-ago", Route: "r", Until: now.Add(time.Hour)},
		{Environment: "dev", App: "orders", Exchange: "evicted-long-ago", Evicted: "bytes", At: old},
		{Environment: "dev", App: "orders", Exchange: "kept", Route: "r", Until: now.Add(time.Hour)},
		{Environment: "dev", App: "orders", Exchange: "evicted-lately", Evicted: "age", At: recent},
	})
	if err != nil {
		t.Fatal(err)
	}
	allow := func(Original, bool, []Replay) error { return nil }
	for _, x := range []string{"kept-long-ago", "kept"} {
		if _, _, err := s.BeginReplay(Replay{ID: "r-" + x, Tenant: "acme", Environment: "dev", App: "orders", Exchange: x, Key: "k-" + x}, allow); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []Bulk{{ID: "b-old", Tenant: "acme", State: BulkDone, Updated: old}, {ID: "b-paused", Tenant: "acme", State: BulkPaused, Updated: old},
		{ID: "b-new", Tenant: "acme", State: BulkDone, Updated: recent}} {
		if err := s.CreateBulk(b, func([]Bulk) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PruneReplays(now.Add(-30 * 24 * time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	for x, want := range map[string]bool{"kept-long-ago": false, "evicted-long-ago": false, "kept": true, "evicted-lately": true} {
		if _, err := s.Original("acme", "dev", "orders", x); (err == nil) != want {
			t.Errorf("%s: %v, kept %v", x, err, want)
		}
	}
	if _, err := s.GetReplay("acme", "r-kept-long-ago"); err != ErrNotFound {
		t.Errorf("the replay of a pruned original: %v", err)
	}
	// Its key is free again; the other's still answers its replay.
	if r, again, err := s.BeginReplay(Replay{ID: "r-new", Tenant: "acme", Environment: "dev", App: "orders", Exchange: "kept-long-ago", Key: "k-kept-long-ago"}, allow); err != nil || again {
		t.Errorf("a pruned key: %+v %v %v", r, again, err)
	}
	if r, again, _ := s.BeginReplay(Replay{ID: "r-x", Tenant: "acme", Environment: "dev", App: "orders", Exchange: "kept", Key: "k-kept"}, allow); !again || r.ID != "r-kept" {
		t.Errorf("a kept key: %+v %v", r, again)
	}
	bs, _ := s.Bulks(func(Bulk) bool { return true })
	if len(bs) != 2 || bs[0].ID == "b-old" || bs[1].ID == "b-old" {
		t.Errorf("bulks left: %+v", bs)
	}
}
