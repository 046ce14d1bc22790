// Package metrics owns eventrt's Prometheus registry and every instrument in it. Nothing in
// eventrt registers globally: components receive the per-function handles they need from
// Metrics.Function. Label values come from closed sets (trigger kinds, outcomes, error kinds)
// or from configuration (function names, handler hashes); error text never becomes a label.
//
// Every series a dashboard panel or an alert reads exists, at 0, from the moment a function is
// registered (Function, then Mode): a counter created on its first increment would appear
// already at 1, and increase() over it stays 0, so the first failure would go unseen. The
// closed label sets below are therefore listed here; a new label value is added to its set.
package metrics

import (
	"iter"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eventrt/eventrt/internal/buildinfo"
)

// Namespace prefixes every eventrt metric.
const Namespace = "eventrt"

// MaxOutputFields bounds how many output fields one function exports as
// eventrt_output_value, so a handler returning a large map cannot explode cardinality.
const MaxOutputFields = 64

// Outcomes of an execution (and of a stream redelivery).
const (
	OutcomeSuccess = "success"
	OutcomeError   = "error"
)

// OutcomeFailure is a reload that was refused (the new handler did not compile).
const OutcomeFailure = "failure"

// Modes a function runs in; each receives its own triggers (modeTriggers) and counts its
// dead letters under its own mode label.
const (
	ModeKey     = "key"     // a key watched through notifications, pub/sub and polling
	ModeStream  = "stream"  // a stream read through a consumer group
	ModePattern = "pattern" // every key matching a pattern, each with its own state
)

// Trigger kinds, the trigger label of executions, events and lag.
const (
	TriggerKeyspace = "keyspace"
	TriggerPubSub   = "pubsub"
	TriggerPoll     = "poll"
	TriggerCatchup  = "catchup"
	TriggerStream   = "stream"
)

// modeTriggers lists the triggers of each mode, whose series Mode creates.
var modeTriggers = map[string][]string{
	ModeKey:     {TriggerKeyspace, TriggerPubSub, TriggerPoll, TriggerCatchup},
	ModeStream:  {TriggerStream},
	ModePattern: {TriggerKeyspace, TriggerPubSub, TriggerPoll, TriggerCatchup},
}

// Worker restart reasons (the Python engine's Reason* values).
const (
	RestartTimeout = "timeout"
	RestartCrash   = "crash"
	RestartMemory  = "memory"
)

// Reasons a signal did not lead to an execution.
const (
	SkipUnchanged = "unchanged" // the value was executed already
	SkipCoalesced = "coalesced" // folded into a run already pending
	SkipMissing   = "missing"   // the input key does not exist
	SkipFailed    = "failed"    // this value already failed with this handler version
	SkipDropped   = "dropped"   // an ad-hoc invocation found the queue full
	SkipStandby   = "standby"   // another replica holds the lease
	SkipFenced    = "fenced"    // the lease was lost during the run: its commit was refused
)

// Error kinds: the execution kinds (exec.Kind) plus redis.
const (
	ErrDecode   = "decode"
	ErrHandler  = "handler"
	ErrTimeout  = "timeout"
	ErrOutput   = "output"
	ErrMemory   = "memory"   // the run would pass HANDLER_MEMORY
	ErrInternal = "internal" // a bug in eventrt met while running the handler
	ErrRedis    = "redis"
)

// The closed label sets whose series Function creates at 0.
var (
	errorKinds     = []string{ErrDecode, ErrHandler, ErrTimeout, ErrOutput, ErrMemory, ErrInternal, ErrRedis}
	skipReasons    = []string{SkipUnchanged, SkipCoalesced, SkipMissing, SkipFailed, SkipDropped, SkipStandby, SkipFenced}
	reloadOutcomes = []string{OutcomeSuccess, OutcomeFailure}
	restartReasons = []string{RestartTimeout, RestartCrash, RestartMemory}
	outcomes       = []string{OutcomeSuccess, OutcomeError}
)

