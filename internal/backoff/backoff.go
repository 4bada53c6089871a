// Package backoff spaces retries out: waits that grow exponentially from a
// minimum to a maximum, each drawn at random from its upper part (jitter) so
// that what failed together does not retry in lockstep.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff hands out the waits before successive retries. It is not safe for
// concurrent use: each retry loop has its own.
type Backoff struct {
	// Min is the first wait, Max the longest.
	Min, Max time.Duration
	// Factor multiplies the wait after every retry.
	Factor float64
	// Jitter is the random share of a wait: a wait of d is drawn uniformly
	// from [d - Jitter*d, d].
	Jitter float64
	// Rand returns a random number in [0, n); nil means math/rand/v2.
	Rand func(n int64) int64

	next time.Duration // the next wait before jitter; 0 means Min
}

// New returns a Backoff from min to max that doubles every time and draws
// each wait from its upper half.
func New(min, max time.Duration) *Backoff {
	return &Backoff{Min: min, Max: max, Factor: 2, Jitter: 0.5}
}

// Next returns the wait before the next retry.
func (b *Backoff) Next() time.Duration {
	d := b.next
	if d == 0 {
		d = b.Min
	}
	d = min(d, b.Max)
	// Grown in floating point and capped before converting back, so that no
	// number of retries overflows.
	if grown := float64(d) * b.Factor; grown < float64(b.Max) {
		b.next = time.Duration(grown)
	} else {
		b.next = b.Max
	}
	if j := int64(float64(d) * b.Jitter); j > 0 {
		random := b.Rand
		if random == nil {
			random = rand.Int64N
		}
		d -= time.Duration(random(j + 1))
	}
	return d
}

// Reset starts the waits at Min again: what was retried went well.
func (b *Backoff) Reset() { b.next = 0 }
