package trigger

import (
	"math/rand/v2"
	"time"
)

// backoff yields exponentially growing delays with ±20% jitter, so that many watchers sharing
// one Redis do not retry in lockstep after an outage.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max, cur: min} }

func (b *backoff) next() time.Duration {
	d := b.cur
	b.cur = min(2*b.cur, b.max)
	if j := int64(d) / 5; j > 0 {
		d += time.Duration(rand.Int64N(2*j+1) - j)
	}
	return d
}

func (b *backoff) reset() { b.cur = b.min }