// Metrics is the registry and its instruments.
type Metrics struct {
	Registry *prometheus.Registry

	executions   *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	lag          *prometheus.HistogramVec
	errors       *prometheus.CounterVec
	lastSuccess  *prometheus.GaugeVec
	events       *prometheus.CounterVec
	skipped      *prometheus.CounterVec
	redisUp      prometheus.Gauge
	notify       *liveGauges
	leaseHeld    *liveGauges
	handlerInfo  *prometheus.GaugeVec
	handlerMtime *prometheus.GaugeVec
	outputValue  *prometheus.GaugeVec
	reloads      *prometheus.CounterVec
	streamLag    *prometheus.GaugeVec
	pending      *prometheus.GaugeVec
	oldest       *oldestAges
	redelivered  *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	restarts     *prometheus.CounterVec
	fallbacks    *prometheus.CounterVec
}

// New builds a private registry with eventrt's instruments, build info and the Go and
// process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { r.MustRegister(c) } // names are fixed here: a clash is a programming error
	m := &Metrics{Registry: r}
	m.executions = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "executions_total",
		Help: "Handler executions by trigger and outcome (success or error)."}, []string{"function", "trigger", "outcome"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "execution_duration_seconds",
		Help:    "Time spent in one handler execution (decode, evaluate, encode).",
		Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, .025, .05, .1, .25, .5, 1, 2.5, 5}},
		[]string{"function"})
	m.lag = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "trigger_lag_seconds",
		Help:    "Time from the trigger (event received, tick) to the committed output.",
		Buckets: []float64{1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
		[]string{"function", "trigger"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "errors_total",
		Help: "Failures by kind: decode, handler, timeout, output, memory, internal, redis."}, []string{"function", "kind"})
	m.lastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "last_success_timestamp_seconds",
		Help: "Unix time of the last successful execution."}, []string{"function"})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "events_total",
		Help: "Trigger signals received, before coalescing and de-duplication."}, []string{"function", "trigger"})
	m.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "runs_skipped_total",
		Help: "Signals that did not lead to an execution, by reason."}, []string{"function", "reason"})
	m.redisUp = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "redis_up",
		Help: "1 when the last Redis health check succeeded."})
	m.notify = &liveGauges{desc: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "keyspace_notifications"),
		"1 when keyspace notifications are known to arrive for the input key; 0 when relying on polling.", []string{"function"}, nil),
		fns: map[string]func() bool{}}
	m.leaseHeld = &liveGauges{desc: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "lease_held"),
		"1 when this replica holds the function's lease (runs it); 0 when standing by.", []string{"function"}, nil),
		fns: map[string]func() bool{}}
	m.handlerInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "handler_info",
		Help: "The handler version in use (hash of its source), value 1."}, []string{"function", "hash", "runtime"})
	m.handlerMtime = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "handler_mtime_seconds",
		Help: "Modification time of the handler file in use."}, []string{"function"})
	m.outputValue = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "output_value",
		Help: "Numeric top-level fields of the latest output (at most 64 per function)."}, []string{"function", "field"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "reloads_total",
		Help: "Handler reloads by outcome (success or failure)."}, []string{"function", "outcome"})
	m.streamLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "stream_lag_entries",
		Help: "Entries in the input stream not yet delivered to the consumer group (absent while Redis cannot tell, after deletions)."}, []string{"function"})
	m.pending = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "stream_pending_entries",
		Help: "Entries delivered to the consumer group but not acknowledged."}, []string{"function"})
	m.oldest = &oldestAges{desc: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "stream_oldest_entry_age_seconds"),
		"Age of the oldest entry the consumer group has not acknowledged (pending or not yet delivered); 0 when none waits.",
		[]string{"function"}, nil), since: map[string]time.Time{}, now: time.Now}
	m.redelivered = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "stream_redeliveries_total",
		Help: "Executions of stream entries delivered before (a retry after a failure, or a reclaim), by outcome; a failed one is not counted again in executions_total or errors_total."},
		[]string{"function", "outcome"})
	m.deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "dead_letters_total",
		Help: "Inputs set aside after failing for good (a stream entry moved to the dead-letter stream, a poison value in key mode), by mode; each counted once."},
		[]string{"function", "mode"})
	m.restarts = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "worker_restarts_total",
		Help: "Handler worker processes restarted, by reason (timeout, crash, memory)."}, []string{"function", "reason"})
	m.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "fastpath_fallbacks_total",
		Help: "Runs of an expr handler that went to expr's VM instead of the fast path, by reason."}, []string{"function", "reason"})
	bi := buildinfo.Get()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "build_info",
		Help: "Build information, value 1."}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(bi.Version, bi.Revision, bi.GoVersion).Set(1)
	for _, c := range []prometheus.Collector{m.executions, m.duration, m.lag, m.errors, m.lastSuccess, m.events,
		m.skipped, m.redisUp, m.notify, m.leaseHeld, m.handlerInfo, m.handlerMtime, m.outputValue, m.reloads, m.streamLag,
		m.pending, m.oldest, m.redelivered, m.deadLetters, m.restarts, m.fallbacks, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// SetRedisUp records the result of a Redis health check.
func (m *Metrics) SetRedisUp(up bool) { m.redisUp.Set(b2f(up)) }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Function returns the instruments of one function, with the function label bound, and
// creates at 0 the series every function has: errors by kind, skipped runs by reason, reloads
// by outcome, worker restarts by reason, execution duration and the last success. Calling it
// again for the same name returns a view of the same series. The series of the function's
// triggers come with Mode.
func (m *Metrics) Function(name string) *Function {
	for _, k := range errorKinds {
		m.errors.WithLabelValues(name, k)
	}
	for _, r := range skipReasons {
		m.skipped.WithLabelValues(name, r)
	}
	for _, o := range reloadOutcomes {
		m.reloads.WithLabelValues(name, o)
	}
	for _, r := range restartReasons {
		m.restarts.WithLabelValues(name, r)
	}
	m.duration.WithLabelValues(name)
	return &Function{m: m, name: name, outputs: map[string]prometheus.Gauge{}}
}

// Mode creates at 0 the series of a function running in mode (ModeKey, ModeStream):
// executions by trigger and outcome, events and trigger lag by trigger, dead letters, the last
// success (0: none yet), and in
// stream mode the group's backlog and redeliveries. The key-mode runner and the stream
// consumer call it when they are built; an unknown mode creates only the dead-letter series.
func (f *Function) Mode(mode string) {
	m := f.m
	for _, t := range modeTriggers[mode] {
		for _, o := range outcomes {
			m.executions.WithLabelValues(f.name, t, o)
		}
		m.events.WithLabelValues(f.name, t)
		m.lag.WithLabelValues(f.name, t)
	}
	m.deadLetters.WithLabelValues(f.name, mode)
	if mode == ModeStream {
		m.streamLag.WithLabelValues(f.name)
		m.pending.WithLabelValues(f.name)
		m.oldest.start(f.name)
		for _, o := range outcomes {
			m.redelivered.WithLabelValues(f.name, o)
		}
	}
	m.lastSuccess.WithLabelValues(f.name)
}

// Function is the per-function view of the instruments. Its methods are safe for concurrent
// use.
type Function struct {
	m    *Metrics
	name string

	mu sync.Mutex
	// outputs holds the output_value series of each output field seen, bound to its labels:
	// a run updates every one of them, and binding labels costs more than setting the value.
	outputs     map[string]prometheus.Gauge
	handlerHash string
	runtime     string
	// ok and failed hold the series Executed last updated for a success and for a failure,
	// bound to their labels: a stream records every entry, and binding labels (hashing them,
	// looking the series up) costs more than the observations themselves. A series is bound
	// when first needed (Mode created it at 0 already). Bound and cleared under mu.
	ok, failed atomic.Pointer[execSeries]
}

// execSeries are the series Executed updates for one trigger and outcome; lag and
// lastSuccess only for a success.
type execSeries struct {
	trigger     string
	count       prometheus.Counter
	duration    prometheus.Observer
	lag         prometheus.Observer
	lastSuccess prometheus.Gauge
}

// Event counts a trigger signal.
func (f *Function) Event(trigger string) { f.Events(trigger, 1) }

// Events counts n trigger signals at once (the entries of a stream batch).
func (f *Function) Events(trigger string, n int) {
	f.m.events.WithLabelValues(f.name, trigger).Add(float64(n))
}

// Skipped counts a signal that did not run.
func (f *Function) Skipped(reason string) { f.m.skipped.WithLabelValues(f.name, reason).Inc() }

// Error counts a failure of the given kind.
func (f *Function) Error(kind string) { f.m.errors.WithLabelValues(f.name, kind).Inc() }

// Executed records one execution: its outcome, its evaluation time, and for a success the
// lag from the trigger to the commit.
func (f *Function) Executed(trigger string, ok bool, took, lag time.Duration, now time.Time) {
	cache := &f.failed
	if ok {
		cache = &f.ok
	}
	in := cache.Load()
	if in == nil || in.trigger != trigger {
		in = f.bindExec(cache, trigger, ok)
	}
	if ok {
		in.lag.Observe(lag.Seconds())
		in.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
	}
	in.count.Inc()
	in.duration.Observe(took.Seconds())
}

func (f *Function) bindExec(cache *atomic.Pointer[execSeries], trigger string, ok bool) *execSeries {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := &execSeries{trigger: trigger, duration: f.m.duration.WithLabelValues(f.name)}
	if ok {
		in.count = f.m.executions.WithLabelValues(f.name, trigger, OutcomeSuccess)
		in.lag = f.m.lag.WithLabelValues(f.name, trigger)
		in.lastSuccess = f.m.lastSuccess.WithLabelValues(f.name)
	} else {
		in.count = f.m.executions.WithLabelValues(f.name, trigger, OutcomeError)
	}
	cache.Store(in)
	return in
}

// ObserveNotifications makes eventrt_keyspace_notifications report on() at every scrape; nil
// removes the series (the function stopped).
func (f *Function) ObserveNotifications(on func() bool) { f.m.notify.set(f.name, on) }

// ObserveLease makes eventrt_lease_held report held() at every scrape; nil removes it.
func (f *Function) ObserveLease(held func() bool) { f.m.leaseHeld.set(f.name, held) }

// liveGauges is a gauge per function whose value is read at scrape time, so it is never
// staler than the component it describes.
type liveGauges struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	fns  map[string]func() bool
}

