// Package trigger turns Redis happenings into "run now" signals for one function watching one
// input key (key mode). It owns the SUBSCRIBE to the key's keyspace channel and to the pub/sub
// trigger channel, the notify-keyspace-events configuration those events depend on (checked and
// completed at start and after every reconnect, or probed when CONFIG is refused), the catch-up
// signal after (re)subscribing, and the polling fallback. It knows nothing about handlers:
// reading the key, deduplicating values and running them belong to the caller's Sink.
//
// On a Redis Cluster (a client whose Mode is rueidis.ClientModeCluster) keyspace events are
// published only by the node that executes the write, so the Watcher also owns following the
// input key: it subscribes on the master that owns the key's hash slot, sends CONFIG to that
// node (a keyless command on a cluster client reaches an arbitrary one), and re-checks the
// owner after a reconnect, a "del" of the key (a slot migration moves keys with DEL), a lost
// connection, a failed setup and every poll tick. When the owner changed it unsubscribes,
// subscribes on the new owner, configures notifications there and signals a catch-up. The
// trigger channel shares that subscription: PUBLISH reaches every node of a cluster. (A JSON
// payload published during the moment of a move is lost, like any pub/sub message sent while
// nobody listens; a plain run request is covered by the catch-up.)
package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/backoff"
	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/redisconn"
)

// Kind says what made a run necessary. It is used as a metric label, so its set is closed.
type Kind string

const (
	// KindKeyspace: a keyspace notification reported a write to the input key.
	KindKeyspace Kind = "keyspace"
	// KindPubSub: a message on the trigger channel whose payload is not a JSON object.
	KindPubSub Kind = "pubsub"
	// KindPoll: the polling period elapsed.
	KindPoll Kind = "poll"
	// KindCatchup: the key must be read once because events may have been missed (at start and
	// after every resubscription).
	KindCatchup Kind = "catchup"
)

// Sink receives the Watcher's signals. Both methods are called from rueidis' pipeline goroutine
// (or the Watcher's own goroutines) and MUST NOT block: a blocked Sink stalls every command and
// subscription sharing the client's connection. Coalesce with a non-blocking send.
type Sink interface {
	// Notify asks for a run on the key's current value.
	Notify(kind Kind)
	// Invoke asks for an ad-hoc run with payload (a JSON object received on the trigger
	// channel) as input. The Sink owns payload.
	Invoke(payload []byte)
}

// Defaults used by DefaultOptions and for zero-valued fields of Options.
const (
	DefaultPollPeriod      = 5 * time.Second
	DefaultProbeTimeout    = time.Second
	DefaultCommandTimeout  = 5 * time.Second
	DefaultRetryBackoff    = backoff.DefaultMin
	DefaultMaxRetryBackoff = backoff.DefaultMax
	// DefaultEventClasses are the notify-keyspace-events classes (besides K) the Watcher needs:
	// $ for string writes, h for hash writes, and g because RENAME/COPY/RESTORE/MOVE onto the
	// input key (the write-then-rename pattern) are reported under the generic class. t is left
	// out on purpose: stream inputs are consumed with XREADGROUP, not keyspace events, and
	// enabling t would make the server publish an event for every XADD of every stream.
	DefaultEventClasses = "g$h"
)

// Options configures a Watcher. Start from DefaultOptions; zero durations, a nil Clock and an
// empty EventClasses are replaced by their defaults.
type Options struct {
	// Client is the shared client (created with DisableCache: true); required. Its SelectDB
	// must equal DB.
	Client rueidis.Client
	// DB is the database number of the input key, used to name its keyspace channel. It must
	// be 0 on a cluster.
	DB int
	// InputKey is the key whose writes trigger runs; required.
	InputKey string
	// Channel is the pub/sub trigger channel; "" disables it.
	Channel string
	// PollPeriod is the polling fallback's period.
	PollPeriod time.Duration
	// ConfigureNotifications lets the Watcher CONFIG SET notify-keyspace-events when it lacks
	// the classes needed. When false the configuration is only read (or probed).
	ConfigureNotifications bool
	// EventClasses are the notify-keyspace-events classes required besides K.
	EventClasses string
	// ProbeTimeout is how long to wait for a probe's keyspace events when CONFIG is refused.
	// It is wall time, like CommandTimeout: both bound network round trips, which a fake
	// Clock does not drive.
	ProbeTimeout time.Duration
	// CommandTimeout bounds each command the Watcher issues itself (CONFIG, probe writes,
	// UNSUBSCRIBE).
	CommandTimeout time.Duration
	// RetryBackoff and MaxRetryBackoff bound the exponential backoff between attempts to
	// resubscribe or to re-apply the notification configuration.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// Clock drives the poll ticker and the retry backoff.
	Clock clock.Clock
	// Logger receives warnings and debug records; nil discards them.
	Logger *slog.Logger
}

