package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/backoff"
	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/redisconn"
)

// KeySink receives a PatternWatcher's signals. Like Sink's, its methods are called from
// rueidis' pipeline goroutines and MUST NOT block.
type KeySink interface {
	// NotifyKey asks for a run of key on its current value.
	NotifyKey(key string, kind Kind)
	// Gone reports that key was deleted, expired, evicted or renamed away.
	Gone(key string)
	// Invoke handles a JSON object received on the trigger channel.
	Invoke(payload []byte)
	// Rescan asks for a catch-up over every key (events may have been missed).
	Rescan(kind Kind)
	// Poll is a poll tick.
	Poll()
}

// PatternOptions configure a PatternWatcher; zero fields take the defaults of Options.
type PatternOptions struct {
	Client rueidis.Client
	DB     int
	// Pattern is the glob of the input keys (Redis MATCH syntax); required.
	Pattern                string
	Channel                string
	PollPeriod             time.Duration
	ConfigureNotifications bool
	// EventClasses default to DefaultPatternEventClasses.
	EventClasses   string
	CommandTimeout time.Duration
	RetryBackoff   time.Duration
	MaxBackoff     time.Duration
	Clock          clock.Clock
	Logger         *slog.Logger
}

// DefaultPatternEventClasses: $ for string writes, g for deletions and renames, x for
// expirations (a key that expired stops being an input). Pattern functions read strings
// only, so hash writes (h) are not needed.
const DefaultPatternEventClasses = "g$x"

// PatternStatus is a snapshot of a PatternWatcher.
type PatternStatus struct {
	// Subscribed: the keyspace pattern is subscribed on every node known to serve slots,
	// and the trigger channel (when set).
	Subscribed bool
	// Notifications: every node subscribed has the notification classes needed.
	Notifications bool
	// Nodes is the number of nodes subscribed.
	Nodes int
	// Catchups counts Rescan signals sent after a (re)subscription.
	Catchups int
}

// PatternWatcher watches every key matching a pattern: PSUBSCRIBE to the keyspace channels
// of the pattern (on a Redis Cluster on every master, since each node publishes only its own
// keys' events, following the masters as they change), SUBSCRIBE to the trigger channel, the
// notification configuration on every node, and the poll ticks. Each (re)subscription on a
// node is followed, once its notification configuration is in place, by a Rescan.
type PatternWatcher struct {
	o       PatternOptions
	sink    KeySink
	log     *slog.Logger
	prefix  string // "__keyspace@<db>__:"
	cluster bool
	started atomic.Bool
	topo    chan struct{}
	unsub   redisconn.Unsubscriber

	mu      sync.Mutex
	nodes   map[string]*nodeSub
	chSub   bool
	catchup int
}

type nodeSub struct {
	cancel     context.CancelFunc
	done       chan struct{}
	subscribed bool
	notifOK    bool
}

// NewPattern validates o and returns a PatternWatcher signalling sink.
func NewPattern(o PatternOptions, sink KeySink) (*PatternWatcher, error) {
	d := DefaultOptions()
	if o.PollPeriod == 0 {
		o.PollPeriod = d.PollPeriod
	}
	if o.CommandTimeout == 0 {
		o.CommandTimeout = d.CommandTimeout
	}
	if o.RetryBackoff == 0 {
		o.RetryBackoff = d.RetryBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = d.MaxRetryBackoff
	}
	if o.EventClasses == "" {
		o.EventClasses = DefaultPatternEventClasses
	}
	if o.Clock == nil {
		o.Clock = d.Clock
	}
	switch {
	case o.Client == nil || sink == nil || o.Pattern == "":
		return nil, fmt.Errorf("%w: Client, sink and Pattern are required", ErrInvalidOptions)
	case o.PollPeriod < 0:
		return nil, fmt.Errorf("%w: PollPeriod %s is negative", ErrInvalidOptions, o.PollPeriod)
	}
	if err := validateEventClasses(o.EventClasses); err != nil {
		return nil, fmt.Errorf("%w: EventClasses %q: %v", ErrInvalidOptions, o.EventClasses, err)
	}
	cluster := o.Client.Mode() == rueidis.ClientModeCluster
	if cluster && o.DB != 0 {
		return nil, fmt.Errorf("%w: DB %d on a Redis Cluster", ErrInvalidOptions, o.DB)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &PatternWatcher{o: o, sink: sink, log: log.With("input_pattern", o.Pattern), cluster: cluster,
		prefix: "__keyspace@" + strconv.Itoa(o.DB) + "__:", topo: make(chan struct{}, 1), nodes: map[string]*nodeSub{}}
	w.unsub = redisconn.Unsubscriber{Timeout: o.CommandTimeout, OnError: func(err error) {
		w.log.Debug("unsubscribe failed", "err", err)
	}}
	return w, nil
}

// Status returns a snapshot.
func (w *PatternWatcher) Status() PatternStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := PatternStatus{Subscribed: len(w.nodes) > 0 && (w.o.Channel == "" || w.chSub), Notifications: len(w.nodes) > 0,
		Nodes: len(w.nodes), Catchups: w.catchup}
	for _, n := range w.nodes {
		s.Subscribed = s.Subscribed && n.subscribed
		s.Notifications = s.Notifications && n.notifOK && n.subscribed
	}
	return s
}

