package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/quote"
	"github.com/eventrt/eventrt/internal/redisconn"
)

// DefaultMembersTTL is the default MembersOptions.TTL.
const DefaultMembersTTL = 5 * time.Second

// ChangedMessage is published on "<Key>:changed" when a member joins, leaves or is pruned.
const ChangedMessage = "changed"

// MembersEvent is something that happened to this member, reported to MembersOptions.Observe.
type MembersEvent string

const (
	// MembersJoined: a heartbeat added this member to the registry (its first, or the first
	// after it had expired or the registry was lost).
	MembersJoined  MembersEvent = "joined"
	MembersRenewed MembersEvent = "renewed"
	MembersLeft    MembersEvent = "left"
	// MembersExpired: heartbeats failed for a whole TTL, so the others may count this member
	// dead; Live no longer lists it until a heartbeat lands again.
	MembersExpired MembersEvent = "expired"
	MembersError   MembersEvent = "error" // a Redis error during a heartbeat or Leave
)

// MembersOptions configure Members.
type MembersOptions struct {
	// Client is the shared Redis client; required.
	Client rueidis.Client
	// Key is the registry ZSET; required. Its channel is "<Key>:changed". On a Redis Cluster
	// give the key a hash tag (e.g. "{fn}:members") so that it has a fixed slot; the channel
	// is not a key and may be published from any slot.
	Key string
	// Self is this member's id, e.g. NewOwner() or a stream consumer's name; required.
	Self string
	// TTL: a member not renewed within TTL is dead. Default DefaultMembersTTL; at least 1ms.
	TTL time.Duration
	// RenewEvery is the heartbeat period. Default TTL/3; it must be shorter than TTL.
	RenewEvery time.Duration
	// RedisTimeout bounds one Redis call. Default RenewEvery, at most DefaultMaxRedisTimeout.
	RedisTimeout time.Duration
	Clock        clock.Clock
	Logger       *slog.Logger
	// Observe, when set, is told every MembersEvent. It runs on Run's goroutine (or the
	// caller's, for Join and Leave) and must not block. Run reports the events of a heartbeat
	// once its next wake-up is scheduled, so a test may advance a fake clock as soon as it has
	// seen them.
	Observe func(MembersEvent)
}

// Members is one member's handle on eventrt's one liveness mechanism: a heartbeat registry
// of the live replicas (or stream consumers) of one function. Stream consumers take over the
// pending entries of a consumer that is not alive in it; pattern functions split their
// partitions among its live members.
//
// The registry is one ZSET: member id -> expiry in Redis server milliseconds. Every write goes
// through a Lua script that reads Redis' TIME, so no process's clock decides who is alive; the
// same script prunes the members whose expiry has passed and returns the live set, so one
// round trip both heartbeats and refreshes the view. A script that changes the set (a join, a
// leave, a prune) PUBLISHes on "<Key>:changed", and every member subscribes to it: the others
// see a join or a leave at once, and a death within TTL (the first heartbeat of another member
// after the dead one's expiry prunes it, and each member also wakes up at the earliest expiry
// it knows of).
type Members struct {
	o       MembersOptions
	ttlMs   string
	channel string
	changes chan struct{}
	wake    chan struct{}

	// call serialises heartbeats and Leave, so that no heartbeat lands after a Leave.
	call    sync.Mutex
	left    bool // guarded by call
	failing bool // guarded by call

	mu   sync.Mutex
	live []string // sorted, as of the last successful script
	// until is when this member's registration may have expired, by the injected clock: the
	// start of its last successful heartbeat plus TTL.
	until time.Time
}

