// Package backoff owns eventrt's one retry schedule: how long a component waits before its next
// attempt at something that failed (a Redis command, a subscription, a connection, a worker
// restart). The delays double from Min up to Max, each spread by a random ±Jitter share so that
// the replicas and watchers sharing one Redis do not all retry in the same millisecond after an
// outage. The waiting itself stays with the caller, on its injected clock.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Defaults for the fields of Backoff left zero, and New's jitter.
const (
	DefaultMin    = 100 * time.Millisecond
	DefaultMax    = 5 * time.Second
	DefaultJitter = 0.2
)

// Backoff yields the delays of one series of attempts: Min, 2×Min, 4×Min ... up to Max, each
// moved by a uniform random amount of at most ±Jitter of itself. A zero Backoff is usable:
// DefaultMin to DefaultMax without jitter. It is not safe for concurrent use; each retry loop
// owns its own.
type Backoff struct {
	Min    time.Duration // the first delay; DefaultMin if 0
	Max    time.Duration // the cap; DefaultMax if 0 (or below Min)
	Jitter float64       // share of each delay spread at random, in [0, 1); 0 gives exact delays

	n int // delays handed out since the last Reset
}

// New returns a Backoff from min to max (DefaultMin and DefaultMax where 0) with DefaultJitter:
// what a loop that talks to Redis uses.
func New(min, max time.Duration) *Backoff {
	return &Backoff{Min: min, Max: max, Jitter: DefaultJitter}
}

// Next returns the delay before the next attempt and moves along the series.
func (b *Backoff) Next() time.Duration {
	d := b.Delay(b.n)
	if b.n < 64 {
		b.n++
	}
	return d
}

// Reset starts the series over: the next delay is Min again. Call it once an attempt has
// succeeded (or worked for a while).
func (b *Backoff) Reset() { b.n = 0 }

// Delay is the n-th delay of the series (0 is the first), for a caller that counts its own
// failures rather than keeping a Backoff.
func (b *Backoff) Delay(n int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = DefaultMin
	}
	if hi <= 0 {
		hi = DefaultMax
	}
	hi = max(hi, lo)
	d := hi
	if n < 62 {
		// Doubling n times without overflow: stop as soon as the cap is reached.
		d = lo
		for range n {
			if d >= hi/2 {
				d = hi
				break
			}
			d *= 2
		}
	}
	if j := int64(float64(d) * min(max(b.Jitter, 0), 1)); j > 0 {
		d += time.Duration(rand.Int64N(2*j+1) - j)
	}
	return d
}
