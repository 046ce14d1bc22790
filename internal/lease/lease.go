// Package lease owns the replica lease of a key-mode function (which one of N replicas runs
// it) and Members, the heartbeat registry of a function's live replicas or consumers.
//
// The lease is a Redis string holding "<owner>:<token>" with a PX TTL. The token is a fencing
// token: INCR of a counter key at every acquisition, so it only grows. The holder renews the
// lease every TTL/3; the others stand by, retry when it is due to expire, and retry at once
// when the holder releases it on a graceful stop (the release PUBLISHes on a channel named
// after the lease key). Owner ids are unique per Lease (host name plus random suffix), so a
// restarted process never mistakes its predecessor's lease for its own; on Linux they also
// carry the process's pid, start time and machine boot, so that a process restarted after a
// crash (a container restarted in its pod) takes over its dead predecessor's lease at once
// instead of standing by until it expires.
//
// The lease decides who should run; it cannot by itself stop a holder that was paused (a GC
// pause, a frozen VM) past its TTL from writing afterwards. What makes such a holder harmless
// is the commit: package state checks the lease value inside the same atomic step as the
// writes (state.ErrFenced). Safety therefore never depends on clocks; the TTL only bounds how
// long a dead holder blocks the others.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/redisconn"
)

// Defaults for zero-valued Options fields.
const (
	DefaultTTL = 10 * time.Second
	// DefaultMaxRedisTimeout caps the default RedisTimeout (RenewEvery).
	DefaultMaxRedisTimeout = 5 * time.Second
)

// ReleasedMessage is published on the lease key's channel when the holder releases it.
const ReleasedMessage = "released"

// Event is something that happened to the lease, reported to Options.Observe.
type Event string

const (
	EventAcquired Event = "acquired" // this replica now holds the lease (new token)
	EventRenewed  Event = "renewed"
	EventStandby  Event = "standby" // an attempt found another replica holding the lease
	EventLost     Event = "lost"    // taken over, fenced, or not renewed within the TTL
	EventReleased Event = "released"
	EventError    Event = "error" // a Redis error during an attempt or a renewal
)

// Options configure a Lease.
type Options struct {
	// Client is the shared Redis client; required.
	Client rueidis.Client
	// Key holds the lease; FenceKey is the token counter. On a Redis Cluster both must share
	// one hash slot with the keys the fenced commit writes (state.LeaseKey, state.FenceKey).
	Key, FenceKey string
	// Owner identifies this replica; it must not contain ':'. Default: host name plus a random
	// suffix, unique per Lease.
	Owner string
	// TTL is the lease time; a holder that dies is replaced within it. Default DefaultTTL.
	TTL time.Duration
	// RenewEvery is the renewal period and the longest wait between two acquisition attempts.
	// Default TTL/3; it must be shorter than TTL.
	RenewEvery time.Duration
	// RedisTimeout bounds one Redis call. Default RenewEvery, at most DefaultMaxRedisTimeout.
	RedisTimeout time.Duration
	Clock        clock.Clock
	Logger       *slog.Logger
	// Observe, when set, is told every Event. It runs on the Lease's goroutines (or the
	// caller's, for Fenced and Release) and must not block. Run reports the events of an
	// attempt once its next wake-up is scheduled, so a test may advance a fake clock as soon
	// as it has seen them.
	Observe func(Event)
}

// Holding is one tenure of the lease.
type Holding struct {
	// Token is the fencing token of this tenure: larger than every earlier one.
	Token int64
	// Value is what the lease key holds during this tenure, "<owner>:<token>"; a fenced commit
	// carries it (state.Commit.Fence).
	Value string
}

// Lease is one replica's view of one function's lease.
type Lease struct {
	o       Options
	ttlMs   string
	changes chan struct{}
	wake    chan struct{}

	mu         sync.Mutex
	held       bool
	cur        Holding
	validUntil time.Time // by the injected clock; Held is false from then on

	// self is this replica's incarnation, when its owner id carries one (the default).
	self    incarnation
	hasSelf bool

	// Owned by Run's goroutine.
	attempted  bool // an acquisition attempt has been made: only the first takes over early
	lastHolder string
	failing    bool
	lastErr    error
	queued     []Event
}

