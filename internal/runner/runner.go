// Package runner owns the loop of one function in key mode: it receives trigger signals,
// guarantees that runs never overlap, collapses bursts into at most one follow-up run, skips
// values already executed, reads the input, calls the handler and hands the result to state
// for an atomic commit. Each Runner has one goroutine (Run); Notify and Invoke never block, so
// triggers can call them from Redis' pipeline goroutines.
//
// With a Lease (N replicas of one function), only the replica holding the lease runs: the
// others count their signals as skipped ("standby"). On acquiring the lease a runner reloads
// the state its predecessor committed and runs a catch-up on the key's current value; every
// commit carries the lease value, so a commit from a tenure that has ended is refused
// ("fenced") and the runner stands by until it holds the lease again.
//
// On a standalone server a Runner reads and commits on a connection of its own, taken from
// the client's pool of dedicated connections while Run runs: one goroutine's calls never
// overlap, so rueidis performs them on that goroutine, which keeps pipeline goroutine
// hand-offs off the path from a notification to the output (one more connection per function).
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventrt/eventrt/internal/exec/codec"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/lease"
	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/redisconn"
	"github.com/eventrt/eventrt/internal/state"
	"github.com/eventrt/eventrt/internal/trigger"
)

// DefaultAdhocQueue bounds the ad-hoc invocations (pub/sub JSON payloads) waiting to run.
const DefaultAdhocQueue = 64

// DefaultRedisTimeout bounds the Redis round trips of one run (read, commit).
const DefaultRedisTimeout = 5 * time.Second

// DefaultMaxAttempts is how many runs of one key value may end with the process dying (the
// OOM killer, a crash) before the value goes to the dead-letter stream instead of running.
const DefaultMaxAttempts = 3

// DefaultAttemptMarkAfter is Options.AttemptMarkAfter's default: far above a handler's usual
// run (tens of microseconds), far below what it takes to allocate a container's memory.
const DefaultAttemptMarkAfter = 5 * time.Millisecond

// Options configure a Runner.
type Options struct {
	Name      string // module.function, used in logs and metric labels
	Client    rueidis.Client
	Store     *state.Store
	InputKey  string
	OutputKey string
	// Host and Port are what context.host and context.port report.
	Host string
	Port int
	// PollAlways runs on every poll tick even when the value is unchanged (course behaviour).
	PollAlways   bool
	AdhocQueue   int
	RedisTimeout time.Duration
	Metrics      *metrics.Function
	Logger       *slog.Logger
	Clock        clock.Clock
	// Lease, when set, makes this runner one of N replicas: it runs only while it holds the
	// lease, and commits fenced by it. The caller runs Lease.Run (and Release on a graceful
	// stop, after Run has returned); the runner only reads it. Nil: a single replica.
	Lease *lease.Lease
	// MaxAttempts is how many runs of one value may kill the process before the value is
	// dead-lettered (DefaultMaxAttempts); DeadLetter is the dead-letter stream (by default
	// state.DeadKey of the state key, in its hash slot).
	MaxAttempts int
	DeadLetter  string
	// AttemptMarkAfter is how long a run lasts before it is recorded as an attempt of its
	// value (DefaultAttemptMarkAfter; negative: at once). Runs that end sooner write no
	// bookkeeping, so the common short run keeps its latency; a run that kills the process
	// sooner than this is not counted.
	AttemptMarkAfter time.Duration
	// Observe, when set, is told how each signal taken by Run ended: "success", "error" or
	// "skipped:<reason>". It runs on the Run goroutine; tests use it to await outcomes.
	Observe func(kind trigger.Kind, outcome string)
}

// Runner runs one function.
type Runner struct {
	o       Options
	version atomic.Pointer[exec.Version]
	wake    chan struct{}
	adhoc   chan adhocCall
	loaded  chan struct{}

	mu      sync.Mutex // guards the pending signal and running
	pending bool
	running bool // a signalled key-mode run is in progress
	kind    trigger.Kind
	since   time.Time
	force   bool

	decoder *codec.Decoder // reuses the key strings of the documents it decodes

	// Owned by the Run goroutine (and Load before Run starts).
	env        map[string]any
	fields     map[string]string
	bufs       exec.Buffers // the bytes of the last result, until the next run
	lastInput  string
	lastExec   *time.Time
	dirty      bool // the stored state may differ from memory: reload before the next run
	failedID   string
	failedHash string
	// lastAttempt and failedAttempt are the attempt ids (state.AttemptID) of the value last
	// executed and the value last failed: reads of them are not counted as attempts.
	lastAttempt   string
	failedAttempt string
	// attempts is the attempt count recorded for the value being run (0: none recorded);
	// nextCount is the count its run records (for the value nextCountID) if it lasts
	// AttemptMarkAfter.
	attempts    int64
	nextCount   int64
	nextCountID string
	// sameNode: the input key lives on the node of the state keys (see state.ReadOptions).
	sameNode bool
	tenure   int64 // lease token the loaded state belongs to; 0 when not holding
	rerun    bool  // execute is running a value again after its commit met a changed state
	// conn is the connection of the Run goroutine's own calls (read, commit), dedicated to
	// this runner while it holds one (see link); release gives it back.
	conn    rueidis.CoreClient
	release func()
}