// NewMembers validates o and returns Members that have not joined yet: call Join or Run.
func NewMembers(o MembersOptions) (*Members, error) {
	switch {
	case o.Client == nil:
		return nil, errors.New("members: nil Redis client")
	case o.Key == "":
		return nil, errors.New("members: empty registry key")
	case o.Self == "":
		return nil, fmt.Errorf("members %s: empty member id (Self)", o.Key)
	}
	if err := timing(&o.TTL, &o.RenewEvery, &o.RedisTimeout, DefaultMembersTTL); err != nil {
		return nil, fmt.Errorf("members %s: %w", o.Key, err)
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Logger = o.Logger.With("members", o.Key, "self", o.Self)
	return &Members{
		o:       o,
		ttlMs:   strconv.FormatInt(o.TTL.Milliseconds(), 10),
		channel: o.Key + ":changed",
		changes: make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
	}, nil
}

// Self is this member's id.
func (m *Members) Self() string { return m.o.Self }

// TTL is the member time to live in use.
func (m *Members) TTL() time.Duration { return m.o.TTL }

// Changes receives (coalesced) when Live changes.
func (m *Members) Changes() <-chan struct{} { return m.changes }

// Live returns the sorted ids alive in the last view, this member's included while its own
// registration has not been left and cannot have expired (TTL since the start of its last
// successful heartbeat).
func (m *Members) Live() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	live := slices.Clone(m.live)
	if !m.o.Clock.Now().Before(m.until) {
		live = slices.DeleteFunc(live, func(id string) bool { return id == m.o.Self })
	}
	return live
}

// membersScript prunes the expired members, applies ARGV[3] ("beat": add or renew ARGV[1];
// "leave": remove it; "view": nothing), lets the key expire with its last member, and
// publishes on ARGV[4] when the set changed.
//
// KEYS: registry. ARGV: id, TTL in ms, mode, channel, message.
// Reply: {1 if ARGV[1] was added or removed else 0, ms until the earliest expiry of another
// member or -1, live ids in expiry order...}.
var membersScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local changed = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) > 0
local touched = 0
if ARGV[3] == 'beat' then
  touched = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
elseif ARGV[3] == 'leave' then
  touched = redis.call('ZREM', KEYS[1], ARGV[1])
end
if touched == 1 then changed = true end
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local reply = {touched, -1}
for i = 1, #all, 2 do
  if reply[2] == -1 and all[i] ~= ARGV[1] then reply[2] = tonumber(all[i + 1]) - now end
  reply[#reply + 1] = all[i]
end
if #all > 0 then redis.call('PEXPIREAT', KEYS[1], all[#all]) end
if changed then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return reply
`)

// aliveScript: KEYS: registry. ARGV: id. Reply: 1 if id's expiry is still ahead, else 0.
var aliveScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
if exp and tonumber(exp) > now then return 1 end
return 0
`)

// exec runs membersScript in mode and installs the returned view. Hold m.call.
func (m *Members) exec(ctx context.Context, mode string) (touched bool, soonest time.Duration, err error) {
	start := m.o.Clock.Now()
	rctx, cancel := redisconn.CallContext(ctx, m.o.RedisTimeout)
	res, err := membersScript.Exec(rctx, m.o.Client, []string{m.o.Key},
		[]string{m.o.Self, m.ttlMs, mode, m.channel, ChangedMessage}).ToArray()
	cancel()
	if err == nil && len(res) < 2 {
		err = fmt.Errorf("unexpected reply of %d elements", len(res))
	}
	var n, ms int64
	if err == nil {
		n, err = res[0].AsInt64()
	}
	if err == nil {
		ms, err = res[1].AsInt64()
	}
	live := make([]string, 0, len(res))
	for i := 2; err == nil && i < len(res); i++ {
		var id string
		id, err = res[i].ToString()
		live = append(live, id)
	}
	if err != nil {
		return false, 0, err
	}
	slices.Sort(live)
	m.mu.Lock()
	switch mode {
	case "beat":
		m.until = start.Add(m.o.TTL)
	case "leave":
		m.until = time.Time{}
	}
	changed := !slices.Equal(live, m.live)
	m.live = live
	m.mu.Unlock()
	if changed {
		m.o.Logger.Info("live members changed", "live", len(live), "ids", live)
		signal(m.changes)
	}
	soonest = -1
	if ms >= 0 {
		soonest = time.Duration(ms) * time.Millisecond
	}
	return n == 1, soonest, nil
}

