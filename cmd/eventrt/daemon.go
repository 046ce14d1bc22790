package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/exprengine"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/backoff"
	"github.com/eventrt/eventrt/internal/buildinfo"
	"github.com/eventrt/eventrt/internal/bundle"
	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/health"
	"github.com/eventrt/eventrt/internal/lease"
	"github.com/eventrt/eventrt/internal/logging"
	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/redisconn"
	"github.com/eventrt/eventrt/internal/runner"
	"github.com/eventrt/eventrt/internal/state"
	"github.com/eventrt/eventrt/internal/stream"
	"github.com/eventrt/eventrt/internal/trigger"
)

// hooks let tests observe the daemon; all fields are optional.
type hooks struct {
	// listening receives the HTTP address once the server listens.
	listening func(addr string)
	// started is called once every function's triggers and runner are running.
	started func()
	// streaming is called each time a stream consumer starts (main tunes the GC for it).
	streaming func()
	// layout replaces the paths looked at when nothing names the handler.
	layout *layout
	// running is called with the number of key-mode functions and of stream and pattern
	// functions (batch workloads) running, once all
	// have started and after each reload (main sizes GOMAXPROCS for it).
	running func(key, stream int)
	// memory is called once the logger exists, before anything else starts (main sets Go's
	// memory limit from the container's and logs it).
	memory func(log *slog.Logger)
}

// goroutine is one long-running piece, stopped by cancelling its context.
type goroutine struct {
	name   string
	cancel context.CancelFunc
	done   chan error
}

func spawn(parent context.Context, name string, fn func(context.Context) error) goroutine {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	g := goroutine{name: name, cancel: cancel, done: make(chan error, 1)}
	go func() { g.done <- fn(ctx) }()
	return g
}

// stop cancels g and waits for it until deadline; it reports whether g stopped in time.
func (g goroutine) stop(log *slog.Logger, deadline time.Time) bool {
	g.cancel()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case err := <-g.done:
		if err != nil {
			log.Warn("stopped with an error", "component", g.name, "err", err)
		}
		return true
	case <-t.C:
		log.Error("shutdown bound exceeded", "component", g.name, "variable", "SHUTDOWN_TIMEOUT")
		return false
	}
}

// daemon is the running process: shared pieces plus one unit per function.
type daemon struct {
	o       config.Options
	log     *slog.Logger
	clk     clock.Clock
	m       *metrics.Metrics
	hc      *health.Checker
	client  rueidis.Client
	redisCo rueidis.ClientOption // rueidis' defaults; client may have been created Light
	// light is set when client was created with redisconn.Light, because every function
	// configured at start runs (or may run) in key mode.
	light bool
	// batchMu guards batch: the client with rueidis' defaults that stream consumers and
	// pattern functions share when client is light (see batchClient).
	batchMu sync.Mutex
	batch   rueidis.Client

	h *hooks
	// src is the handler discovered at start; reloads load it again.
	src handlerSource
	// tmpDir holds Python bundles downloaded from ZIP_URL; removed at exit.
	tmpDir string

	mu    sync.Mutex
	units map[string]*unit
}

// executor is what runs a function's executions: a key-mode runner or a stream consumer.
type executor interface {
	Swap(exec.Version)
	Version() exec.Version
}

// unit is one function's runner and triggers.
type unit struct {
	fn       function
	runner   executor
	metrics  *metrics.Function
	runnerG  goroutine
	triggerG goroutine
	// sub is the client the triggers subscribe on (nil for a stream unit).
	sub rueidis.Client
	// lease is nil with LEASE=false.
	lease  *lease.Lease
	leaseG goroutine
	stream bool // a stream consumer, not a key-mode runner
	// A pattern function's share of the keys (nil with LEASE=false), and the unregistering
	// of its keys gauge.
	partitions *partitionsUnit
	forgetKeys func()
	runsMany   bool // a pattern function
}