type adhocCall struct {
	payload []byte
	at      time.Time
}

// New validates o and returns a Runner for the handler version v. Call Load before Run.
func New(o Options, v exec.Version) (*Runner, error) {
	switch {
	case o.Name == "":
		return nil, errors.New("runner: empty function name")
	case o.Client == nil || o.Store == nil:
		return nil, fmt.Errorf("runner %s: nil Redis client or store", o.Name)
	case o.InputKey == "" || o.OutputKey == "":
		return nil, fmt.Errorf("runner %s: empty input or output key", o.Name)
	case v.Handler == nil:
		return nil, fmt.Errorf("runner %s: nil handler", o.Name)
	}
	if o.AdhocQueue <= 0 {
		o.AdhocQueue = DefaultAdhocQueue
	}
	if o.RedisTimeout <= 0 {
		o.RedisTimeout = DefaultRedisTimeout
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New().Function(o.Name)
	}
	o.Metrics.Mode(metrics.ModeKey)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.AttemptMarkAfter == 0 {
		o.AttemptMarkAfter = DefaultAttemptMarkAfter
	}
	switch {
	case o.MaxAttempts == 0:
		o.MaxAttempts = DefaultMaxAttempts
	case o.MaxAttempts < 0:
		return nil, fmt.Errorf("runner %s: MaxAttempts %d below 1", o.Name, o.MaxAttempts)
	}
	if o.DeadLetter == "" {
		o.DeadLetter = state.DeadKey(o.Store.Key())
	}
	o.Logger = o.Logger.With("function", o.Name)
	r := &Runner{o: o, wake: make(chan struct{}, 1), adhoc: make(chan adhocCall, o.AdhocQueue), loaded: make(chan struct{}), decoder: codec.NewDecoder()}
	r.sameNode = o.Client.Mode() != rueidis.ClientModeCluster || redisconn.SameSlot(o.InputKey, o.Store.Key()) == nil
	r.Swap(v)
	return r, nil
}

// Swap installs a new handler version; the run in progress finishes with the old one.
func (r *Runner) Swap(v exec.Version) {
	r.version.Store(&v)
	r.o.Metrics.Handler(v.Handler.Hash(), v.Runtime, v.ModTime)
}

// Version returns the handler version in use.
func (r *Runner) Version() exec.Version { return *r.version.Load() }

// Load reads the function's state from Redis. It must succeed once before Run.
func (r *Runner) Load(ctx context.Context) error {
	snap, err := r.o.Store.Load(ctx)
	if err != nil {
		return err
	}
	env, err := exec.DecodeEnv(snap.Fields)
	if err != nil {
		// Valid JSON eventrt cannot hold (a number out of range, absurd nesting) is as final as
		// invalid JSON: report the field instead of retrying.
		ce := &state.CorruptError{Key: r.o.Store.Key(), Err: err}
		var de *codec.DecodeError
		if errors.As(err, &de) {
			ce.Field = de.Field
		}
		return ce
	}
	r.env, r.fields, r.lastInput = env, snap.Fields, snap.LastInput
	r.lastExec = nil
	if !snap.LastExecution.IsZero() {
		t := snap.LastExecution
		r.lastExec = &t
	}
	r.dirty = false
	select {
	case <-r.loaded:
	default:
		close(r.loaded)
	}
	return nil
}