// DefaultOptions returns Options with every default set; Client and InputKey remain to be set.
func DefaultOptions() Options {
	return Options{
		PollPeriod:             DefaultPollPeriod,
		ConfigureNotifications: true,
		EventClasses:           DefaultEventClasses,
		ProbeTimeout:           DefaultProbeTimeout,
		CommandTimeout:         DefaultCommandTimeout,
		RetryBackoff:           DefaultRetryBackoff,
		MaxRetryBackoff:        DefaultMaxRetryBackoff,
		Clock:                  clock.Real(),
	}
}

var (
	// ErrInvalidOptions is returned by New for an unusable Options value.
	ErrInvalidOptions = errors.New("trigger: invalid options")
	// ErrAlreadyRunning is returned by Run when the Watcher is already running or has run.
	ErrAlreadyRunning = errors.New("trigger: watcher already started")
	// ErrConfigRefused marks a refused CONFIG command (renamed away, or denied by an ACL).
	ErrConfigRefused = errors.New("trigger: CONFIG refused")
)

// IsInvalidOptions reports whether err comes from validating Options.
func IsInvalidOptions(err error) bool { return errors.Is(err, ErrInvalidOptions) }

// IsConfigRefused reports whether err is a refused CONFIG command.
func IsConfigRefused(err error) bool { return errors.Is(err, ErrConfigRefused) }

// Status is a snapshot of a Watcher's state, for readiness checks and metrics.
type Status struct {
	// Subscribed: the keyspace channel and the trigger channel (when set) are subscribed.
	Subscribed bool
	// Notifications: keyspace events for string and hash writes to the input key are known to
	// arrive (the configuration covers them, or a probe saw them). When false the caller
	// relies on polling.
	Notifications bool
	// NotifyConfig is notify-keyspace-events as last read or set; "" when CONFIG is refused.
	NotifyConfig string
	// ConfigRefused: CONFIG was refused, so notifications were probed instead.
	ConfigRefused bool
	// Reconnects counts resubscriptions after the first subscription.
	Reconnects int
	// Catchups counts KindCatchup signals sent (counted once the sink has it).
	Catchups int
	// Cluster: the client is a cluster client, so the Watcher follows the node owning the key.
	Cluster bool
	// Node is the address of the node the keyspace channel is subscribed on, or being
	// subscribed on (Subscribed tells which); "" when not a cluster or before the owner was
	// first found.
	Node string
	// Moves counts how often the subscription followed the input key to another node (slot
	// migration, failover). A move is not counted in Reconnects.
	Moves int
	// LastError is the latest error met, "" if none; LastErrorTime is when (by Clock).
	LastError     string
	LastErrorTime time.Time
}

// Watcher watches one input key. Create it with New and start it with Run.
type Watcher struct {
	opts   Options
	sink   Sink
	log    *slog.Logger
	client rueidis.Client
	unsub  redisconn.Unsubscriber

	keyspaceChannel string
	required        string // K + EventClasses

	// cluster: the client routes by slot, so subscriptions and CONFIG go to the node owning
	// slot, the input key's hash slot. probeTag is a hash tag in that slot.
	cluster  bool
	slot     int
	probeTag string
	// recheck is signalled (non-blocking) when the node owning the key may have changed.
	recheck chan struct{}

	started atomic.Bool
	// setup is signalled (non-blocking, from the pipeline goroutine) when the keyspace channel
	// is (re)subscribed: the notification config must be re-applied and the key caught up.
	setup chan struct{}
	// verify is signalled on every poll tick: the configuration is read again, since another
	// client may change it while the subscription stays up (see verifyNotifications).
	verify chan struct{}
	// keyspaceConfirms counts subscribe confirmations of the keyspace channel over the
	// Watcher's life; every one after the first is a reconnect, unless it completes a move.
	keyspaceConfirms atomic.Int64

	mu      sync.Mutex
	status  Status
	ksSub   bool // keyspace channel subscribed
	chSub   bool // trigger channel subscribed
	notifOK bool // configuration or probe says events arrive
	warned  bool // the "notifications do not arrive" warning was logged since they last worked
	// tgt is the node of the current subscription attempt and gen numbers the attempts:
	// hooks and setup rounds of an older attempt (a node left behind) must not change the
	// status. cancelSub ends the current attempt; afterMove marks an attempt made because the
	// key moved, whose first confirmation is no reconnect.
	tgt       target
	gen       uint64
	cancelSub context.CancelFunc
	afterMove bool
}

