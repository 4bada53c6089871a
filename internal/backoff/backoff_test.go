package backoff

import (
	"slices"
	"testing"
	"time"
)

const ms = time.Millisecond

// waits returns the next n waits.
func waits(b *Backoff, n int) []time.Duration {
	var out []time.Duration
	for range n {
		out = append(out, b.Next())
	}
	return out
}

// none is a random source that draws no jitter: every wait is its longest.
func none(int64) int64 { return 0 }

func TestSequenceGrowsToMax(t *testing.T) {
	b := New(100*ms, time.Second)
	b.Rand = none
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second}
	if got := waits(b, 6); !slices.Equal(got, want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
}

func TestFactor(t *testing.T) {
	b := &Backoff{Min: 10 * ms, Max: time.Second, Factor: 3}
	want := []time.Duration{10 * ms, 30 * ms, 90 * ms, 270 * ms, 810 * ms, time.Second}
	if got := waits(b, 6); !slices.Equal(got, want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
}

// However many retries, the wait stays at Max and never overflows.
func TestCapHolds(t *testing.T) {
	b := New(500*ms, 30*time.Second)
	b.Rand = none
	for i, d := range waits(b, 10_000) {
		if d <= 0 || d > 30*time.Second {
			t.Fatalf("wait %d = %v", i, d)
		}
	}
	if d := b.Next(); d != 30*time.Second {
		t.Fatalf("wait after many retries = %v, want the max", d)
	}
}

func TestJitterBounds(t *testing.T) {
	// The random source is asked for [0, d/2] and the draw comes off d.
	var asked []int64
	b := New(100*ms, time.Second)
	b.Rand = func(n int64) int64 { asked = append(asked, n); return n - 1 }
	got := waits(b, 3)
	want := []time.Duration{50 * ms, 100 * ms, 200 * ms}
	if !slices.Equal(got, want) {
		t.Fatalf("waits with the largest jitter %v, want %v", got, want)
	}
	if wantAsked := []int64{int64(50*ms) + 1, int64(100*ms) + 1, int64(200*ms) + 1}; !slices.Equal(asked, wantAsked) {
		t.Fatalf("random source asked for %v, want %v", asked, wantAsked)
	}

	// With the real source, every wait is in its upper half, and they vary.
	b = New(100*ms, 2*time.Second)
	seen := map[time.Duration]bool{}
	for i := range 200 {
		full := min(100*ms<<min(i, 30), 2*time.Second)
		d := b.Next()
		if d < full/2 || d > full {
			t.Fatalf("wait %d = %v, want in [%v, %v]", i, d, full/2, full)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d different waits: not jittered", len(seen))
	}
}

func TestNoJitter(t *testing.T) {
	b := &Backoff{Min: 100 * ms, Max: time.Second, Factor: 2, Rand: func(int64) int64 {
		t.Fatal("random source used without jitter")
		return 0
	}}
	if got := waits(b, 2); !slices.Equal(got, []time.Duration{100 * ms, 200 * ms}) {
		t.Fatalf("waits %v", got)
	}
}

func TestReset(t *testing.T) {
	b := New(100*ms, time.Second)
	b.Rand = none
	waits(b, 5)
	b.Reset()
	if got := waits(b, 2); !slices.Equal(got, []time.Duration{100 * ms, 200 * ms}) {
		t.Fatalf("waits after Reset %v, want to start over at the min", got)
	}
}