// Notify asks for a run on the input key's current value. It never blocks: while a run is in
// progress, any number of signals collapse into one follow-up run.
func (r *Runner) Notify(kind trigger.Kind) {
	now := r.o.Clock.Now()
	r.o.Metrics.Event(string(kind))
	// An explicit PUBLISH, or a tick in always mode, runs even an unchanged value.
	force := kind == trigger.KindPubSub || (kind == trigger.KindPoll && r.o.PollAlways)
	r.mu.Lock()
	if r.pending {
		r.force = r.force || force
		r.mu.Unlock()
		r.o.Metrics.Skipped(metrics.SkipCoalesced)
		return
	}
	r.pending, r.kind, r.since, r.force = true, kind, now, force
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Idle reports whether no signal is waiting and no signalled run is in progress: every signal
// sent before the call that made it true has been handled.
func (r *Runner) Idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.pending && !r.running
}

// Invoke queues an ad-hoc run with payload (a JSON object) as input. It never blocks: when the
// queue is full the invocation is dropped, logged and counted.
func (r *Runner) Invoke(payload []byte) {
	r.o.Metrics.Event(string(trigger.KindPubSub))
	select {
	case r.adhoc <- adhocCall{payload: payload, at: r.o.Clock.Now()}:
	default:
		r.o.Metrics.Skipped(metrics.SkipDropped)
		r.o.Logger.Warn("ad-hoc invocation dropped: queue full", "queue", cap(r.adhoc))
	}
}

// Run executes signals until ctx is done. The execution in progress when ctx ends is finished
// (its Redis calls are not cancelled), then Run returns nil.
func (r *Runner) Run(ctx context.Context) error {
	select {
	case <-r.loaded:
	default:
		return fmt.Errorf("runner %s: Run before a successful Load", r.o.Name)
	}
	var leaseChanges <-chan struct{}
	if r.o.Lease != nil {
		leaseChanges = r.o.Lease.Changes()
	}
	defer r.unlink()
	for {
		// Shutdown wins over queued work.
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-leaseChanges:
			r.leaseChanged(ctx)
		case <-r.wake:
			r.mu.Lock()
			kind, since, force := r.kind, r.since, r.force
			r.pending, r.force, r.running = false, false, true
			r.mu.Unlock()
			r.observe(kind, r.runKey(ctx, kind, since, force))
			r.mu.Lock()
			r.running = false
			r.mu.Unlock()
		case a := <-r.adhoc:
			r.observe(trigger.KindPubSub, r.runAdhoc(ctx, a))
		}
	}
}

// leaseChanged reacts to the lease being acquired (catch up on the key's current value, which
// the previous holder may not have run) or lost.
func (r *Runner) leaseChanged(ctx context.Context) {
	h, ok := r.o.Lease.Held()
	switch {
	case !ok && r.tenure != 0:
		r.o.Logger.Info("lease lost: standing by", "token", r.tenure)
		r.tenure, r.dirty = 0, true
	case ok && h.Token != r.tenure:
		r.observe(trigger.KindCatchup, r.runKey(ctx, trigger.KindCatchup, r.o.Clock.Now(), false))
	}
}

// holding returns the lease tenure a run commits under, or the outcome of a run that must not
// happen. A runner without a Lease always runs (zero Holding: unfenced commits). A tenure seen
// for the first time starts with a reload of the state, which another replica may have
// advanced.
func (r *Runner) holding(ctx context.Context, kind trigger.Kind) (lease.Holding, string) {
	if r.o.Lease == nil {
		return lease.Holding{}, ""
	}
	h, ok := r.o.Lease.Held()
	if !ok {
		if r.tenure != 0 {
			r.tenure, r.dirty = 0, true
		}
		r.o.Metrics.Skipped(metrics.SkipStandby)
		return h, skipped(metrics.SkipStandby)
	}
	if h.Token != r.tenure {
		rctx, cancel := redisconn.CallContext(ctx, r.o.RedisTimeout)
		err := r.Load(rctx)
		cancel()
		if err != nil {
			r.dirty = true
			r.redisError("load state after acquiring the lease", err, kind)
			return h, metrics.OutcomeError
		}
		r.tenure = h.Token
		r.o.Logger.Info("holding the lease: running", "token", h.Token)
	}
	return h, ""
}

func (r *Runner) runAdhoc(ctx context.Context, a adhocCall) string {
	r.attempts = 0 // an ad-hoc payload is not counted: it is never delivered again
	h, outcome := r.holding(ctx, trigger.KindPubSub)
	if outcome != "" {
		return outcome
	}
	return r.execute(ctx, trigger.KindPubSub, a.at, a.payload, "", h, false)
}

func (r *Runner) observe(kind trigger.Kind, outcome string) {
	if r.o.Observe != nil {
		r.o.Observe(kind, outcome)
	}
}