func (g *liveGauges) set(name string, fn func() bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if fn == nil {
		delete(g.fns, name)
		return
	}
	g.fns[name] = fn
}

func (g *liveGauges) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *liveGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, fn := range g.fns {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, b2f(fn()), name)
	}
}

// Handler records the handler version now in use, replacing the previous one's series.
func (f *Function) Handler(hash, runtime string, mtime time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.handlerHash != "" {
		f.m.handlerInfo.DeleteLabelValues(f.name, f.handlerHash, f.runtime)
	}
	f.handlerHash, f.runtime = hash, runtime
	f.m.handlerInfo.WithLabelValues(f.name, hash, runtime).Set(1)
	f.m.handlerMtime.WithLabelValues(f.name).Set(float64(mtime.UnixNano()) / 1e9)
}

// Forget removes the gauges that describe a function's current state (it stopped running, for
// example removed from the manifest by a reload), so no alert fires for a function that no
// longer exists; counters keep their history.
func (f *Function) Forget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlerHash = ""
	clear(f.outputs)
	f.ok.Store(nil) // its lastSuccess is deleted below
	f.m.oldest.stop(f.name)
	l := prometheus.Labels{"function": f.name}
	for _, g := range []*prometheus.GaugeVec{f.m.handlerInfo, f.m.handlerMtime, f.m.lastSuccess, f.m.outputValue, f.m.streamLag, f.m.pending} {
		g.DeletePartialMatch(l)
	}
}

