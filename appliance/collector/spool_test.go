package collector

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/cameleer/cameleer/api"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func records(n int, tag string) []api.TelemetryRecord {
	out := make([]api.TelemetryRecord, n)
	for i := range out {
		out[i] = api.TelemetryRecord{Environment: "dev", App: "orders", Instance: "orders-0",
			Event: json.RawMessage(fmt.Sprintf(`{"kind":"exchange","exchange":{"id":"%s-%d"}}`, tag, i))}
	}
	return out
}

func pending(t *testing.T, s *Spool) []api.TelemetryRecord {
	t.Helper()
	recs, _, _, _, err := s.Pending(1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func checkSeqs(t *testing.T, recs []api.TelemetryRecord, from, to uint64) {
	t.Helper()
	if len(recs) != int(to-from+1) {
		t.Fatalf("%d records pending, want %d..%d", len(recs), from, to)
	}
	for i, r := range recs {
		if r.Seq != from+uint64(i) {
			t.Fatalf("record %d has seq %d, want %d", i, r.Seq, from+uint64(i))
		}
	}
}

// TestSpoolReopen: what was appended, the cursors and the acknowledged mark
// survive a restart, across segments.
func TestSpoolReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 256<<10, quiet())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := s.Append("dev/orders/orders-0", Cursor{Boot: "b1", Last: uint64(10 * (i + 1))}, records(10, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(segs) < 2 {
		t.Fatalf("%d segments for 1000 records in a 256 KiB spool, want several", len(segs))
	}
	checkSeqs(t, pending(t, s), 1, 1000)
	if err := s.Ack(420); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = OpenSpool(dir, 256<<10, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSeqs(t, pending(t, s), 421, 1000)
	if c := s.Cursor("dev/orders/orders-0"); c != (Cursor{Boot: "b1", Last: 1000}) {
		t.Errorf("cursor after a restart: %+v", c)
	}
	if err := s.Append("dev/orders/orders-0", Cursor{Boot: "b1", Last: 1001}, records(1, "late")); err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, pending(t, s), 421, 1001)
}

// TestSpoolTornTail: a frame cut by a crash is gone whole, with the cursor
// it carried, so the agent's events it held are pulled again; nothing after
// it is lost or numbered twice.
func TestSpoolTornTail(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 256<<10, quiet())
	if err != nil {
		t.Fatal(err)
	}
	s.Append("k", Cursor{Boot: "b", Last: 5}, records(5, "a"))
	s.Append("k", Cursor{Boot: "b", Last: 10}, records(5, "b"))
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	fi, _ := os.Stat(segs[len(segs)-1])
	if err := os.Truncate(segs[len(segs)-1], fi.Size()-7); err != nil {
		t.Fatal(err)
	}
	s, err = OpenSpool(dir, 1<<20, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c := s.Cursor("k"); c.Last != 5 {
		t.Errorf("cursor after a torn frame: %+v, want the one before it (5)", c)
	}
	checkSeqs(t, pending(t, s), 1, 5)
	s.Append("k", Cursor{Boot: "b", Last: 10}, records(5, "b"))
	checkSeqs(t, pending(t, s), 1, 10)
}

// TestSpoolBound: past its bytes the spool drops its oldest records, counts
// them and keeps the newest.
func TestSpoolBound(t *testing.T) {
	s, err := OpenSpool(t.TempDir(), 64<<10, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 200 {
		if err := s.Append("k", Cursor{Boot: "b", Last: uint64(10 * (i + 1)), Dropped: 3}, records(10, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	recs, agentDropped, runnerDropped, _, err := s.Pending(1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if runnerDropped == 0 || int(runnerDropped)+len(recs) != 2000 {
		t.Errorf("%d pending and %d dropped of 2000", len(recs), runnerDropped)
	}
	if recs[len(recs)-1].Seq != 2000 {
		t.Errorf("the newest record pending is %d, want 2000", recs[len(recs)-1].Seq)
	}
	if agentDropped != 3 {
		t.Errorf("agent drops %d, want 3 (the agent's running total, counted once)", agentDropped)
	}
	if err := s.Drop(1990); err != nil {
		t.Fatal(err)
	}
	if _, _, d, _, _ := s.Pending(1, 1<<30); d != 1990 {
		t.Errorf("dropped after a refused batch: %d, want 1990", d)
	}
}

// TestSpoolPendingBytes: a batch stops at its bytes, but always takes one
// record, however big.
func TestSpoolPendingBytes(t *testing.T) {
	s, err := OpenSpool(t.TempDir(), 1<<20, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Append("k", Cursor{Boot: "b", Last: 10}, records(10, "x"))
	size := len(records(1, "x")[0].Event)
	if recs, _, _, _, _ := s.Pending(100, 3*size); len(recs) != 3 {
		t.Errorf("%d records in %d bytes of %d-byte events, want 3", len(recs), 3*size, size)
	}
	if recs, _, _, _, _ := s.Pending(100, 1); len(recs) != 1 {
		t.Errorf("%d records in 1 byte, want the first whole", len(recs))
	}
}

// FuzzSpoolOpen: whatever a damaged disk left in a segment, opening the
// spool neither panics nor hands on a record it cannot vouch for.
func FuzzSpoolOpen(f *testing.F) {
	dir := f.TempDir()
	s, err := OpenSpool(dir, 1<<20, quiet())
	if err != nil {
		f.Fatal(err)
	}
	s.Append("k", Cursor{Boot: "b", Last: 3}, records(3, "seed"))
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	good, _ := os.ReadFile(segs[0])
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, '{', '}', '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.seg"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenSpool(dir, 1<<20, quiet())
		if err != nil {
			return
		}
		defer s.Close()
		recs, _, _, _, err := s.Pending(1<<20, 1<<30)
		if err != nil {
			return
		}
		for i, r := range recs {
			if i > 0 && r.Seq <= recs[i-1].Seq {
				t.Fatalf("pending records out of order: %d after %d", r.Seq, recs[i-1].Seq)
			}
		}
		// What was recovered takes appends after it.
		if err := s.Append("k", Cursor{Boot: "b2", Last: 1}, records(1, "after")); err != nil {
			t.Fatalf("append after recovering: %v", err)
		}
	})
}

// TestSpoolForget: the cursor of an agent that is gone is forgotten for
// good, across a restart.
func TestSpoolForget(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 1<<20, quiet())
	if err != nil {
		t.Fatal(err)
	}
	s.Append("gone", Cursor{Boot: "b", Last: 1}, records(1, "g"))
	s.Append("here", Cursor{Boot: "b", Last: 1}, records(1, "h"))
	s.Ack(2)
	if err := s.Forget([]string{"gone"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenSpool(dir, 1<<20, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if keys := s.Keys(); len(keys) != 1 || keys[0] != "here" {
		t.Errorf("cursors after forgetting one and a restart: %v, want [here]", keys)
	}
}
