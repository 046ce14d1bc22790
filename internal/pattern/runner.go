// Package pattern owns pattern functions: one handler run for every string key matching a
// glob, each key with its own durable state. A Runner is the loop of one pattern function:
// it keeps the set of keys waiting to run (a key signalled while it waits or runs is run once
// more, on its latest value), reads and commits the keys of a batch together (one round trip
// for the reads, one for the commits), skips values already executed (each key's meta hash
// records the last one, as in key mode), and holds a bounded cache of the keys' states,
// reloaded from Redis on a miss. Its scanner (SCAN MATCH) catches up at start, after every
// resubscription and on every ownership gain, and polls a bounded slice of the key space
// every tick. With Partitions, replicas share the keys: a key runs only on the replica owning
// its slot's partition, and every commit is fenced by that tenure (see Partitions).
//
// Triggers come from trigger.PatternWatcher (keyspace notifications by pattern, the trigger
// channel, the poll ticks) through the KeySink methods, which never block.
package pattern

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"
	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/quote"
	"github.com/eventrt/eventrt/internal/redisconn"
	"github.com/eventrt/eventrt/internal/runner"
	"github.com/eventrt/eventrt/internal/trigger"
)

// Defaults for zero-valued Options fields.
const (
	// DefaultBatch bounds the keys read, run and committed together.
	DefaultBatch = 512
	// DefaultCacheKeys bounds the keys whose state the process holds.
	DefaultCacheKeys = 10000
	// DefaultMaxPending bounds the keys waiting to run; beyond it a signal is dropped and a
	// catch-up scan covers it.
	DefaultMaxPending = 16384
	// DefaultScanCount is SCAN's COUNT hint.
	DefaultScanCount = 1000
	// DefaultScanPerTick bounds the keys one poll tick looks at (per node).
	DefaultScanPerTick = 10000
	// DefaultOutputMaxLen is the approximate MAXLEN of an xadd output stream (0: none).
	DefaultOutputMaxLen = 10000
)

// Options configure a Runner.
type Options struct {
	Name   string // module.function, used in logs and metric labels
	Client rueidis.Client
	Layout *Layout
	// Host and Port are what context.host and context.port report.
	Host string
	Port int
	// PollAlways runs every key a poll tick finds, even with an unchanged value.
	PollAlways   bool
	Batch        int
	CacheKeys    int
	MaxPending   int
	ScanCount    int
	ScanPerTick  int
	OutputMaxLen int64
	// MaxAttempts, when positive, bounds the runs of one key value that may end with the
	// process dying (OOM, crash): each run is counted in the key's meta hash before it starts
	// and the count cleared when it ends, and a value whose count passes MaxAttempts goes to
	// the slot's dead-letter stream (Layout.DeadKey) instead of running again.
	MaxAttempts int
	// StateTTL, when positive, expires a key's state and meta hashes when no run committed
	// for that long (PEXPIRE in every commit).
	StateTTL     time.Duration
	RedisTimeout time.Duration
	// Owner, when set, makes this runner one of N replicas sharing the keys; nil runs every
	// key with unfenced commits.
	Owner   *Partitions
	Metrics *metrics.Function
	Logger  *slog.Logger
	Clock   clock.Clock
	// Observe, when set, is told how each key's signal ended ("success", "error" or
	// "skipped:<reason>"); it runs on the Run goroutine.
	Observe func(key string, kind trigger.Kind, outcome string)
}

// Runner runs one pattern function.
type Runner struct {
	o       Options
	version atomic.Pointer[exec.Version]
	wake    chan struct{}
	drained chan struct{} // signalled when keys are taken from the pending set
	rescan  chan trigger.Kind
	poll    chan struct{}

	mu       sync.Mutex
	pending  map[string]want
	queue    []string
	running  int
	overflow bool

	cache *lru.Cache[string, *entry]
	// bufs holds the bytes of a batch's results (outputs, env fields) until its commits
	// are sent; the next batch reuses the memory (Run goroutine).
	bufs    exec.Buffers
	decoder *codec.Decoder
	claimed map[int]int64 // slot -> token claimed in the current tenure (Run goroutine)
	// names interns env field names, which every key of a function shares (Run goroutine).
	names map[string]string
	// peak is the most keys pending since the pending map was last made: Go maps do not
	// shrink, so a map grown by a burst is replaced once it is empty.
	peak int
	scan scanner
	// scanReq counts catch-up scans asked for, scanDone the last request a completed scan
	// covered (guarded by mu).
	scanReq, scanDone int64
}

// want is one key's pending signal.
type want struct {
	kind  trigger.Kind
	since time.Time
	force bool
}

