// Package clock owns the notion of time that eventrt's long-running components use, so that
// time-based behaviour (poll periods, lease renewal, last_execution stamps) can be driven by a
// fake clock in tests instead of by sleeping.
package clock

import (
	"sync"
	"time"
)

// Clock is the subset of the time package that eventrt's components use.
type Clock interface {
	Now() time.Time
	NewTicker(d time.Duration) Ticker
	// After returns a channel that receives once, after d.
	After(d time.Duration) <-chan time.Time
}

// Ticker delivers ticks on C until stopped.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Real returns the wall clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (realClock) NewTicker(d time.Duration) Ticker       { return realTicker{time.NewTicker(d)} }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

// Fake is a manually advanced clock for tests. Tickers and After channels fire when Advance
// moves the time past their deadline; a tick that finds its channel full is dropped, as with
// time.Ticker.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeWaiter
	// Registered is signalled (non-blocking) each time a ticker or After is created, so a test
	// can wait until the component under test is ready to be advanced.
	Registered chan struct{}
}

type fakeWaiter struct {
	next    time.Time
	period  time.Duration // 0 for After
	ch      chan time.Time
	stopped bool
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, Registered: make(chan struct{}, 64)}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTicker returns a ticker driven by Advance.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive ticker period") // mirrors time.NewTicker
	}
	w := f.add(d, d)
	return &fakeTicker{f: f, w: w}
}

// After returns a channel that receives once Advance passes d from now.
func (f *Fake) After(d time.Duration) <-chan time.Time { return f.add(d, 0).ch }

func (f *Fake) add(d, period time.Duration) *fakeWaiter {
	f.mu.Lock()
	w := &fakeWaiter{next: f.now.Add(d), period: period, ch: make(chan time.Time, 1)}
	f.waiters = append(f.waiters, w)
	f.mu.Unlock()
	select {
	case f.Registered <- struct{}{}:
	default:
	}
	return w
}

// Advance moves the clock forward by d and fires every ticker and timer that falls due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	live := f.waiters[:0]
	for _, w := range f.waiters {
		if w.stopped {
			continue
		}
		if !w.next.After(f.now) {
			select {
			case w.ch <- f.now:
			default:
			}
			if w.period == 0 {
				continue
			}
			for !w.next.After(f.now) {
				w.next = w.next.Add(w.period)
			}
		}
		live = append(live, w)
	}
	f.waiters = live
}

type fakeTicker struct {
	f *Fake
	w *fakeWaiter
}

func (t *fakeTicker) C() <-chan time.Time { return t.w.ch }
func (t *fakeTicker) Stop() {
	t.f.mu.Lock()
	t.w.stopped = true
	t.f.mu.Unlock()
}