// New validates o and returns a Lease that holds nothing until Run acquires it.
func New(o Options) (*Lease, error) {
	switch {
	case o.Client == nil:
		return nil, errors.New("lease: nil Redis client")
	case o.Key == "" || o.FenceKey == "":
		return nil, errors.New("lease: empty lease or fence key")
	case o.Key == o.FenceKey:
		return nil, fmt.Errorf("lease %s: the fence key must differ from the lease key", o.Key)
	case strings.Contains(o.Owner, ":"):
		return nil, fmt.Errorf("lease %s: owner %q contains ':'", o.Key, o.Owner)
	}
	if err := timing(&o.TTL, &o.RenewEvery, &o.RedisTimeout, DefaultTTL); err != nil {
		return nil, fmt.Errorf("lease %s: %w", o.Key, err)
	}
	if o.Owner == "" {
		owner, err := NewOwner()
		if err != nil {
			return nil, fmt.Errorf("lease %s: %w", o.Key, err)
		}
		o.Owner = owner
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Logger = o.Logger.With("lease", o.Key, "owner", o.Owner)
	self, hasSelf := parseOwner(o.Owner)
	return &Lease{
		o:       o,
		self:    self,
		hasSelf: hasSelf,
		ttlMs:   strconv.FormatInt(max(o.TTL.Milliseconds(), 1), 10),
		changes: make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
	}, nil
}

// timing checks a TTL, renewal period and Redis timeout and fills in their defaults.
func timing(ttl, renewEvery, redisTimeout *time.Duration, defaultTTL time.Duration) error {
	for name, d := range map[string]time.Duration{"TTL": *ttl, "renewal period": *renewEvery, "Redis timeout": *redisTimeout} {
		if d < 0 {
			return fmt.Errorf("negative %s %v", name, d)
		}
	}
	if *ttl == 0 {
		*ttl = defaultTTL
	}
	if *ttl < time.Millisecond {
		return fmt.Errorf("TTL %v is below Redis' 1ms resolution", *ttl)
	}
	if *renewEvery == 0 {
		*renewEvery = *ttl / 3
	}
	if *renewEvery >= *ttl {
		return fmt.Errorf("renewal period %v must be shorter than the TTL %v", *renewEvery, *ttl)
	}
	if *redisTimeout == 0 {
		*redisTimeout = min(*renewEvery, DefaultMaxRedisTimeout)
	}
	return nil
}

// NewOwner returns "<host name>-<8 random hex digits>", with ':' in the host name replaced,
// followed on Linux by "-<pid>-<boot id prefix>-<process start time>": a restarted process
// recognises its predecessor's lease by them and takes it over at once (see
// incarnation.predecessor).
func NewOwner() (string, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "eventrt"
	}
	host = strings.ReplaceAll(host, ":", "_")
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("owner id: %w", err)
	}
	owner := host + "-" + hex.EncodeToString(b[:])
	if inc, ok := selfIncarnation(host); ok {
		owner += "-" + inc.suffix()
	}
	return owner, nil
}

// Owner is this replica's owner id.
func (l *Lease) Owner() string { return l.o.Owner }

// TTL is the lease time in use.
func (l *Lease) TTL() time.Duration { return l.o.TTL }

// Held returns the current tenure, if this replica holds the lease and its TTL, counted from
// the start of the last successful acquisition or renewal, has not passed.
func (l *Lease) Held() (Holding, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held || !l.o.Clock.Now().Before(l.validUntil) {
		return Holding{}, false
	}
	return l.cur, true
}

// Changes receives (coalesced) when the lease is acquired or lost; read Held to see which.
func (l *Lease) Changes() <-chan struct{} { return l.changes }