// entry is the state of one key as last committed (or loaded). It holds the decoded env
// only, not its JSON fields as key mode does: a commit writes every field (the handlers this
// serves change most of their state on every run anyway), which halves what each cached key
// costs. A nil env marks an entry to read back before its next run (a failed run may have
// changed it in place).
type entry struct {
	keys       Keys
	env        map[string]any
	lastInput  string
	lastExec   *time.Time
	failedID   string
	failedHash string
	token      int64 // the tenure the entry was loaded or committed under
}

// New validates o and returns a Runner for the handler version v.
func New(o Options, v exec.Version) (*Runner, error) {
	switch {
	case o.Name == "":
		return nil, errors.New("pattern: empty function name")
	case o.Client == nil || o.Layout == nil:
		return nil, fmt.Errorf("pattern %s: nil Redis client or layout", o.Name)
	case v.Handler == nil:
		return nil, fmt.Errorf("pattern %s: nil handler", o.Name)
	}
	o.Batch = orDefault(o.Batch, DefaultBatch)
	o.CacheKeys = orDefault(o.CacheKeys, DefaultCacheKeys)
	o.MaxPending = orDefault(o.MaxPending, DefaultMaxPending)
	o.ScanCount = orDefault(o.ScanCount, DefaultScanCount)
	o.ScanPerTick = orDefault(o.ScanPerTick, DefaultScanPerTick)
	if o.RedisTimeout <= 0 {
		o.RedisTimeout = runner.DefaultRedisTimeout
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New().Function(o.Name)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	o.Logger = o.Logger.With("function", o.Name)
	cache, err := lru.New[string, *entry](o.CacheKeys)
	if err != nil {
		return nil, fmt.Errorf("pattern %s: %w", o.Name, err)
	}
	r := &Runner{
		o: o, wake: make(chan struct{}, 1), drained: make(chan struct{}, 1),
		rescan: make(chan trigger.Kind, 1), poll: make(chan struct{}, 1),
		pending: map[string]want{}, cache: cache, decoder: codec.NewDecoder(), claimed: map[int]int64{},
		names: map[string]string{},
	}
	r.scan.r = r
	o.Metrics.Mode(metrics.ModePattern)
	r.Swap(v)
	return r, nil
}

func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

// Swap installs a new handler version; the batch in progress finishes with the old one.
func (r *Runner) Swap(v exec.Version) {
	r.version.Store(&v)
	r.o.Metrics.Handler(v.Handler.Hash(), v.Runtime, v.ModTime)
}

// Version returns the handler version in use.
func (r *Runner) Version() exec.Version { return *r.version.Load() }

// Keys is the number of keys whose state the process holds (the keys-known gauge).
func (r *Runner) Keys() int { return r.cache.Len() }

// CaughtUp reports whether a catch-up scan covering every request so far has completed, no key
// waits or runs, and (with replicas) every partition assigned to this replica is held with no
// gain still to catch up on: from then on every write triggers a run of its own.
func (r *Runner) CaughtUp() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := r.scanReq > 0 && r.scanDone >= r.scanReq && len(r.pending) == 0 && r.running == 0
	return ok && (r.o.Owner == nil || (!r.o.Owner.Gaining() && r.o.Owner.Settled()))
}

// Idle reports whether no key waits and no batch runs.
func (r *Runner) Idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending) == 0 && r.running == 0
}

// NotifyKey asks for a run of key on its current value. It never blocks: a key already
// waiting absorbs the signal (its run reads the latest value).
func (r *Runner) NotifyKey(key string, kind trigger.Kind) {
	r.o.Metrics.Event(string(kind))
	if kind == trigger.KindPubSub && !Match(r.o.Layout.Pattern, key) {
		r.o.Metrics.Skipped(metrics.SkipMissing)
		r.o.Logger.Warn("trigger channel named a key outside the pattern; ignored", "key", quote.Value(key), "pattern", r.o.Layout.Pattern)
		return
	}
	if added, first := r.add(key, kind, false); !added && first {
		// Once per overflow: the scan clears it when it starts.
		r.o.Logger.Warn("too many keys waiting; a catch-up scan will cover the rest", "max_pending", r.o.MaxPending)
		r.Rescan(trigger.KindCatchup)
	}
}

// add records a signal for key; wait (the scanner's) ignores the MaxPending bound, which
// otherwise drops the signal: added is then false, and firstDrop true for the first signal
// dropped since the last catch-up scan started.
func (r *Runner) add(key string, kind trigger.Kind, wait bool) (added, firstDrop bool) {
	force := kind == trigger.KindPubSub || (kind == trigger.KindPoll && r.o.PollAlways)
	r.mu.Lock()
	if w, ok := r.pending[key]; ok {
		if force && !w.force {
			w.force = true
			r.pending[key] = w
		}
		r.mu.Unlock()
		r.o.Metrics.Skipped(metrics.SkipCoalesced)
		return true, false
	}
	if len(r.pending) >= r.o.MaxPending && !wait {
		first := !r.overflow
		r.overflow = true
		r.mu.Unlock()
		r.o.Metrics.Skipped(metrics.SkipDropped)
		return false, first
	}
	r.pending[key] = want{kind: kind, since: r.o.Clock.Now(), force: force}
	r.queue = append(r.queue, key)
	r.peak = max(r.peak, len(r.pending))
	r.mu.Unlock()
	signal(r.wake)
	return true, false
}