func skipped(reason string) string { return "skipped:" + reason }

// link returns the connection for the Run goroutine's read and commit. On a standalone
// server that is a connection dedicated to this runner: one goroutine's calls never overlap,
// so rueidis writes and reads them on that goroutine instead of handing each to its pipeline
// goroutines (a shared client's connection serves every caller, subscriptions included), which
// saves two goroutine wake-ups per round trip on the path from a notification to the output.
// Elsewhere (a cluster routes every key by slot, a sentinel client follows failovers) it is
// the shared client.
func (r *Runner) link() rueidis.CoreClient {
	if r.conn != nil {
		return r.conn
	}
	if r.o.Client.Mode() != rueidis.ClientModeStandalone {
		return r.o.Client
	}
	r.conn, r.release = r.o.Client.Dedicate()
	return r.conn
}

// unlink gives the dedicated connection back to the client's pool after an error on it (a
// broken connection stays broken; the pool replaces it) and when Run returns.
func (r *Runner) unlink() {
	if r.release != nil {
		r.release()
	}
	r.conn, r.release = nil, nil
}

// read reads the input key for a run under the lease tenure h (none when zero), with the
// value's attempt count (state.Read, in the read's round trip; markAttempt records the run). On a dedicated
// connection it also WATCHes the state hash, and the lease for a fenced run; watched reports
// that the commit may then be a transaction (the lease held h).
//
// A connection failure on the dedicated connection is tried once more on a fresh one: the
// connection may have broken while idle (a restarted server), which the shared client would
// have noticed and replaced by itself. Counting twice only costs the value one attempt.
func (r *Runner) read(ctx context.Context, h lease.Holding) (rd state.Read, watched bool, err error) {
	rctx, cancel := redisconn.CallContext(ctx, r.o.RedisTimeout)
	defer cancel()
	skip := make([]string, 0, 2)
	for _, id := range []string{r.lastAttempt, r.failedAttempt} {
		if id != "" {
			skip = append(skip, id)
		}
	}
	read := func() (state.Read, error) {
		conn := r.link()
		dedicated := r.conn != nil
		return r.o.Store.Read(rctx, conn, r.o.InputKey, state.ReadOptions{
			Watch: dedicated, WatchLease: dedicated && h.Value != "",
			Count: true, Skip: skip, SameNode: r.sameNode,
		})
	}
	rd, err = read()
	var reply *rueidis.RedisError
	if err != nil && !errors.As(err, &reply) && r.conn != nil && rctx.Err() == nil {
		r.unlink()
		rd, err = read()
	}
	if err != nil {
		r.unlink()
	}
	return rd, rd.Watched && (h.Value == "" || rd.Lease == h.Value), err
}

func (r *Runner) runKey(ctx context.Context, kind trigger.Kind, since time.Time, force bool) string {
	// Standbys do not even read the input: N replicas cost one GET per event, not N.
	h, outcome := r.holding(ctx, kind)
	if outcome != "" {
		return outcome
	}
	rd, watched, err := r.read(ctx, h)
	if err != nil {
		r.redisError("read input", err, kind)
		return metrics.OutcomeError
	}
	raw := rd.Raw
	r.attempts, r.nextCount, r.nextCountID = 0, rd.Attempts, rd.AttemptID
	if rd.Fields != int64(len(r.fields)) && !r.dirty {
		// Someone deleted (reset) or edited the state hash: run on what it holds now, and
		// never write only this run's changes into it.
		r.o.Logger.Info("the state hash changed outside eventrt (a reset?): reloading it before the run",
			"state_key", r.o.Store.Key(), "fields", rd.Fields, "fields_last_committed", len(r.fields))
		r.dirty = true
	}
	if raw == nil {
		r.o.Metrics.Skipped(metrics.SkipMissing)
		r.o.Logger.Debug("input key missing", "key", r.o.InputKey, "trigger", kind)
		return skipped(metrics.SkipMissing)
	}
	id := state.InputID(raw)
	if !force && id == r.lastInput && !r.dirty {
		r.lastAttempt = rd.AttemptID
		r.o.Metrics.Skipped(metrics.SkipUnchanged)
		return skipped(metrics.SkipUnchanged)
	}
	if !force && id == r.failedID && r.version.Load().Handler.Hash() == r.failedHash {
		// The same value already failed with the same handler; a new value or a reload retries.
		r.o.Metrics.Skipped(metrics.SkipFailed)
		return skipped(metrics.SkipFailed)
	}
	if rd.Attempts > int64(r.o.MaxAttempts) {
		return r.deadLetter(ctx, kind, raw, id, rd)
	}
	return r.execute(ctx, kind, since, raw, id, h, watched)
}