// runDaemon runs eventrt until ctx ends and returns the exit code.
//
// Start order: handlers (compiled before anything else, so a bad program fails loudly before
// any event), HTTP server, Redis connection, health checks, then per function: state load,
// runner, triggers; last the reload watcher. Stop order: reload watcher, then per function
// its triggers (no new signals) and its runner (the execution in progress finishes), then
// health checks, HTTP and Redis. The whole stop is bounded by SHUTDOWN_TIMEOUT.
func runDaemon(ctx context.Context, o config.Options, logOut io.Writer, h *hooks) (exit int) {
	if h == nil {
		h = &hooks{}
	}
	log, err := logging.New(logOut, o.LogFormat, o.LogLevel)
	if err != nil {
		fmt.Fprintf(logOut, "eventrt: %v\n", err)
		return 2
	}
	bi := buildinfo.Get()
	log.Info("starting eventrt", "version", bi.Version, "revision", bi.Revision, "config", o)
	if h.memory != nil {
		h.memory(log)
	}
	d := &daemon{o: o, log: log, clk: clock.Real(), m: metrics.New(), h: h, units: map[string]*unit{}}
	defer func() {
		if d.tmpDir != "" {
			_ = os.RemoveAll(d.tmpDir) // downloaded copies only; the next start fetches again
		}
	}()
	l := defaultLayout()
	if h.layout != nil {
		l = *h.layout
	}
	if d.src, err = discover(o, l); err != nil {
		log.Error("no handler to run", "err", err)
		return 1
	}
	set, err := d.loadHandlers(ctx)
	if err != nil {
		log.Error("handler failed to load; fix it and restart", "err", err)
		return 1
	}
	for _, fn := range set.fns {
		v := set.versions[fn.Name]
		log.Info("handler loaded", "function", fn.Name, "file", v.File, "runtime", v.Runtime, "chosen_by", d.src.from)
	}
	for _, fn := range set.fns {
		if err := fn.check(); err != nil {
			log.Error("invalid function configuration", "err", err)
			return 1
		}
	}

	d.hc = health.New(health.Options{OnRedis: d.m.SetRedisUp, Clock: d.clk, Logger: log})
	mux := http.NewServeMux()
	mux.Handle("/metrics", d.m.Handler())
	mux.HandleFunc("/healthz", d.hc.Healthz)
	mux.HandleFunc("/readyz", d.hc.Readyz)
	ln, err := net.Listen("tcp", o.HTTPAddr)
	if err != nil {
		log.Error("cannot listen", "variable", "HTTP_ADDR", "addr", o.HTTPAddr, "err", err)
		return 1
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()
	if h.listening != nil {
		h.listening(ln.Addr().String())
	}
	log.Info("serving /metrics, /healthz, /readyz", "addr", ln.Addr().String())

	exit = 0 // named, so the deferred stop can turn an exceeded shutdown bound into exit 1
	var healthG, reloadG *goroutine
	defer func() {
		deadline := time.Now().Add(o.ShutdownTimeout)
		if reloadG != nil && !reloadG.stop(log, deadline) {
			exit = 1
		}
		if !d.stopUnits(deadline) {
			exit = 1
		}
		if healthG != nil {
			healthG.stop(log, deadline)
		}
		sctx, cancel := context.WithDeadline(context.Background(), deadline.Add(time.Second))
		_ = srv.Shutdown(sctx)
		cancel()
		if d.batch != nil {
			d.batch.Close()
		}
		if d.client != nil {
			d.client.Close()
		}
		log.Info("stopped", "exit", exit)
	}()

	if err := d.connect(ctx, set.fns); err != nil {
		if ctx.Err() != nil {
			return 0
		}
		log.Error("cannot create the Redis client", "err", err)
		return 1
	}
	d.hc.SetClient(d.client)
	g := spawn(ctx, "health", d.hc.Run)
	healthG = &g

	for _, fn := range set.fns {
		if err := d.startUnit(ctx, fn, set.versions[fn.Name]); err != nil {
			if ctx.Err() != nil {
				return 0
			}
			log.Error("cannot start function", "function", fn.Name, "err", err)
			return 1
		}
	}
	if o.Reload {
		g := spawn(ctx, "reload", d.watchHandlers)
		reloadG = &g
	}
	d.reportRunning()
	if h.started != nil {
		h.started()
	}
	select {
	case <-ctx.Done():
		log.Info("stopping", "bound", o.ShutdownTimeout)
	case err := <-srvDone:
		log.Error("HTTP server failed", "err", err)
		exit = 1
	}
	return exit
}

// connect creates the Redis client, retrying with backoff while Redis is unreachable so that
// a pod started before its Redis waits (not ready) instead of crash-looping. When every
// function of fns is a key-mode function (or may be one: its input's type is detected later),
// the client is Light: such functions send one command or transaction at a time.
func (d *daemon) connect(ctx context.Context, fns []function) error {
	co, err := redisOptions(d.o)
	if err != nil {
		return err
	}
	d.redisCo = co
	d.light = !slices.ContainsFunc(fns, function.batches)
	if d.light {
		co = redisconn.Light(co)
	}
	return d.retry(ctx, d.log, "connect to Redis", func() error {
		var err error
		d.client, err = rueidis.NewClient(co)
		return err
	}, nil)
}

// batchClient is the client a stream consumer or a pattern function pipelines its commands
// through: the shared client, unless that one is light (only key-mode functions were
// configured at start, and then an input turned out to be a stream or a reload added a
// batch function); then a client with rueidis' defaults, created on first use, shared by
// those functions and closed at exit.
func (d *daemon) batchClient(ctx context.Context, log *slog.Logger) (rueidis.Client, error) {
	if !d.light {
		return d.client, nil
	}
	d.batchMu.Lock()
	defer d.batchMu.Unlock()
	if d.batch != nil {
		return d.batch, nil
	}
	err := d.retry(ctx, log, "client for stream and pattern functions", func() error {
		var err error
		d.batch, err = rueidis.NewClient(d.redisCo)
		return err
	}, nil)
	return d.batch, err
}

// observeFallbacks counts the runs of an expr handler that go to expr's VM rather than its
// fast path, by reason, each reason's series created at 0.
func observeFallbacks(v exec.Version, fm *metrics.Function) {
	p, ok := v.Handler.(interface{ ObserveFallbacks(func(reason string)) })
	if !ok {
		return
	}
	fm.FastPathReasons(exprengine.FallbackReasons())
	p.ObserveFallbacks(fm.FastPathFallback)
}

// startUnit loads fn's state and starts its runner and triggers (key mode), or its consumer
// (stream mode).
func (d *daemon) startUnit(ctx context.Context, fn function, v exec.Version) (err error) {
	log := d.log.With("function", fn.Name)
	fm := d.m.Function(fn.Name)
	observeFallbacks(v, fm)
	// Not ready while the function starts (its start-up retries while Redis is away); a
	// function that fails to start leaves readiness to the others.
	d.hc.AddCheck(fn.Name, func() error { return errors.New("starting") })
	defer func() {
		if err != nil {
			d.hc.Remove(fn.Name)
		}
	}()
	configured := fn // what a reload compares against, before auto-detection
	if fn.InputMode == bundle.InputAuto {
		fn.InputMode = d.detectInputMode(ctx, fn)
	}
	if fn.InputMode == bundle.InputStream {
		return d.startStreamUnit(ctx, configured, fn, v, fm, log)
	}
	if fn.isPattern() {
		return d.startPatternUnit(ctx, configured, fn, v, fm, log)
	}
	// On a cluster, everything one commit touches must live in one hash slot.
	deadLetter := cmp.Or(d.o.DeadLetterKey, state.DeadKey(fn.StateKey))
	if err = redisconn.CheckSameSlot(d.client, fn.OutputKey, fn.StateKey, state.MetaKey(fn.StateKey),
		state.LeaseKey(fn.StateKey), state.FenceKey(fn.StateKey), deadLetter); err != nil {
		return fmt.Errorf("function %s: %w", fn.Name, err)
	}
	store, err := state.New(state.Options{Client: d.client, StateKey: fn.StateKey, OutputKey: fn.OutputKey})
	if err != nil {
		return err
	}
	var ls *lease.Lease
	if d.o.Lease {
		ls, err = lease.New(lease.Options{Client: d.client, Key: state.LeaseKey(fn.StateKey), FenceKey: state.FenceKey(fn.StateKey),
			TTL: d.o.LeaseTTL, Clock: d.clk, Logger: log})
		if err != nil {
			return err
		}
	}
	rn, err := runner.New(runner.Options{
		Name: fn.Name, Client: d.client, Store: store,
		InputKey: fn.InputKey, OutputKey: fn.OutputKey, Host: d.o.RedisHost, Port: d.o.RedisPort,
		PollAlways: fn.PollAlways, Metrics: fm, Logger: d.log, Clock: d.clk, Lease: ls,
		MaxAttempts: d.o.KeyMaxAttempts, DeadLetter: deadLetter,
	}, v)
	if err != nil {
		return err
	}
	if err = d.retry(ctx, log, "load state "+fn.StateKey, func() error { return rn.Load(ctx) }, state.IsCorrupt); err != nil {
		return err
	}
	// Each function subscribes on a client of its own: subscriptions of one connection are
	// shared, so two functions watching one key would otherwise end each other's subscription
	// when one of them stops (a reload that removes it).
	var sub rueidis.Client
	if err = d.retry(ctx, log, "subscription client", func() error {
		var err error
		sub, err = rueidis.NewClient(redisconn.Light(d.redisCo))
		return err
	}, nil); err != nil {
		return err
	}
	to := trigger.DefaultOptions()
	to.Client, to.DB, to.InputKey, to.Channel = sub, d.o.RedisDB, fn.InputKey, fn.Channel
	to.PollPeriod, to.ConfigureNotifications, to.Clock, to.Logger = fn.Period, d.o.NotifyConfig, d.clk, log
	w, err := trigger.New(to, rn)
	if err != nil {
		sub.Close()
		return err
	}
	// Nothing below can fail, so a lease taken here is always renewed and released.
	if ls != nil {
		// One attempt before the triggers start, so that a lone replica runs the first events
		// instead of standing by until its lease loop has started. A failure is retried by Run.
		if _, err := ls.Acquire(ctx); err != nil {
			log.Warn("lease: first attempt failed; retrying", "err", err)
		}
	}
	u := &unit{fn: configured, runner: rn, metrics: fm, lease: ls, sub: sub}
	if ls != nil {
		fm.ObserveLease(func() bool { _, held := ls.Held(); return held })
	}
	if ls != nil {
		u.leaseG = spawn(ctx, "lease "+fn.Name, ls.Run)
	}
	u.runnerG = spawn(ctx, "runner "+fn.Name, rn.Run)
	u.triggerG = spawn(ctx, "triggers "+fn.Name, w.Run)
	fm.ObserveNotifications(func() bool { return w.Status().Notifications })
	var caughtUp atomic.Bool
	d.hc.AddCheck(fn.Name, func() error {
		// Ready once subscribed and the first catch-up has run, which comes after the
		// notification config is in place: a write from then on triggers a run of its own
		// (before, the catch-up read might have run it).
		if st := w.Status(); !st.Subscribed || st.Catchups == 0 {
			return errors.New("triggers not in place yet")
		}
		if !caughtUp.Load() {
			if !rn.Idle() {
				return errors.New("first catch-up run in progress")
			}
			caughtUp.Store(true)
		}
		return nil
	})
	d.mu.Lock()
	d.units[fn.Name] = u
	d.mu.Unlock()
	log.Info("running", "input_key", fn.InputKey, "output_key", fn.OutputKey, "state_key", fn.StateKey,
		"trigger_channel", fn.Channel, "period", fn.Period, "hash", v.Handler.Hash(), "lease", ls != nil)
	return nil
}

// reportRunning tells the running hook how many functions of each mode run.
func (d *daemon) reportRunning() {
	if d.h.running == nil {
		return
	}
	var key, streams int
	d.mu.Lock()
	for _, u := range d.units {
		if u.stream || u.runsMany {
			streams++ // a batch workload, like a stream consumer: not one key's hand-offs
		} else {
			key++
		}
	}
	d.mu.Unlock()
	d.h.running(key, streams)
}

// stopUnit stops one function: triggers first, then the runner, then its lease.
func (d *daemon) stopUnit(u *unit, deadline time.Time) bool {
	d.hc.Remove(u.fn.Name)
	u.metrics.ObserveNotifications(nil)
	u.metrics.ObserveLease(nil)
	u.metrics.Forget()
	ok := u.stopTriggers(d.log, deadline)
	ok = u.runnerG.stop(d.log, deadline) && ok
	ok = d.releaseLease(u, deadline) && ok
	retire(u.runner.Version(), 0)
	return ok
}

// releaseLease stops renewing u's lease and gives it up, so that a standby replica takes over
// at once instead of after the lease time. It runs after the runner's last commit.
func (d *daemon) releaseLease(u *unit, deadline time.Time) bool {
	if u.forgetKeys != nil {
		u.forgetKeys()
	}
	if u.partitions != nil {
		return u.stopPartitions(d.log, deadline)
	}
	if u.lease == nil {
		return true
	}
	ok := u.leaseG.stop(d.log, deadline)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if _, err := u.lease.Release(ctx); err != nil {
		d.log.Warn("lease not released; a standby takes over when it expires", "function", u.fn.Name, "ttl", u.lease.TTL(), "err", err)
	}
	return ok
}

func (d *daemon) stopUnits(deadline time.Time) bool {
	d.mu.Lock()
	units := d.units
	d.units = map[string]*unit{}
	d.mu.Unlock()
	// Triggers of every function stop first, so no function receives work while another drains.
	ok := true
	for _, u := range units {
		ok = u.stopTriggers(d.log, deadline) && ok
	}
	for _, u := range units {
		ok = u.runnerG.stop(d.log, deadline) && ok
	}
	for _, u := range units {
		ok = d.releaseLease(u, deadline) && ok
		ok = closeHandler(u.runner.Version(), deadline) && ok
	}
	return ok
}

// closeHandler stops a handler that holds a process (a Python worker) within the shutdown
// bound; Close waits for a run in progress, which only a runner that overran the bound has.
func closeHandler(v exec.Version, deadline time.Time) bool {
	c, ok := v.Handler.(io.Closer)
	if !ok {
		return true
	}
	done := make(chan struct{})
	go func() {
		_ = c.Close()
		close(done)
	}()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// retry calls fn until it succeeds, ctx ends, or fatal(err) says the error will not go away,
// waiting the backoff package's delays (100ms doubling to 5s, jittered) on the daemon's clock;
// each failure is logged at warn.
func (d *daemon) retry(ctx context.Context, log *slog.Logger, what string, fn func() error, fatal func(error) bool) error {
	bo := backoff.New(0, 0)
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if fatal != nil && fatal(err) {
			return err
		}
		wait := bo.Next()
		log.Warn("retrying", "op", what, "attempt", attempt, "in", wait, "kind", metrics.ErrRedis, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.clk.After(wait):
		}
	}
}

// stopTriggers stops the unit's triggers and closes their client; a stream unit has none (its
// consumer reads).
func (u *unit) stopTriggers(log *slog.Logger, deadline time.Time) bool {
	if u.triggerG.done == nil {
		return true
	}
	ok := u.triggerG.stop(log, deadline)
	u.sub.Close()
	return ok
}

// detectInputMode asks Redis for the input key's type (INPUT_MODE=auto): a stream is consumed
// through a consumer group, anything else (or a key that does not exist yet) is watched.
func (d *daemon) detectInputMode(ctx context.Context, fn function) bundle.InputMode {
	var typ string
	_ = d.retry(ctx, d.log, "TYPE "+fn.InputKey, func() error {
		var err error
		typ, err = d.client.Do(ctx, d.client.B().Type().Key(fn.InputKey).Build()).ToString()
		return err
	}, nil)
	if typ == "stream" {
		d.log.Info("input key is a stream: consuming it through a consumer group", "function", fn.Name, "key", fn.InputKey)
		return bundle.InputStream
	}
	return bundle.InputKey
}

// streamExecutor adapts a stream consumer to the unit's executor.
type streamExecutor struct{ c *stream.Consumer }

func (s streamExecutor) Swap(v exec.Version)   { s.c.Swap(v) }
func (s streamExecutor) Version() exec.Version { return s.c.Version() }

// startStreamUnit starts a stream consumer for fn. Replicas share the entries through the
// consumer group, so there is no lease.
func (d *daemon) startStreamUnit(ctx context.Context, configured, fn function, v exec.Version, fm *metrics.Function, log *slog.Logger) error {
	if d.h.streaming != nil {
		d.h.streaming()
	}
	mode := stream.OutputMode(fn.OutputMode)
	if mode == "" {
		mode = stream.DefaultOutputMode
	}
	client, err := d.batchClient(ctx, log)
	if err != nil {
		return err
	}
	c, err := stream.New(stream.Options{
		Name: fn.Name, Client: client, Stream: fn.InputKey, Group: fn.Stream.Group, Consumer: fn.Stream.Consumer,
		Start: d.o.StreamStart, DataField: fn.Stream.DataField, Batch: d.o.StreamBatch, Workers: d.o.StreamWorkers,
		ClaimIdle: d.o.StreamClaimIdle, MaxAttempts: d.o.StreamMaxAttempts, DeadLetter: d.o.DeadLetterKey,
		Output: fn.OutputKey, OutputMode: mode, OutputMaxLen: int64(d.o.OutputMaxLen), StateKey: fn.StateKey,
		Host: d.o.RedisHost, Port: d.o.RedisPort, Metrics: fm, Logger: d.log, Clock: d.clk,
		HeartbeatTTL: d.o.StreamHeartbeatTTL,
		// Most of SHUTDOWN_TIMEOUT goes to finishing the delivered entries; the rest to the
		// commit and the stop of what follows.
		DrainTimeout: d.o.ShutdownTimeout * 3 / 4,
	}, v)
	if err != nil {
		return err
	}
	if d.client.Mode() == rueidis.ClientModeCluster {
		if err := c.CheckSlots(); err != nil {
			return err
		}
	}
	u := &unit{fn: configured, runner: streamExecutor{c}, metrics: fm, stream: true}
	u.runnerG = spawn(ctx, "consumer "+fn.Name, c.Run)
	d.hc.AddCheck(fn.Name, func() error { return nil }) // reading: the consumer retries Redis errors itself
	d.mu.Lock()
	d.units[fn.Name] = u
	d.mu.Unlock()
	log.Info("running", "input_stream", fn.InputKey, "group", c.Options().Group, "consumer", c.Options().Consumer,
		"output", fn.OutputKey, "output_mode", mode, "state_key", fn.StateKey, "hash", v.Handler.Hash())
	return nil
}