// Reload counts a reload attempt.
func (f *Function) Reload(ok bool) {
	outcome := OutcomeFailure
	if ok {
		outcome = OutcomeSuccess
	}
	f.m.reloads.WithLabelValues(f.name, outcome).Inc()
}

// Output exports the numeric fields among an output's top-level fields (bools as 0/1).
// Fields seen before but absent now keep their last value; at most MaxOutputFields fields
// are tracked.
func (f *Function) Output(fields iter.Seq2[string, any]) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, v := range fields {
		var x float64
		switch n := v.(type) {
		case float64:
			x = n
		case int:
			x = float64(n)
		case int64:
			x = float64(n)
		case bool:
			x = b2f(n)
		default:
			continue
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			continue
		}
		g, seen := f.outputs[k]
		if !seen {
			if len(f.outputs) >= MaxOutputFields {
				continue
			}
			g = f.m.outputValue.WithLabelValues(f.name, k)
			f.outputs[k] = g
		}
		g.Set(x)
	}
}

// Backlog is what a stream consumer group has not finished.
type Backlog struct {
	// Undelivered counts the entries not yet delivered to the group; UndeliveredKnown is
	// false when Redis cannot tell (entries were deleted from the middle of the stream).
	Undelivered      int64
	UndeliveredKnown bool
	// Pending counts the entries delivered but not acknowledged.
	Pending int64
	// OldestAge is the age of the oldest entry of either kind when measured; 0 when nothing
	// waits.
	OldestAge time.Duration
}