// enqueueWait adds key for the scanner, waiting while half of MaxPending keys wait already:
// a scan of a large key space feeds the runner at its pace instead of filling memory.
func (r *Runner) enqueueWait(ctx context.Context, key string, kind trigger.Kind) bool {
	for {
		r.mu.Lock()
		n := len(r.pending)
		r.mu.Unlock()
		if n < r.o.MaxPending/2 {
			r.o.Metrics.Event(string(kind))
			r.add(key, kind, true)
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-r.drained:
		}
	}
}

// Gone forgets key, deleted or expired: it is no input any more. Its state stays in Redis.
func (r *Runner) Gone(key string) {
	r.mu.Lock()
	delete(r.pending, key)
	r.mu.Unlock()
	r.cache.Remove(key)
}

// Invoke handles a JSON object received on the trigger channel: {"key": "<key>"} runs that
// key (even on an unchanged value); any other object asks for a catch-up scan.
func (r *Runner) Invoke(payload []byte) {
	var m struct {
		Key *string `json:"key"`
	}
	if err := json.Unmarshal(payload, &m); err != nil || m.Key == nil {
		r.o.Logger.Debug("trigger message names no key: catching up on every key", "bytes", len(payload))
		r.Rescan(trigger.KindPubSub)
		return
	}
	r.NotifyKey(*m.Key, trigger.KindPubSub)
}

// Rescan asks for a full scan of the keys: each key whose value differs from the last one
// executed runs. Requests during a scan queue one more.
func (r *Runner) Rescan(kind trigger.Kind) {
	r.mu.Lock()
	r.scanReq++
	r.mu.Unlock()
	r.sendRescan(kind)
}

func (r *Runner) sendRescan(kind trigger.Kind) {
	select {
	case r.rescan <- kind:
	default:
	}
}

// Poll asks for one poll tick: a bounded slice of the key space is looked at.
func (r *Runner) Poll() { signal(r.poll) }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run runs keys until ctx is done; the batch in progress when it ends is finished. It also
// runs the scanner (catch-up and polling) until then.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { r.scan.run(ctx) })
	defer wg.Wait()
	var owner <-chan struct{}
	if r.o.Owner != nil {
		owner = r.o.Owner.Changes()
	}
	for {
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-owner:
			// The gain is taken and the scan asked for in one step, for CaughtUp.
			r.mu.Lock()
			gained := r.o.Owner.Gained()
			if gained {
				r.scanReq++
			}
			r.mu.Unlock()
			if gained {
				r.sendRescan(trigger.KindCatchup)
			}
		case <-r.wake:
		}
		for ctx.Err() == nil {
			batch := r.take()
			if len(batch) == 0 {
				break
			}
			r.runBatch(ctx, batch)
			r.mu.Lock()
			r.running = 0
			r.mu.Unlock()
		}
	}
}

// item is one key of a batch.
type item struct {
	key   string
	w     want
	e     *entry
	prev  *entry // the stale entry a reload replaces
	keys  Keys
	token int64
	// outcome decided so far ("" while the key is to run)
	outcome string
	raw     []byte
	id      string
	load    int // index of the state read in the batch's replies, -1 when cached
	get     int
	commit  *commitInfo
}

type commitInfo struct {
	res     exec.Result
	set     map[string][]byte
	del     []string
	at      time.Time
	took    time.Duration
	handler string
}

// take removes up to Batch waiting keys.
func (r *Runner) take() []item {
	r.mu.Lock()
	defer r.mu.Unlock()
	var batch []item
	i := 0
	for ; i < len(r.queue) && len(batch) < r.o.Batch; i++ {
		k := r.queue[i]
		w, ok := r.pending[k]
		if !ok {
			continue // gone meanwhile
		}
		delete(r.pending, k)
		batch = append(batch, item{key: k, w: w, load: -1, get: -1})
	}
	r.queue = r.queue[i:]
	if len(r.queue) == 0 {
		r.queue = r.queue[:0:0] // let a large backing array go
	}
	if len(r.pending) == 0 && r.peak > 4*r.o.Batch {
		r.pending, r.peak = map[string]want{}, 0
	}
	r.running = len(batch)
	if len(batch) > 0 {
		signal(r.drained)
	}
	return batch
}

func (r *Runner) redisCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return redisconn.CallContext(ctx, r.o.RedisTimeout)
}