// deadLetter moves a value whose runs kept killing the process (rd.Attempts-1 runs started
// and never ended) to the dead-letter stream instead of running it, and records it as
// executed: it is skipped until the key changes.
func (r *Runner) deadLetter(ctx context.Context, kind trigger.Kind, raw []byte, id string, rd state.Read) string {
	died := rd.Attempts - 1
	rctx, cancel := redisconn.CallContext(ctx, r.o.RedisTimeout)
	err := r.o.Store.DeadLetter(rctx, r.link(), state.Dead{
		DeadLetter: r.o.DeadLetter, Key: r.o.InputKey, Raw: raw, InputID: id, Attempts: died, At: r.o.Clock.Now(),
		Error: fmt.Sprintf("the process died during each of %d runs of this value (max attempts %d)", died, r.o.MaxAttempts),
	})
	cancel()
	if err != nil {
		r.unlink()
		r.redisError("dead-letter", err, kind)
		return metrics.OutcomeError
	}
	r.lastInput, r.lastAttempt, r.attempts = id, rd.AttemptID, 0
	r.o.Metrics.DeadLetter(metrics.ModeKey, 1)
	r.o.Logger.Error("value moved to the dead-letter stream: each of its runs killed the process; it is skipped until the key changes",
		"key", r.o.InputKey, "dead_letter", r.o.DeadLetter, "attempts", died, "input_bytes", len(raw), "trigger", kind)
	return skipped(SkipDead)
}

// SkipDead is the outcome (skipped:dead) of a value moved to the dead-letter stream.
const SkipDead = "dead"

// execute runs the handler on raw and commits the result under the lease tenure h (none when
// h is zero). id identifies a key value (and is recorded as executed); it is empty for ad-hoc
// invocations. watched: the run's read WATCHed the lease on the dedicated connection and saw h.
func (r *Runner) execute(ctx context.Context, kind trigger.Kind, since time.Time, raw []byte, id string, h lease.Holding, watched bool) string {
	if r.dirty {
		rctx, cancel := redisconn.CallContext(ctx, r.o.RedisTimeout)
		err := r.Load(rctx)
		cancel()
		if err != nil {
			r.redisError("reload state", err, kind)
			return metrics.OutcomeError
		}
		if id != "" && id == r.lastInput {
			// The commit whose reply was lost did land: this value ran already.
			r.o.Metrics.Skipped(metrics.SkipUnchanged)
			return skipped(metrics.SkipUnchanged)
		}
	}
	v := r.version.Load()
	start := r.o.Clock.Now()
	mark := r.markAttempt(id)
	res, err := r.evaluate(v, kind, raw, id)
	took := r.o.Clock.Now().Sub(start)
	r.endMark(mark)
	if err != nil {
		kindLabel := string(exec.KindOf(err))
		if kindLabel == "" {
			kindLabel = string(exec.KindHandler)
		}
		r.o.Metrics.Error(kindLabel)
		r.o.Metrics.Executed(string(kind), false, took, 0, start)
		r.o.Logger.Warn("execution failed", "trigger", kind, "kind", kindLabel, "key", r.o.InputKey, "err", err)
		if stack := exec.PanicStack(err); stack != nil {
			r.o.Logger.Error("internal error: a bug in eventrt, please report it", "err", err, "stack", string(stack))
		}
		if id != "" {
			r.failedID, r.failedHash = id, v.Handler.Hash()
		}
		r.clearAttempt(ctx, kind, raw)
		r.restoreEnv()
		return metrics.OutcomeError
	}
	c := state.Commit{Output: res.Output, InputID: id, At: r.o.Clock.Now(), Handler: v.Handler.Hash(), Fence: h.Value, Token: h.Token,
		Watched: watched, CheckFields: true, Fields: len(r.fields), ClearAttempt: r.attempts > 0}
	if res.StateSet {
		c.Set, c.Del = state.Diff(r.fields, res.EnvFields.All())
	}
	rctx, cancel := redisconn.CallContext(ctx, r.o.RedisTimeout)
	err = r.o.Store.CommitOn(rctx, r.link(), c)
	cancel()
	if err != nil && !state.IsFenced(err) && !state.IsStateChanged(err) {
		r.unlink()
	}
	if state.IsStateChanged(err) && !r.rerun {
		// The state hash was deleted or edited during the run: run again on what it holds
		// now (once; a hash that keeps changing is an error below).
		r.o.Logger.Info("the state hash changed outside eventrt during the run (a reset?): running again on it",
			"state_key", r.o.Store.Key(), "trigger", kind)
		r.dirty, r.rerun = true, true
		defer func() { r.rerun = false }()
		return r.execute(ctx, kind, since, raw, id, h, false)
	}
	if state.IsFenced(err) && r.o.Lease != nil {
		// Another replica took over while this one ran (or was paused): it owns the state now,
		// and this result was written nowhere.
		r.tenure, r.dirty = 0, true
		r.o.Lease.Fenced(h.Token)
		r.o.Metrics.Skipped(metrics.SkipFenced)
		r.o.Logger.Warn("commit refused: the lease passed to another replica during the run; standing by",
			"trigger", kind, "key", r.o.InputKey, "token", h.Token)
		return skipped(metrics.SkipFenced)
	}
	if err != nil {
		// The reply may be lost after EXEC ran: read the truth back before the next run.
		r.dirty = true
		r.o.Metrics.Executed(string(kind), false, took, 0, start)
		r.redisError("commit", err, kind)
		return metrics.OutcomeError
	}
	if res.StateSet {
		// r.fields becomes what the commit left in the state hash; the values are copied out
		// of r.bufs, which the next run reuses.
		r.env = res.Env
		if r.fields == nil {
			r.fields = make(map[string]string, len(c.Set))
		}
		for k, v := range c.Set {
			r.fields[k] = string(v)
		}
		for _, k := range c.Del {
			delete(r.fields, k)
		}
	}
	if id != "" {
		r.lastInput = id
		if r.attempts > 0 {
			r.lastAttempt = state.AttemptID(raw)
		}
	}
	at := c.At
	r.lastExec = &at
	r.failedID, r.failedAttempt, r.attempts = "", "", 0
	r.o.Metrics.Executed(string(kind), true, took, at.Sub(since), at)
	if res.Value != nil {
		r.o.Metrics.Output(exec.TopLevel(res.Value))
	}
	r.o.Logger.Debug("executed", "trigger", kind, "took", took, "output_bytes", len(res.Output), "state_set", res.StateSet)
	return metrics.OutcomeSuccess
}