// New validates opts and returns a Watcher that signals sink.
func New(opts Options, sink Sink) (*Watcher, error) {
	d := DefaultOptions()
	if opts.PollPeriod == 0 {
		opts.PollPeriod = d.PollPeriod
	}
	if opts.ProbeTimeout == 0 {
		opts.ProbeTimeout = d.ProbeTimeout
	}
	if opts.CommandTimeout == 0 {
		opts.CommandTimeout = d.CommandTimeout
	}
	if opts.RetryBackoff == 0 {
		opts.RetryBackoff = d.RetryBackoff
	}
	if opts.MaxRetryBackoff == 0 {
		opts.MaxRetryBackoff = d.MaxRetryBackoff
	}
	if opts.EventClasses == "" {
		opts.EventClasses = d.EventClasses
	}
	if opts.Clock == nil {
		opts.Clock = d.Clock
	}
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidOptions, fmt.Sprintf(format, args...))
	}
	switch {
	case opts.Client == nil:
		return nil, invalid("Client is required")
	case sink == nil:
		return nil, invalid("sink is required")
	case opts.InputKey == "":
		return nil, invalid("InputKey is required")
	case opts.DB < 0:
		return nil, invalid("DB %d is negative", opts.DB)
	case opts.PollPeriod < 0:
		return nil, invalid("PollPeriod %s is negative", opts.PollPeriod)
	case opts.ProbeTimeout < 0:
		return nil, invalid("ProbeTimeout %s is negative", opts.ProbeTimeout)
	case opts.CommandTimeout < 0:
		return nil, invalid("CommandTimeout %s is negative", opts.CommandTimeout)
	case opts.RetryBackoff < 0 || opts.MaxRetryBackoff < opts.RetryBackoff:
		return nil, invalid("RetryBackoff %s / MaxRetryBackoff %s: want 0 < min <= max",
			opts.RetryBackoff, opts.MaxRetryBackoff)
	case strings.HasPrefix(opts.Channel, "__keyspace@") || strings.HasPrefix(opts.Channel, "__keyevent@"):
		return nil, invalid("Channel %q is a keyspace notification channel", opts.Channel)
	}
	cluster := opts.Client.Mode() == rueidis.ClientModeCluster
	if cluster && opts.DB != 0 {
		return nil, invalid("DB %d on a Redis Cluster, which has only database 0", opts.DB)
	}
	if err := validateEventClasses(opts.EventClasses); err != nil {
		return nil, invalid("EventClasses %q: %v", opts.EventClasses, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("input_key", opts.InputKey)
	w := &Watcher{
		opts:            opts,
		sink:            sink,
		log:             log,
		client:          opts.Client,
		keyspaceChannel: keyspaceChannel(opts.DB, opts.InputKey),
		required:        "K" + opts.EventClasses,
		setup:           make(chan struct{}, 1),
		verify:          make(chan struct{}, 1),
		cluster:         cluster,
		slot:            redisconn.KeySlot(opts.InputKey),
		probeTag:        hashTag(opts.InputKey),
		recheck:         make(chan struct{}, 1),
	}
	w.unsub = redisconn.Unsubscriber{Timeout: opts.CommandTimeout, OnError: func(err error) {
		w.log.Debug("unsubscribe failed", "err", err)
	}}
	if w.probeTag == "" && cluster {
		w.probeTag = tagForSlot(w.slot)
	}
	if !cluster {
		w.tgt = target{client: opts.Client}
	}
	w.status.Cluster = cluster
	return w, nil
}

// Run subscribes, keeps the notification configuration in place, polls, and signals the Sink
// until ctx is done. It owns its goroutines: when it returns they have all ended and the
// subscriptions were UNSUBSCRIBEd. Redis failures never end it (it retries with backoff and
// reports them in Status); it returns nil on cancel and ErrAlreadyRunning when called a second
// time.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	var wg sync.WaitGroup
	wg.Go(func() { w.subscribeLoop(ctx) })
	wg.Go(func() { w.setupLoop(ctx) })
	wg.Go(func() { w.pollLoop(ctx) })
	if w.cluster {
		wg.Go(func() { w.ownerLoop(ctx) })
	}
	wg.Wait()
	w.unsub.Wait()
	return nil
}

// Status returns a snapshot of the Watcher's state.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.status
	s.Subscribed = w.ksSub && (w.opts.Channel == "" || w.chSub)
	s.Notifications = w.notifOK && w.ksSub
	s.Node = w.tgt.addr
	return s
}

// recordError keeps err as the latest error for Status.
func (w *Watcher) recordError(err error) {
	w.mu.Lock()
	w.status.LastError = err.Error()
	w.status.LastErrorTime = w.opts.Clock.Now()
	w.mu.Unlock()
}

// sleep waits d on the injected clock; it reports false when ctx ended first.
func (w *Watcher) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-w.opts.Clock.After(d):
		return true
	}
}

// signalSetup asks setupLoop for a round; a round already pending absorbs it.
func (w *Watcher) signalSetup() { signal(w.setup) }

// signalVerify asks setupLoop to check the notification configuration; a check already
// pending absorbs it.
func (w *Watcher) signalVerify() { signal(w.verify) }

// signal sends on a channel of capacity one without blocking: a signal already pending absorbs
// the new one.
func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// signalRecheck asks ownerLoop to check which node owns the key (cluster only); a check
// already pending absorbs it.
func (w *Watcher) signalRecheck() {
	if w.cluster {
		signal(w.recheck)
	}
}

// current returns the node of the current subscription attempt and the attempt's number.
func (w *Watcher) current() (target, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tgt, w.gen
}
