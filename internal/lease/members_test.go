package lease

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/redistest"
)

const membersKey = "{fn}:members"

// member is one Members under test with its event log.
type member struct {
	t      *testing.T
	m      *Members
	clk    *clock.Fake // nil with the real clock
	events chan MembersEvent
	background
}

// newMember makes a member with a fake clock when ttl is a minute or more (nothing but
// pub/sub and the tests' Advance can then wake it), else with the real clock.
func newMember(t *testing.T, s *redistest.Server, id string, ttl time.Duration) *member {
	t.Helper()
	x := &member{t: t, events: make(chan MembersEvent, 1000)}
	var clk clock.Clock
	if ttl >= time.Minute {
		x.clk = clock.NewFake(time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC))
		clk = x.clk
	}
	m, err := NewMembers(MembersOptions{Client: s.Client(), Key: membersKey, Self: id, TTL: ttl, Clock: clk,
		Observe: func(e MembersEvent) {
			select {
			case x.events <- e:
			default: // a long test's renewals; the tests await rarer events
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	x.m = m
	return x
}

func (x *member) start() *member {
	x.run(x.t, x.m.Run)
	return x
}

// awaitLive waits on Changes until Live is want.
func (x *member) awaitLive(want ...string) {
	x.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		if got := x.m.Live(); slices.Equal(got, want) {
			return
		}
		select {
		case <-x.m.Changes():
		case <-timeout:
			x.t.Fatalf("%s: live %q, want %q", x.m.Self(), x.m.Live(), want)
		}
	}
}

// await returns once want is observed, skipping renewals and the allowed events.
func (x *member) await(want MembersEvent, allowed ...MembersEvent) {
	x.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-x.events:
			if e == want {
				return
			}
			if e != MembersRenewed && !slices.Contains(allowed, e) {
				x.t.Fatalf("%s: event %q while waiting for %q", x.m.Self(), e, want)
			}
		case <-timeout:
			x.t.Fatalf("%s: no %q event", x.m.Self(), want)
		}
	}
}

func (x *member) alive(id string) bool {
	x.t.Helper()
	ok, err := x.m.Alive(context.Background(), id)
	if err != nil {
		x.t.Fatal(err)
	}
	return ok
}

// score is member id's expiry in the registry, 0 if it has none.
func score(t *testing.T, s *redistest.Server, id string) int64 {
	t.Helper()
	v := s.Do("ZSCORE", membersKey, id)
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64) // RESP3 replies a double
	if err != nil {
		t.Fatalf("ZSCORE %s: %q", id, v)
	}
	return int64(f)
}

// redisMs is Redis' clock in milliseconds.
func redisMs(t *testing.T, s *redistest.Server) int64 {
	t.Helper()
	f := strings.Fields(strings.Trim(s.Do("TIME"), "[]"))
	sec, err1 := strconv.ParseInt(f[0], 10, 64)
	us, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("TIME %q", f)
	}
	return sec*1000 + us/1000
}