func (r *Runner) evaluate(v *exec.Version, kind trigger.Kind, raw []byte, id string) (res exec.Result, err error) {
	defer func() {
		// The input may be decoded by the handler itself (exec.InputFor).
		if err != nil && exec.KindOf(err) == exec.KindDecode {
			if id == "" {
				err = fmt.Errorf("pub/sub payload: %w", err)
			} else {
				err = fmt.Errorf("key %s: %w", r.o.InputKey, err)
			}
		}
	}()
	input, err := exec.InputFor(v.Handler, raw, r.decoder)
	if err != nil {
		return exec.Result{}, err
	}
	// The last result's bytes were committed, and the changed fields copied (r.fields).
	r.bufs.Reset()
	// The run may change r.env in place: restoreEnv rebuilds it after a failed run, the
	// reload that follows a failed commit after that.
	return v.Handler.Run(exec.Call{
		Input:    input,
		Env:      r.env,
		EnvOwned: true,
		Buffers:  &r.bufs,
		Context: exec.Context{
			Host:             r.o.Host,
			Port:             r.o.Port,
			InputKey:         r.o.InputKey,
			OutputKey:        r.o.OutputKey,
			FunctionGetmtime: v.ModTime.Local().Format("2006-01-02 15:04:05"),
			LastExecution:    r.lastExec,
			Trigger:          string(kind),
			Function:         r.o.Name,
		},
	})
}

// restoreEnv makes r.env the state last committed again after a failed run, which may have
// changed it (exec.Call.EnvOwned): decoded from the stored fields, or read back from Redis
// before the next run when they cannot be decoded (they always can: they were checked).
func (r *Runner) restoreEnv() {
	env, err := exec.DecodeEnv(r.fields)
	if err != nil {
		r.dirty = true
		return
	}
	r.env = env
}

func (r *Runner) redisError(op string, err error, kind trigger.Kind) {
	r.o.Metrics.Error(metrics.ErrRedis)
	r.o.Logger.Warn("redis error; the value will be retried after reconnecting", "op", op, "trigger", kind, "key", r.o.InputKey, "kind", metrics.ErrRedis, "err", err)
}