// refresh heartbeats (or, after Leave, only reads the view) and returns the wait until the
// next refresh and the events to report.
func (m *Members) refresh(ctx context.Context, join bool) (time.Duration, []MembersEvent, error) {
	m.call.Lock()
	defer m.call.Unlock()
	if join {
		m.left = false
	}
	mode := "beat"
	if m.left {
		mode = "view"
	}
	added, soonest, err := m.exec(ctx, mode)
	if err != nil {
		if ctx.Err() != nil {
			return m.o.RenewEvery, nil, err
		}
		ev := []MembersEvent{MembersError}
		if m.failing {
			m.o.Logger.Debug("members: redis error", "err", err)
		} else {
			m.failing = true
			m.o.Logger.Warn("members: redis error; retrying", "every", m.o.RenewEvery, "err", err)
		}
		wait := m.o.RenewEvery
		now := m.o.Clock.Now()
		m.mu.Lock()
		until, listed := m.until, slices.Contains(m.live, m.o.Self)
		if listed && !now.Before(until) {
			// Live already leaves this member out; tell the user, once.
			m.live = slices.DeleteFunc(m.live, func(id string) bool { return id == m.o.Self })
		}
		m.mu.Unlock()
		switch {
		case listed && !now.Before(until):
			m.o.Logger.Warn("members: no heartbeat landed within the TTL; the others may count this member dead", "ttl", m.o.TTL)
			ev = append(ev, MembersExpired)
			signal(m.changes)
		case listed:
			// Wake up at the end of the TTL at the latest, to drop out of Live then.
			wait = min(wait, until.Sub(now))
		}
		return wait, ev, err
	}
	m.failing = false
	wait := m.o.RenewEvery
	if soonest >= 0 {
		// Prune another member as soon as it may have died, not up to RenewEvery later.
		wait = min(wait, soonest+time.Millisecond)
	}
	var ev []MembersEvent
	switch {
	case mode != "beat":
	case added:
		m.o.Logger.Info("joined the member registry", "ttl", m.o.TTL)
		ev = append(ev, MembersJoined)
	default:
		ev = append(ev, MembersRenewed)
	}
	return wait, ev, nil
}

func (m *Members) observe(ev []MembersEvent) {
	if m.o.Observe == nil {
		return
	}
	for _, e := range ev {
		m.o.Observe(e)
	}
}

// Join heartbeats once now, adding this member to the registry (again, after a Leave) and
// refreshing Live. Run calls it first; call it before Run to register before reading work.
func (m *Members) Join(ctx context.Context) error {
	_, ev, err := m.refresh(ctx, true)
	m.observe(ev)
	if err != nil {
		return fmt.Errorf("join members %s: %w", m.o.Key, err)
	}
	return nil
}

// Run joins, then heartbeats every RenewEvery and refreshes Live at once whenever another
// member joins or leaves, until ctx ends. It does not leave when it returns: call Leave on a
// graceful stop. A process that dies drops out of the registry after TTL.
func (m *Members) Run(ctx context.Context) error {
	subscribed := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		listen(ctx, m.o.Client, m.channel, m.o.RedisTimeout, m.o.RenewEvery, m.o.Clock, m.o.Logger, subscribed, func(msg string) {
			if msg == ChangedMessage {
				signal(m.wake)
			}
		})
	}()
	defer wg.Wait()
	// Join once subscribed (boundedly), so that no change after the join goes unheard.
	select {
	case <-subscribed:
	case <-ctx.Done():
		return nil
	case <-m.o.Clock.After(m.o.RedisTimeout):
	}
	first := true
	for {
		d, ev, _ := m.refresh(ctx, first)
		first = false
		if ctx.Err() != nil {
			return nil
		}
		next := m.o.Clock.After(d)
		m.observe(ev)
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
		case <-next:
		}
	}
}

// Leave removes this member from the registry and tells the others, who refresh their view at
// once. A Run still going on afterwards no longer heartbeats (until Join).
func (m *Members) Leave(ctx context.Context) error {
	m.call.Lock()
	defer m.call.Unlock()
	m.left = true
	removed, _, err := m.exec(ctx, "leave")
	if err != nil {
		m.observe([]MembersEvent{MembersError})
		return fmt.Errorf("leave members %s: %w", m.o.Key, err)
	}
	if removed {
		m.o.Logger.Info("left the member registry")
	}
	m.observe([]MembersEvent{MembersLeft})
	return nil
}

// Alive asks Redis now whether id is a live member: registered and not expired by Redis' clock.
func (m *Members) Alive(ctx context.Context, id string) (bool, error) {
	rctx, cancel := redisconn.CallContext(ctx, m.o.RedisTimeout)
	defer cancel()
	n, err := aliveScript.Exec(rctx, m.o.Client, []string{m.o.Key}, []string{id}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("members %s: is %s alive: %w", m.o.Key, quote.Value(id), err)
	}
	return n == 1, nil
}