// Fenced tells the Lease that a commit under token was refused: another replica holds the
// lease now, whatever the last renewal said. The Lease stops holding and checks again at once.
func (l *Lease) Fenced(token int64) {
	if l.drop(token, l.observe) {
		l.o.Logger.Warn("lease lost: a commit was fenced off", "token", token)
		signal(l.wake)
	}
}

// drop ends the tenure token, if it is the current one, and reports whether it did.
func (l *Lease) drop(token int64, report func(Event)) bool {
	l.mu.Lock()
	lost := l.held && l.cur.Token == token
	if lost {
		l.held = false
	}
	l.mu.Unlock()
	if lost {
		report(EventLost)
		signal(l.changes)
	}
	return lost
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (l *Lease) observe(e Event) {
	if l.o.Observe != nil {
		l.o.Observe(e)
	}
}

// queue holds an event of Run's goroutine until flush.
func (l *Lease) queue(e Event) { l.queued = append(l.queued, e) }

func (l *Lease) flush() {
	for _, e := range l.queued {
		l.observe(e)
	}
	l.queued = l.queued[:0]
}

// Acquire makes one attempt to take the lease and reports whether this replica holds it. Call
// it, if at all, before Run (never concurrently with it): a daemon does so to start running at
// once instead of counting the first events as standby. Redis errors are returned.
func (l *Lease) Acquire(ctx context.Context) (bool, error) {
	l.acquire(ctx)
	l.flush()
	if l.failing {
		return false, fmt.Errorf("acquire lease %s: %w", l.o.Key, l.lastErr)
	}
	_, held := l.Held()
	return held, nil
}

// Run acquires, renews and re-acquires the lease until ctx ends. It does not release the lease
// when it returns: call Release after Run has returned (and after the runner has finished its
// last commit) on a graceful stop. A process that dies leaves the lease to expire.
func (l *Lease) Run(ctx context.Context) error {
	subscribed := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.subscribe(ctx, subscribed)
	}()
	defer wg.Wait()
	// The first attempt waits (boundedly) for the release channel, so that a replica that
	// reported standby is sure to hear the holder's release.
	select {
	case <-subscribed:
	case <-ctx.Done():
		return nil
	case <-l.o.Clock.After(l.o.RedisTimeout):
	}
	for {
		d := l.step(ctx)
		if ctx.Err() != nil {
			return nil
		}
		next := l.o.Clock.After(d)
		l.flush()
		select {
		case <-ctx.Done():
			return nil
		case <-l.wake:
		case <-next:
		}
	}
}

// step makes one attempt (or one renewal) and returns the wait before the next.
func (l *Lease) step(ctx context.Context) time.Duration {
	l.mu.Lock()
	held, cur, until := l.held, l.cur, l.validUntil
	l.mu.Unlock()
	if held {
		return l.renew(ctx, cur, until)
	}
	return l.acquire(ctx)
}

// acquireScript takes the lease when nobody holds it, or when the holder is this owner (a
// tenure this replica gave up locally, for instance after failed renewals that did land), with
// a new token either way.
//
// KEYS: lease, fence. ARGV: owner, TTL in ms.
// Reply: {token} when acquired, {0, PTTL, holder} otherwise.
var acquireScript = rueidis.NewLuaScript(`
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1] + 1) ~= ARGV[1] .. ':' then
  return {0, redis.call('PTTL', KEYS[1]), cur}
end
local tok = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. tok, 'PX', ARGV[2])
return {tok}
`)

