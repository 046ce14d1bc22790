package lease

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/redistest"
)

const (
	key      = "{out}:env:lease"
	fenceKey = "{out}:env:fence"
	// testTTL is long in Redis terms: tests expire the key themselves when they mean to.
	testTTL = time.Minute
)

// replica is one Lease under test with its own clock and event log.
type replica struct {
	t      *testing.T
	l      *Lease
	clk    *clock.Fake
	events chan Event
	background
}

func newReplica(t *testing.T, s *redistest.Server, owner string, clk clock.Clock) *replica {
	t.Helper()
	r := &replica{t: t, events: make(chan Event, 100)}
	if clk == nil {
		r.clk = clock.NewFake(time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC))
		clk = r.clk
	}
	l, err := New(Options{Client: s.Client(), Key: key, FenceKey: fenceKey, Owner: owner, TTL: testTTL, Clock: clk,
		Observe: func(e Event) { r.events <- e }})
	if err != nil {
		t.Fatal(err)
	}
	r.l = l
	return r
}

func (r *replica) start() *replica {
	r.run(r.t, r.l.Run)
	return r
}

// background runs a component's Run until stop, which cancels it without the graceful step
// (Release, Leave): what a crash leaves behind.
type background struct {
	cancel context.CancelFunc
	done   chan error
	t      *testing.T
}

func (b *background) run(t *testing.T, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	b.t, b.cancel, b.done = t, cancel, make(chan error, 1)
	go func() { b.done <- run(ctx) }()
	t.Cleanup(b.stop)
}

func (b *background) stop() {
	if b.cancel == nil {
		return
	}
	b.cancel()
	b.cancel = nil
	select {
	case err := <-b.done:
		if err != nil {
			b.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		b.t.Fatal("Run did not return")
	}
}

// awaitAfterRestart advances clk by period until the component's next event after a Redis
// restart is want; the first attempts may fail (errEvent) while the client reconnects.
func awaitAfterRestart[E comparable](t *testing.T, clk *clock.Fake, period time.Duration, events <-chan E, errEvent, want E) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		clk.Advance(period)
		select {
		case e := <-events:
			if e == errEvent && attempt < 20 {
				continue
			}
			if e != want {
				t.Fatalf("event %v, want %v", e, want)
			}
			return
		case <-time.After(10 * time.Second):
			t.Fatalf("no %v after Redis came back", want)
		}
	}
}

// await skips renewals and returns once want is observed, failing on any other event.
func (r *replica) await(want Event, allowed ...Event) {
	r.t.Helper()
	for {
		select {
		case e := <-r.events:
			if e == want {
				return
			}
			ok := e == EventRenewed
			for _, a := range allowed {
				ok = ok || e == a
			}
			if !ok {
				r.t.Fatalf("%s: event %q while waiting for %q", r.l.Owner(), e, want)
			}
		case <-time.After(10 * time.Second):
			r.t.Fatalf("%s: no %q event", r.l.Owner(), want)
		}
	}
}

func (r *replica) held() Holding {
	r.t.Helper()
	h, ok := r.l.Held()
	if !ok {
		r.t.Fatalf("%s does not hold the lease", r.l.Owner())
	}
	return h
}