// Run watches until ctx is done; it returns once every goroutine it started has ended.
func (w *PatternWatcher) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	var wg sync.WaitGroup
	if w.o.Channel != "" {
		wg.Go(func() { w.channelLoop(ctx) })
	}
	wg.Go(func() { w.pollLoop(ctx) })
	retry := backoff.New(w.o.RetryBackoff, w.o.MaxBackoff)
	var again <-chan time.Time
	follow := func() {
		if w.follow(ctx) {
			retry.Reset()
			again = nil
		} else {
			again = w.o.Clock.After(retry.Next())
		}
	}
	follow()
	for {
		select {
		case <-ctx.Done():
			w.mu.Lock()
			nodes := w.nodes
			w.mu.Unlock()
			for _, n := range nodes {
				n.cancel()
				<-n.done
			}
			wg.Wait()
			w.unsub.Wait()
			return nil
		case <-w.topo:
			follow()
		case <-again:
			follow()
		}
	}
}

// follow subscribes on every master not subscribed yet and leaves the nodes that are no
// masters any more. It reports false when the masters could not all be found (a master
// promoted or added is known to the client only after its next topology refresh): the caller
// tries again shortly.
func (w *PatternWatcher) follow(ctx context.Context) bool {
	want := map[string]rueidis.Client{"": w.o.Client}
	complete := true
	if w.cluster {
		m, err := w.masters(ctx)
		if err != nil && len(m) == 0 {
			w.log.Warn("cannot list the cluster's masters; retrying", "err", err)
			return false
		}
		if err != nil {
			w.log.Debug("a master is not known to the client yet; retrying", "err", err)
			complete = false
		}
		want = m
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for addr, n := range w.nodes {
		if _, ok := want[addr]; !ok {
			n.cancel()
			delete(w.nodes, addr)
			w.log.Info("node no longer a master: left", "node", addr)
		}
	}
	for addr, c := range want {
		if w.nodes[addr] != nil {
			continue
		}
		nctx, cancel := context.WithCancel(ctx)
		n := &nodeSub{cancel: cancel, done: make(chan struct{})}
		w.nodes[addr] = n
		go func() {
			defer close(n.done)
			w.nodeLoop(nctx, addr, c, n)
		}()
	}
	return complete
}

// masters returns the cluster's masters serving slots, from CLUSTER SLOTS of the first node
// that answers; with an error too when some master is not known to the client yet.
func (w *PatternWatcher) masters(ctx context.Context) (map[string]rueidis.Client, error) {
	nodes := w.o.Client.Nodes()
	addrs := make([]string, 0, len(nodes))
	for a := range nodes {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	var last error = errors.New("no node known")
	for _, a := range addrs {
		cctx, cancel := context.WithTimeout(ctx, w.o.CommandTimeout)
		ranges, err := nodes[a].Do(cctx, nodes[a].B().Arbitrary("CLUSTER", "SLOTS").Build()).ToArray()
		cancel()
		if err != nil {
			last = err
			continue
		}
		out := map[string]rueidis.Client{}
		var unknown error
		for _, r := range ranges {
			e, err := r.ToArray()
			if err != nil || len(e) < 3 {
				continue
			}
			lo, _ := e[0].AsInt64()
			owner, err := ownerInSlots([]rueidis.RedisMessage{r}, int(lo), a)
			if err != nil {
				continue
			}
			c, ok := nodes[owner]
			if !ok {
				// Known to rueidis after its next topology refresh, which a keyed command
				// redirected to it brings about.
				_ = w.o.Client.Do(ctx, w.o.Client.B().Exists().Key("eventrt:probe:"+tagForSlot(int(lo))).Build()).Error()
				unknown = fmt.Errorf("master %s not known to the client yet", owner)
				continue
			}
			out[owner] = c
		}
		if len(out) > 0 || unknown != nil {
			return out, unknown
		}
	}
	return nil, last
}

// nodeLoop keeps the pattern subscribed on one node until ctx ends.
func (w *PatternWatcher) nodeLoop(ctx context.Context, addr string, c rueidis.Client, n *nodeSub) {
	ch := w.prefix + w.o.Pattern
	bo := backoff.New(w.o.RetryBackoff, w.o.MaxBackoff)
	setup := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-setup:
				w.setupNode(ctx, addr, c, n)
			}
		}
	})
	for {
		rctx := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
			if s.Kind == "psubscribe" {
				w.mu.Lock()
				n.subscribed, n.notifOK = true, false
				w.mu.Unlock()
				signal(setup)
			}
		})
		rctx = rueidis.WithOnReceiveReturnHook(rctx, func(err error, cc rueidis.CommandClient) error {
			w.mu.Lock()
			n.subscribed = false
			w.mu.Unlock()
			if ctx.Err() != nil {
				w.unsub.Send(cc, cc.B().Punsubscribe().Pattern(ch).Build())
			} else {
				signal(w.topo)
			}
			return err
		})
		err := c.Receive(rctx, c.B().Psubscribe().Pattern(ch).Build(), func(m rueidis.PubSubMessage) {
			w.onEvent(m.Channel, m.Message)
		})
		if ctx.Err() != nil {
			return
		}
		w.log.Warn("pattern subscription lost; resubscribing", "node", addr, "err", err)
		signal(w.topo)
		if !w.sleep(ctx, bo.Next()) {
			return
		}
	}
}