// takeoverScript replaces exactly the lease value ARGV[1] (a dead predecessor's), or no lease
// at all, by a new tenure of ARGV[2]; another holder may have taken it since it was read, and
// then nothing is done.
// KEYS: lease, fence. ARGV: expected value, owner, TTL in ms. Reply: as acquireScript's.
var takeoverScript = rueidis.NewLuaScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  return {0, redis.call('PTTL', KEYS[1]), cur}
end
local tok = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[2] .. ':' .. tok, 'PX', ARGV[3])
return {tok}
`)

// owner is the owner part of a lease value "<owner>:<token>".
func owner(value string) string {
	if i := strings.LastIndexByte(value, ':'); i >= 0 {
		return value[:i]
	}
	return value
}

// renewScript extends the lease if it still holds exactly this tenure's value.
// KEYS: lease. ARGV: value, TTL in ms. Reply: 1 renewed, 0 not ours.
var renewScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// releaseScript deletes the lease if this owner holds it (whatever the token: Run may have
// been cancelled after an acquisition landed but before its reply) and tells the standbys.
// KEYS: lease. ARGV: owner, message. Reply: 1 released, 0 not ours.
var releaseScript = rueidis.NewLuaScript(`
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. ':' then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

func (l *Lease) acquire(ctx context.Context) time.Duration {
	start := l.o.Clock.Now()
	rctx, cancel := redisconn.CallContext(ctx, l.o.RedisTimeout)
	res, err := acquireScript.Exec(rctx, l.o.Client, []string{l.o.Key, l.o.FenceKey}, []string{l.o.Owner, l.ttlMs}).ToArray()
	first := !l.attempted
	l.attempted = true
	if err == nil && first && len(res) == 3 && l.hasSelf {
		// A process that died without releasing (kill -9, OOM) leaves its lease to expire; its
		// restart need not wait for that.
		if cur, _ := res[2].ToString(); l.self.predecessor(owner(cur)) {
			l.o.Logger.Info("taking over the lease of this replica's previous process", "holder", cur)
			res, err = takeoverScript.Exec(rctx, l.o.Client, []string{l.o.Key, l.o.FenceKey}, []string{cur, l.o.Owner, l.ttlMs}).ToArray()
		}
	}
	cancel()
	if err == nil && len(res) == 0 {
		err = errors.New("empty reply")
	}
	var tok int64
	if err == nil {
		tok, err = res[0].AsInt64()
	}
	if err != nil {
		if ctx.Err() == nil {
			l.redisError("acquire", err)
		}
		return l.o.RenewEvery
	}
	l.failing = false
	if tok > 0 {
		h := Holding{Token: tok, Value: l.o.Owner + ":" + strconv.FormatInt(tok, 10)}
		l.mu.Lock()
		l.held, l.cur, l.validUntil = true, h, start.Add(l.o.TTL)
		l.mu.Unlock()
		l.lastHolder = h.Value
		l.o.Logger.Info("lease acquired: this replica runs the function", "token", tok, "ttl", l.o.TTL)
		l.queue(EventAcquired)
		signal(l.changes)
		return l.o.RenewEvery
	}
	wait := l.o.RenewEvery
	var holder string
	if len(res) == 3 {
		if pttl, err := res[1].AsInt64(); err == nil && pttl > 0 {
			// Try again right when the holder's lease runs out, so that a dead holder is
			// replaced within its TTL rather than within TTL plus a renewal period.
			wait = min(wait, time.Duration(pttl)*time.Millisecond)
		}
		holder, _ = res[2].ToString()
	}
	if holder != l.lastHolder {
		l.lastHolder = holder
		l.o.Logger.Info("standing by: another replica holds the lease", "holder", holder)
	}
	l.queue(EventStandby)
	return wait
}