func TestNewValidates(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client()
	for name, o := range map[string]Options{
		"nil client":      {Key: key, FenceKey: fenceKey},
		"no key":          {Client: c, FenceKey: fenceKey},
		"same keys":       {Client: c, Key: key, FenceKey: key},
		"owner with ':'":  {Client: c, Key: key, FenceKey: fenceKey, Owner: "a:b"},
		"negative TTL":    {Client: c, Key: key, FenceKey: fenceKey, TTL: -time.Second},
		"renew after TTL": {Client: c, Key: key, FenceKey: fenceKey, TTL: time.Second, RenewEvery: time.Second},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	l, err := New(Options{Client: c, Key: key, FenceKey: fenceKey})
	if err != nil {
		t.Fatal(err)
	}
	if l.TTL() != DefaultTTL || l.o.RenewEvery != DefaultTTL/3 || l.Owner() == "" || strings.Contains(l.Owner(), ":") {
		t.Fatalf("defaults: ttl %v renew %v owner %q", l.TTL(), l.o.RenewEvery, l.Owner())
	}
	l2, _ := New(Options{Client: c, Key: key, FenceKey: fenceKey})
	if l.Owner() == l2.Owner() {
		t.Fatal("two leases got the same owner id")
	}
	if _, ok := l.Held(); ok {
		t.Fatal("a new lease holds")
	}
}

func TestOneHoldsOthersStandByAndTheHolderRenews(t *testing.T) {
	s := redistest.Start(t)
	a := newReplica(t, s, "a", nil).start()
	a.await(EventAcquired)
	h := a.held()
	if h.Token != 1 || h.Value != "a:1" || s.Do("GET", key) != "a:1" {
		t.Fatalf("holding %+v, key %q", h, s.Do("GET", key))
	}
	if pttl, _ := strconv.Atoi(s.Do("PTTL", key)); pttl <= 0 || pttl > int(testTTL/time.Millisecond) {
		t.Fatalf("PTTL %d, want in (0, %v]", pttl, testTTL)
	}
	b := newReplica(t, s, "b", nil).start()
	b.await(EventStandby)
	c := newReplica(t, s, "c", nil).start()
	c.await(EventStandby)
	if _, ok := b.l.Held(); ok {
		t.Fatal("a standby holds")
	}
	// A renewal restores the full TTL.
	s.Do("PEXPIRE", key, "5000")
	a.clk.Advance(testTTL / 3)
	a.await(EventRenewed)
	if pttl, _ := strconv.Atoi(s.Do("PTTL", key)); pttl <= 5000 {
		t.Fatalf("PTTL %d after renewal", pttl)
	}
	if a.held().Token != 1 || s.Do("GET", fenceKey) != "1" {
		t.Fatal("a renewal changed the token")
	}
	// Standbys retry on their clock and still find a holding.
	b.clk.Advance(testTTL)
	b.await(EventStandby)
}

func TestReleaseHandsOverAtOnce(t *testing.T) {
	s := redistest.Start(t)
	a := newReplica(t, s, "a", nil).start()
	a.await(EventAcquired)
	b := newReplica(t, s, "b", nil).start()
	b.await(EventStandby) // subscribed to the release channel by now
	a.stop()
	if ok, err := a.l.Release(context.Background()); !ok || err != nil {
		t.Fatalf("release: %v %v", ok, err)
	}
	a.await(EventReleased, EventLost)
	if _, ok := a.l.Held(); ok {
		t.Fatal("holds after release")
	}
	// No clock moves: the release message alone wakes the standby.
	b.await(EventAcquired)
	if h := b.held(); h.Token != 2 || s.Do("GET", key) != "b:2" {
		t.Fatalf("b holds %+v, key %q", h, s.Do("GET", key))
	}
	// Releasing what one no longer holds is a no-op.
	if ok, err := a.l.Release(context.Background()); ok || err != nil {
		t.Fatalf("second release: %v %v", ok, err)
	}
	if s.Do("GET", key) != "b:2" {
		t.Fatal("a non-holder's release removed the lease")
	}
}

// With the real clock and a real TTL: a holder that dies without releasing is replaced once
// Redis expires its lease.
func TestDeadHolderIsReplacedAfterItsTTL(t *testing.T) {
	s := redistest.Start(t)
	mk := func(owner string) (*Lease, chan Event) {
		ev := make(chan Event, 100)
		l, err := New(Options{Client: s.Client(), Key: key, FenceKey: fenceKey, Owner: owner, TTL: time.Second,
			Observe: func(e Event) { ev <- e }})
		if err != nil {
			t.Fatal(err)
		}
		return l, ev
	}
	wait := func(ev chan Event, want Event) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case e := <-ev:
				if e == want {
					return
				}
			case <-timeout:
				t.Fatalf("no %s", want)
			}
		}
	}
	a, aev := mk("a")
	actx, crash := context.WithCancel(context.Background())
	adone := make(chan error, 1)
	go func() { adone <- a.Run(actx) }()
	wait(aev, EventAcquired)
	b, bev := mk("b")
	bctx, bstop := context.WithCancel(context.Background())
	bdone := make(chan error, 1)
	go func() { bdone <- b.Run(bctx) }()
	defer func() { bstop(); <-bdone }()
	wait(bev, EventStandby)
	crash()
	<-adone
	wait(bev, EventAcquired)
	if h, ok := b.Held(); !ok || h.Token < 2 {
		t.Fatalf("b holds %+v %v", h, ok)
	}
}

func TestHolderLosesATakenOverLease(t *testing.T) {
	s := redistest.Start(t)
	a := newReplica(t, s, "a", nil).start()
	a.await(EventAcquired)
	// What another replica's acquisition after an expiry looks like.
	s.Do("SET", key, "z:9")
	a.clk.Advance(testTTL / 3)
	a.await(EventLost)
	a.await(EventStandby)
	if _, ok := a.l.Held(); ok {
		t.Fatal("still holds a taken-over lease")
	}
	select {
	case <-a.l.Changes():
	default:
		t.Fatal("the loss was not signalled on Changes")
	}
	if s.Do("GET", key) != "z:9" {
		t.Fatal("the loser touched the new holder's lease")
	}
}

func TestFencedDropsTheHolding(t *testing.T) {
	s := redistest.Start(t)
	a := newReplica(t, s, "a", nil).start()
	a.await(EventAcquired)
	<-a.l.Changes()
	a.l.Fenced(7) // not this tenure: ignored
	if a.held().Token != 1 {
		t.Fatal("a stale token dropped the holding")
	}
	s.Do("SET", key, "z:2")
	a.l.Fenced(1)
	if _, ok := a.l.Held(); ok {
		t.Fatal("holds after Fenced")
	}
	a.await(EventLost)
	a.await(EventStandby) // checked again at once, without a clock tick
}

func TestRedisErrorWhileRenewingStopsHoldingAfterTheTTL(t *testing.T) {
	s := redistest.Start(t)
	a := newReplica(t, s, "a", nil).start()
	a.await(EventAcquired)
	s.Stop() // saves the dataset: the lease (a:1, a minute to live) comes back with it
	a.clk.Advance(testTTL / 3)
	a.await(EventError)
	if a.held().Token != 1 {
		t.Fatal("lost the lease before its TTL could have passed")
	}
	// The next wake-up is at the TTL at the latest; by then another replica may hold it.
	a.clk.Advance(testTTL)
	a.await(EventLost, EventError)
	if _, ok := a.l.Held(); ok {
		t.Fatal("still holds after the TTL passed without a renewal")
	}
	s.StartAgain()
	// Redis still holds this owner's lease: it is taken back with a new token. The first
	// attempts may fail while the client reconnects.
	awaitAfterRestart(t, a.clk, testTTL/3, a.events, EventError, EventAcquired)
	if h := a.held(); h.Token != 2 || s.Do("GET", key) != "a:2" {
		t.Fatalf("holding %+v, key %q", h, s.Do("GET", key))
	}
}