func (w *PatternWatcher) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-w.o.Clock.After(d):
		return true
	}
}

// onEvent handles one keyspace event; it runs on the pipeline goroutine.
func (w *PatternWatcher) onEvent(channel, event string) {
	if len(channel) < len(w.prefix) {
		return
	}
	key := channel[len(w.prefix):]
	switch event {
	case "del", "expired", "evicted", "rename_from", "move_from":
		w.sink.Gone(key)
	default:
		if isWriteEvent(event) {
			w.sink.NotifyKey(key, KindKeyspace)
		}
	}
}

// setupNode puts the notification classes in place on one node (retrying while it fails
// transiently), then asks for a catch-up: writes before that produced no event.
func (w *PatternWatcher) setupNode(ctx context.Context, addr string, c rueidis.Client, n *nodeSub) {
	tgt := target{addr: addr, client: c}
	bo := backoff.New(w.o.RetryBackoff, w.o.MaxBackoff)
	required := "K" + w.o.EventClasses
	for ctx.Err() == nil {
		ok, err := w.ensure(ctx, tgt, required)
		if err == nil {
			w.mu.Lock()
			n.notifOK = ok
			w.catchup++
			w.mu.Unlock()
			w.sink.Rescan(KindCatchup)
			return
		}
		w.log.Debug("keyspace notification config failing; retrying", "node", addr, "err", err)
		if !w.sleep(ctx, bo.Next()) {
			return
		}
	}
}

// ensure reads notify-keyspace-events on tgt and completes it when allowed. ok reports
// whether the classes are in place; a refused CONFIG leaves polling to cover the keys.
func (w *PatternWatcher) ensure(ctx context.Context, tgt target, required string) (ok bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, w.o.CommandTimeout)
	defer cancel()
	c := tgt.client
	m, err := c.Do(cctx, c.B().ConfigGet().Parameter(notifyParam).Build()).AsStrMap()
	if err != nil {
		if isTransient(err) {
			return false, err
		}
		w.log.Warn("CONFIG refused: cannot check keyspace notifications; relying on polling", "node", tgt.addr, "err", err)
		return false, nil
	}
	current := m[notifyParam]
	merged, missing := mergeFlags(current, required)
	if missing == "" {
		return true, nil
	}
	if !w.o.ConfigureNotifications {
		w.log.Warn("keyspace notifications lack classes and NOTIFY_CONFIG is off; relying on polling",
			"notify_keyspace_events", current, "missing", missing, "node", tgt.addr)
		return false, nil
	}
	if err := c.Do(cctx, c.B().ConfigSet().ParameterValue().ParameterValue(notifyParam, merged).Build()).Error(); err != nil {
		if isTransient(err) {
			return false, err
		}
		w.log.Warn("CONFIG SET refused; relying on polling", "node", tgt.addr, "err", err)
		return false, nil
	}
	w.log.Info("enabled keyspace notifications", "notify_keyspace_events", merged, "was", current, "node", tgt.addr)
	return true, nil
}

// channelLoop keeps the trigger channel subscribed (PUBLISH reaches every node of a cluster).
func (w *PatternWatcher) channelLoop(ctx context.Context) {
	c := w.o.Client
	bo := backoff.New(w.o.RetryBackoff, w.o.MaxBackoff)
	for {
		rctx := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
			if s.Kind == "subscribe" {
				w.mu.Lock()
				w.chSub = true
				w.mu.Unlock()
			}
		})
		rctx = rueidis.WithOnReceiveReturnHook(rctx, func(err error, cc rueidis.CommandClient) error {
			w.mu.Lock()
			w.chSub = false
			w.mu.Unlock()
			if ctx.Err() != nil {
				w.unsub.Send(cc, cc.B().Unsubscribe().Channel(w.o.Channel).Build())
			}
			return err
		})
		err := c.Receive(rctx, c.B().Subscribe().Channel(w.o.Channel).Build(), func(m rueidis.PubSubMessage) {
			if isJSONObject(m.Message) {
				w.sink.Invoke([]byte(m.Message))
			} else {
				w.sink.Rescan(KindPubSub)
			}
		})
		if ctx.Err() != nil {
			return
		}
		w.log.Warn("trigger channel subscription lost; resubscribing", "channel", w.o.Channel, "err", err)
		if !w.sleep(ctx, bo.Next()) {
			return
		}
	}
}

// pollLoop signals a poll tick every PollPeriod; on a cluster each tick also re-checks the
// masters (a failover or a new master).
func (w *PatternWatcher) pollLoop(ctx context.Context) {
	t := w.o.Clock.NewTicker(w.o.PollPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			w.sink.Poll()
			if w.cluster {
				signal(w.topo)
			}
		}
	}
}