func TestNewMembersValidates(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client()
	for name, o := range map[string]MembersOptions{
		"nil client":             {Key: membersKey, Self: "a"},
		"no key":                 {Client: c, Self: "a"},
		"no self":                {Client: c, Key: membersKey},
		"negative TTL":           {Client: c, Key: membersKey, Self: "a", TTL: -time.Second},
		"negative renewal":       {Client: c, Key: membersKey, Self: "a", RenewEvery: -time.Second},
		"negative redis timeout": {Client: c, Key: membersKey, Self: "a", RedisTimeout: -time.Second},
		"TTL below 1ms":          {Client: c, Key: membersKey, Self: "a", TTL: time.Microsecond},
		"renewal at the TTL":     {Client: c, Key: membersKey, Self: "a", TTL: time.Second, RenewEvery: time.Second},
	} {
		if _, err := NewMembers(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	m, err := NewMembers(MembersOptions{Client: c, Key: membersKey, Self: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if m.TTL() != DefaultMembersTTL || m.o.RenewEvery != DefaultMembersTTL/3 || m.o.RedisTimeout != DefaultMembersTTL/3 || m.Self() != "a" {
		t.Fatalf("defaults: ttl %v renew %v timeout %v self %q", m.TTL(), m.o.RenewEvery, m.o.RedisTimeout, m.Self())
	}
	if live := m.Live(); len(live) != 0 {
		t.Fatalf("a new member sees %q", live)
	}
}

// Joins and leaves travel by pub/sub alone: the members' fake clocks never move.
func TestMembersSeeJoinsAndLeavesAtOnce(t *testing.T) {
	s := redistest.Start(t)
	a := newMember(t, s, "a", time.Minute).start()
	a.await(MembersJoined)
	a.awaitLive("a") // a is subscribed by now: Run joins after the subscription
	b := newMember(t, s, "b", time.Minute).start()
	b.await(MembersJoined)
	c := newMember(t, s, "c", time.Minute).start()
	c.await(MembersJoined)
	for _, x := range []*member{a, b, c} {
		x.awaitLive("a", "b", "c")
	}
	// Expiry is Redis' time plus the TTL; the key itself expires with its last member.
	now := redisMs(t, s)
	if exp := score(t, s, "a"); exp <= now || exp > now+time.Minute.Milliseconds() {
		t.Fatalf("a expires at %d, Redis time %d", exp, now)
	}
	if pttl, _ := strconv.ParseInt(s.Do("PTTL", membersKey), 10, 64); pttl <= 0 || pttl > time.Minute.Milliseconds() {
		t.Fatalf("registry PTTL %d", pttl)
	}
	if !a.alive("c") || a.alive("z") {
		t.Fatal("Alive disagrees with the registry")
	}

	c.stop()
	if err := c.m.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.await(MembersLeft)
	a.awaitLive("a", "b")
	b.awaitLive("a", "b")
	if live := c.m.Live(); !slices.Equal(live, []string{"a", "b"}) {
		t.Fatalf("the leaver sees %q", live)
	}
	if a.alive("c") || score(t, s, "c") != 0 {
		t.Fatal("c still registered after Leave")
	}

	// A Leave while Run goes on stops the heartbeats; Join brings the member back.
	if err := b.m.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.await(MembersLeft)
	a.awaitLive("a")
	b.clk.Advance(time.Minute / 3)
	b.awaitLive("a")
	if a.alive("b") {
		t.Fatal("a heartbeat re-added a member that left")
	}
	if err := b.m.Join(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.await(MembersJoined)
	a.awaitLive("a", "b")
}

// With the real clock and a short TTL: a member that stops heartbeating without leaving drops
// out of the others' view once Redis' clock passes its expiry.
func TestMembersDropADeadMember(t *testing.T) {
	s := redistest.Start(t)
	const ttl = 300 * time.Millisecond
	a := newMember(t, s, "a", ttl).start()
	b := newMember(t, s, "b", ttl).start()
	a.awaitLive("a", "b")
	b.awaitLive("a", "b")
	exp := score(t, s, "b")
	b.stop()
	start := time.Now()
	a.awaitLive("a")
	t.Logf("b dropped out of a's view %v after its Run stopped (TTL %v)", time.Since(start), ttl)
	if now := redisMs(t, s); now <= exp {
		t.Fatalf("b dropped out at Redis time %d before its expiry %d", now, exp)
	}
	if a.alive("b") || !a.alive("a") {
		t.Fatal("Alive disagrees")
	}
	// The dead member's own (stale) view still lists itself only until its TTL has passed.
	if slices.Contains(b.m.Live(), "b") {
		t.Fatalf("b, dead for more than its TTL, lists itself: %q", b.m.Live())
	}
}

// A Redis restart that loses the registry: the members' next heartbeats register them again.
func TestMembersRejoinAfterRedisLosesTheRegistry(t *testing.T) {
	s := redistest.Start(t)
	const ttl = 600 * time.Millisecond
	a := newMember(t, s, "a", ttl).start()
	b := newMember(t, s, "b", ttl).start()
	a.await(MembersJoined)
	b.await(MembersJoined)
	a.awaitLive("a", "b")
	s.Kill() // no save: the registry is gone
	s.StartAgain()
	a.await(MembersJoined, MembersError, MembersExpired)
	b.await(MembersJoined, MembersError, MembersExpired)
	a.awaitLive("a", "b")
	b.awaitLive("a", "b")
	if s.Do("ZCARD", membersKey) != "2" {
		t.Fatalf("registry %s", s.Do("ZRANGE", membersKey, "0", "-1"))
	}
}

// A member whose heartbeats fail for a whole TTL stops listing itself, since the others may
// count it dead by then; it lists itself again once a heartbeat lands.
func TestMembersDropSelfWhenHeartbeatsFailForTheTTL(t *testing.T) {
	s := redistest.Start(t)
	a := newMember(t, s, "a", time.Minute).start()
	a.await(MembersJoined)
	a.awaitLive("a")
	s.Stop() // saves the registry: a comes back with it
	a.clk.Advance(time.Minute / 3)
	a.await(MembersError)
	if !slices.Equal(a.m.Live(), []string{"a"}) {
		t.Fatalf("dropped itself before its TTL could have passed: %q", a.m.Live())
	}
	a.clk.Advance(time.Minute) // the next wake-up is at the TTL at the latest
	a.await(MembersExpired, MembersError)
	a.awaitLive()
	s.StartAgain()
	awaitAfterRestart(t, a.clk, time.Minute/3, a.events, MembersError, MembersRenewed)
	a.awaitLive("a")
}