func (l *Lease) renew(ctx context.Context, cur Holding, until time.Time) time.Duration {
	start := l.o.Clock.Now()
	rctx, cancel := redisconn.CallContext(ctx, l.o.RedisTimeout)
	ok, err := renewScript.Exec(rctx, l.o.Client, []string{l.o.Key}, []string{cur.Value, l.ttlMs}).AsInt64()
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return l.o.RenewEvery
		}
		l.redisError("renew", err)
		now := l.o.Clock.Now()
		if !now.Before(until) {
			// Another replica may have taken over by now: stop running.
			if l.drop(cur.Token, l.queue) {
				l.o.Logger.Warn("lease lost: not renewed within its TTL", "token", cur.Token, "err", err)
			}
			return l.o.RenewEvery
		}
		// Wake up no later than the end of the TTL to stop running then.
		return min(l.o.RenewEvery, until.Sub(now))
	}
	l.failing = false
	if ok != 1 {
		if l.drop(cur.Token, l.queue) {
			l.o.Logger.Warn("lease lost: another replica took it over", "token", cur.Token)
		}
		return l.acquire(ctx)
	}
	l.mu.Lock()
	if l.held && l.cur.Token == cur.Token {
		l.validUntil = start.Add(l.o.TTL)
	}
	l.mu.Unlock()
	l.queue(EventRenewed)
	return l.o.RenewEvery
}

// redisError logs the first failure of a series at warn, the rest at debug.
func (l *Lease) redisError(op string, err error) {
	l.queue(EventError)
	l.lastErr = err
	if l.failing {
		l.o.Logger.Debug("lease: redis error", "op", op, "err", err)
		return
	}
	l.failing = true
	l.o.Logger.Warn("lease: redis error; retrying", "op", op, "every", l.o.RenewEvery, "err", err)
}

// subscribe listens on the lease key's channel for releases until ctx ends.
func (l *Lease) subscribe(ctx context.Context, subscribed chan struct{}) {
	listen(ctx, l.o.Client, l.o.Key, l.o.RedisTimeout, l.o.RenewEvery, l.o.Clock, l.o.Logger, subscribed, func(msg string) {
		if msg == ReleasedMessage {
			signal(l.wake)
		}
	})
}

// listen subscribes to channel until ctx ends, passing each message to onMessage and closing
// subscribed at the first confirmation. rueidis resubscribes by itself after a reconnect; the
// loop covers a Receive that returns anyway, retrying every retry. timeout bounds the
// UNSUBSCRIBE sent when ctx ends.
func listen(ctx context.Context, c rueidis.Client, channel string, timeout, retry time.Duration, clk clock.Clock,
	log *slog.Logger, subscribed chan struct{}, onMessage func(string)) {
	var once sync.Once
	unsub := redisconn.Unsubscriber{Timeout: timeout}
	defer unsub.Wait()
	for {
		rctx := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
			if s.Kind == "subscribe" {
				once.Do(func() { close(subscribed) })
			}
		})
		rctx = rueidis.WithOnReceiveReturnHook(rctx, func(err error, cc rueidis.CommandClient) error {
			if ctx.Err() != nil {
				// Receive does not UNSUBSCRIBE on return; a broken connection carries no
				// subscription, so a failure here needs no handling.
				unsub.Send(cc, cc.B().Unsubscribe().Channel(channel).Build())
			}
			return err
		})
		err := c.Receive(rctx, c.B().Subscribe().Channel(channel).Build(), func(m rueidis.PubSubMessage) {
			onMessage(m.Message)
		})
		if ctx.Err() != nil {
			return
		}
		log.Debug("subscription ended; resubscribing", "channel", channel, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-clk.After(retry):
		}
	}
}

// Release gives the lease up if this owner holds it, and wakes the standbys. Call it after Run
// has returned; it reports whether there was a lease to release.
func (l *Lease) Release(ctx context.Context) (bool, error) {
	l.mu.Lock()
	held, tok := l.held, l.cur.Token
	l.mu.Unlock()
	rctx, cancel := redisconn.CallContext(ctx, l.o.RedisTimeout)
	n, err := releaseScript.Exec(rctx, l.o.Client, []string{l.o.Key}, []string{l.o.Owner, ReleasedMessage}).AsInt64()
	cancel()
	if err != nil {
		return false, fmt.Errorf("release lease %s: %w", l.o.Key, err)
	}
	if held {
		l.drop(tok, l.observe)
	}
	if n == 1 {
		l.o.Logger.Info("lease released", "token", tok)
		l.observe(EventReleased)
	}
	return n == 1, nil
}