// StreamBacklog records the consumer group's backlog. The oldest entry's age is computed at
// every scrape from OldestAge and when it was recorded, so it keeps growing while the
// consumer is stuck between two measurements.
func (f *Function) StreamBacklog(b Backlog) {
	if b.UndeliveredKnown {
		f.m.streamLag.WithLabelValues(f.name).Set(float64(b.Undelivered))
	} else {
		// No sentinel value: the series is absent until Redis can count again.
		f.m.streamLag.DeleteLabelValues(f.name)
	}
	f.m.pending.WithLabelValues(f.name).Set(float64(b.Pending))
	f.m.oldest.set(f.name, b.OldestAge)
}

// DeadLetter counts n inputs set aside for good in mode (ModeStream: entries moved to the
// dead-letter stream; ModeKey: poison values). Count each input once, however many times it
// was attempted.
func (f *Function) DeadLetter(mode string, n int) {
	f.m.deadLetters.WithLabelValues(f.name, mode).Add(float64(n))
}

// Redelivered counts an execution of a stream entry delivered before, by its outcome.
func (f *Function) Redelivered(ok bool) {
	outcome := OutcomeError
	if ok {
		outcome = OutcomeSuccess
	}
	f.m.redelivered.WithLabelValues(f.name, outcome).Inc()
}

// FastPathReasons creates the fallback series of each reason at 0, so that a rate over them
// is defined from the start: the engine's fixed set of reasons, when the function registers.
func (f *Function) FastPathReasons(reasons []string) {
	for _, r := range reasons {
		f.m.fallbacks.WithLabelValues(f.name, r)
	}
}

// FastPathFallback counts a run that went to expr's VM instead of the fast path; reason is
// one of a small fixed set the engine defines, never error text.
func (f *Function) FastPathFallback(reason string) {
	f.m.fallbacks.WithLabelValues(f.name, reason).Inc()
}

// WorkerRestart counts a restart of a handler worker process.
func (f *Function) WorkerRestart(reason string) { f.m.restarts.WithLabelValues(f.name, reason).Inc() }

// oldestAges exports, per stream function, the age of its oldest waiting entry, computed at
// scrape time from when that entry was added.
type oldestAges struct {
	desc  *prometheus.Desc
	now   func() time.Time
	mu    sync.Mutex
	since map[string]time.Time // zero: nothing waits
}

func (o *oldestAges) start(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.since[name]; !ok {
		o.since[name] = time.Time{}
	}
}

func (o *oldestAges) set(name string, age time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var since time.Time
	if age > 0 {
		since = o.now().Add(-age)
	}
	o.since[name] = since
}

func (o *oldestAges) stop(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.since, name)
}

func (o *oldestAges) Describe(ch chan<- *prometheus.Desc) { ch <- o.desc }

func (o *oldestAges) Collect(ch chan<- prometheus.Metric) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	for name, t := range o.since {
		age := 0.0
		if !t.IsZero() {
			age = max(0, now.Sub(t).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(o.desc, prometheus.GaugeValue, age, name)
	}
}
