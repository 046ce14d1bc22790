package trigger_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/redistest"
	"github.com/eventrt/eventrt/internal/trigger"
)

// waitTimeout bounds every wait for an event; it is a deadlock guard, not a timing assertion.
const waitTimeout = 15 * time.Second

const inputKey = "metrics"

// recSink records signals on buffered channels.
type recSink struct {
	notify chan trigger.Kind
	invoke chan []byte
}

func newRecSink() *recSink {
	return &recSink{notify: make(chan trigger.Kind, 4096), invoke: make(chan []byte, 1024)}
}

func (s *recSink) Notify(k trigger.Kind) {
	select {
	case s.notify <- k:
	default:
	}
}

func (s *recSink) Invoke(p []byte) {
	select {
	case s.invoke <- p:
	default:
	}
}

// next returns the next Notify kind.
func (s *recSink) next(t *testing.T) trigger.Kind {
	t.Helper()
	select {
	case k := <-s.notify:
		return k
	case <-time.After(waitTimeout):
		t.Fatalf("no Notify within %s", waitTimeout)
		return ""
	}
}

// waitFor skips signals until one of kind arrives.
func (s *recSink) waitFor(t *testing.T, kind trigger.Kind) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case k := <-s.notify:
			if k == kind {
				return
			}
		case <-deadline:
			t.Fatalf("no Notify(%s) within %s", kind, waitTimeout)
		}
	}
}

// logRecorder is a slog.Handler keeping every record.
type logRecorder struct {
	mu    sync.Mutex
	recs  []slog.Record
	added chan struct{} // signalled (without blocking) after each record
}

func newLogRecorder() *logRecorder { return &logRecorder{added: make(chan struct{}, 1)} }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	select {
	case h.added <- struct{}{}:
	default:
	}
	return nil
}

// await waits for a record of level whose message contains msg.
func (h *logRecorder) await(t *testing.T, level slog.Level, msg string) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		h.mu.Lock()
		for _, r := range h.recs {
			if r.Level == level && strings.Contains(r.Message, msg) {
				h.mu.Unlock()
				return
			}
		}
		h.mu.Unlock()
		select {
		case <-h.added:
		case <-deadline:
			t.Fatalf("no %s log containing %q within %s", level, msg, waitTimeout)
		}
	}
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

func (h *logRecorder) warnings() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		if r.Level >= slog.LevelWarn {
			out = append(out, r.Message)
		}
	}
	return out
}

type harness struct {
	srv    *redistest.Server
	client rueidis.Client
	w      *trigger.Watcher
	sink   *recSink
	logs   *logRecorder
	cancel context.CancelFunc
	done   chan error
}

// start runs a Watcher on srv with test defaults (no polls unless edit sets a period) and
// stops it when the test ends.
func start(t *testing.T, srv *redistest.Server, edit func(*trigger.Options)) *harness {
	t.Helper()
	return startWith(t, srv, srv.Client(), edit)
}

func startWith(t *testing.T, srv *redistest.Server, client rueidis.Client, edit func(*trigger.Options)) *harness {
	t.Helper()
	h := &harness{srv: srv, client: client, sink: newRecSink(), logs: newLogRecorder(), done: make(chan error, 1)}
	opts := trigger.DefaultOptions()
	opts.Client = client
	opts.InputKey = inputKey
	opts.Channel = "eventrt:trigger:" + inputKey
	opts.PollPeriod = time.Hour
	opts.ProbeTimeout = 300 * time.Millisecond
	opts.Logger = slog.New(h.logs)
	if edit != nil {
		edit(&opts)
	}
	w, err := trigger.New(opts, h.sink)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.w = w
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- w.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })
	return h
}

// stop cancels Run and waits for it to return.
func (h *harness) stop(t *testing.T) {
	t.Helper()
	h.cancel()
	select {
	case err, ok := <-h.done:
		if ok && err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
		if ok {
			close(h.done)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("Run did not return within %s of cancel", waitTimeout)
	}
}

func (h *harness) do(t *testing.T, args ...string) rueidis.RedisResult {
	t.Helper()
	r := h.client.Do(context.Background(), h.client.B().Arbitrary(args...).Build())
	if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
		t.Fatalf("%v: %v", args, err)
	}
	return r
}

func notifyConfig(t *testing.T, h *harness) string {
	t.Helper()
	m, err := h.do(t, "CONFIG", "GET", "notify-keyspace-events").AsStrMap()
	if err != nil {
		t.Fatalf("CONFIG GET: %v", err)
	}
	return m["notify-keyspace-events"]
}

// configSetCalls reads how many CONFIG SET the server executed.
func configSetCalls(t *testing.T, h *harness) string {
	t.Helper()
	info, err := h.do(t, "INFO", "commandstats").ToString()
	if err != nil {
		t.Fatalf("INFO: %v", err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if strings.HasPrefix(line, "cmdstat_config|set:") {
			calls, _, _ := strings.Cut(strings.TrimPrefix(line, "cmdstat_config|set:"), ",")
			return calls
		}
	}
	return "calls=0"
}

func hasFlags(flags, want string) bool {
	for _, c := range want {
		if !strings.ContainsRune(flags, c) && !(strings.ContainsRune(flags, 'A') && c != 'K' && c != 'E') {
			return false
		}
	}
	return true
}

func TestKeyspaceWriteNotifiesAndDeleteDoesNot(t *testing.T) {
	srv := redistest.Start(t, `notify-keyspace-events ""`)
	h := start(t, srv, nil)
	if k := h.sink.next(t); k != trigger.KindCatchup {
		t.Fatalf("first signal = %s, want catchup", k)
	}
	st := h.w.Status()
	if !st.Subscribed || !st.Notifications || st.ConfigRefused {
		t.Fatalf("status after start = %+v, want subscribed with notifications", st)
	}
	if got := notifyConfig(t, h); !hasFlags(got, "Kg$h") {
		t.Fatalf("notify-keyspace-events = %q, want K, g, $ and h", got)
	}
	if got := configSetCalls(t, h); got != "calls=1" {
		t.Fatalf("CONFIG SET %s, want calls=1", got)
	}

	h.do(t, "SET", inputKey, `{"a":1}`)
	if k := h.sink.next(t); k != trigger.KindKeyspace {
		t.Fatalf("after SET: %s, want keyspace", k)
	}
	// One subscription carries both channels in order, so the marker published after DEL
	// arrives after any signal the DEL would have caused.
	h.do(t, "DEL", inputKey)
	h.do(t, "PUBLISH", "eventrt:trigger:"+inputKey, "marker")
	if k := h.sink.next(t); k != trigger.KindPubSub {
		t.Fatalf("after DEL + PUBLISH: %s, want pubsub (DEL must not signal)", k)
	}
	// Write-then-rename replaces the value atomically (event rename_to, class g).
	h.do(t, "SET", "tmp", `{"a":2}`)
	h.do(t, "RENAME", "tmp", inputKey)
	if k := h.sink.next(t); k != trigger.KindKeyspace {
		t.Fatalf("after RENAME onto the key: %s, want keyspace", k)
	}
}

func TestHashInputNotifies(t *testing.T) {
	srv := redistest.Start(t)
	h := start(t, srv, nil)
	h.sink.waitFor(t, trigger.KindCatchup)
	h.do(t, "HSET", inputKey, "cpu", "0.5", "mem", "12")
	if k := h.sink.next(t); k != trigger.KindKeyspace {
		t.Fatalf("after HSET: %s, want keyspace", k)
	}
	h.do(t, "HDEL", inputKey, "cpu") // the value changed
	if k := h.sink.next(t); k != trigger.KindKeyspace {
		t.Fatalf("after HDEL: %s, want keyspace", k)
	}
}

func TestPubSubPayloads(t *testing.T) {
	srv := redistest.Start(t)
	h := start(t, srv, nil)
	h.sink.waitFor(t, trigger.KindCatchup)
	ch := "eventrt:trigger:" + inputKey

	obj := ` {"cpu": [1, 2], "note": "ad hoc"} `
	h.do(t, "PUBLISH", ch, obj)
	select {
	case p := <-h.sink.invoke:
		if string(p) != obj {
			t.Fatalf("Invoke payload = %q, want %q", p, obj)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no Invoke for a JSON object")
	}
	for _, payload := range []string{"run", "", "[1,2]", `{"broken":`, "42", `"{}"`} {
		h.do(t, "PUBLISH", ch, payload)
		if k := h.sink.next(t); k != trigger.KindPubSub {
			t.Fatalf("payload %q: %s, want pubsub", payload, k)
		}
	}
	select {
	case p := <-h.sink.invoke:
		t.Fatalf("unexpected Invoke(%q) for a non-object payload", p)
	default:
	}
}

// startPolling starts a Watcher on a fake clock with a poll period of 5s and waits until it
// caught up and created its poll ticker.
func startPolling(t *testing.T, srv *redistest.Server, edit func(*trigger.Options)) (*harness, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	h := start(t, srv, func(o *trigger.Options) {
		o.Clock = clk
		o.PollPeriod = 5 * time.Second
		if edit != nil {
			edit(o)
		}
	})
	h.sink.waitFor(t, trigger.KindCatchup)
	select {
	case <-clk.Registered:
	case <-time.After(waitTimeout):
		t.Fatal("poll ticker never created")
	}
	return h, clk
}

func TestPollWithFakeClock(t *testing.T) {
	h, clk := startPolling(t, redistest.Start(t), nil)
	for i := 0; i < 2; i++ {
		clk.Advance(5 * time.Second)
		if k := h.sink.next(t); k != trigger.KindPoll {
			t.Fatalf("tick %d: %s, want poll", i, k)
		}
	}
}

// A client that drops the classes eventrt needs while it stays connected (no reconnect, so no
// setup round) is noticed at the next poll tick: the classes are set again and the key caught
// up, since writes in the gap produced no event.
func TestConfigDriftWhileConnectedIsRepaired(t *testing.T) {
	h, clk := startPolling(t, redistest.Start(t), nil)
	h.do(t, "CONFIG", "SET", "notify-keyspace-events", "")
	clk.Advance(5 * time.Second)
	if k := h.sink.next(t); k != trigger.KindPoll {
		t.Fatalf("tick: %s, want poll", k)
	}
	if k := h.sink.next(t); k != trigger.KindCatchup {
		t.Fatalf("after the tick that found the classes gone: %s, want catchup", k)
	}
	if got := notifyConfig(t, h); !hasFlags(got, "Kg$h") {
		t.Fatalf("notify-keyspace-events = %q, want K, g, $ and h set again", got)
	}
	if st := h.w.Status(); !st.Notifications {
		t.Fatalf("status = %+v, want notifications", st)
	}
	if w := h.logs.warnings(); len(w) != 1 || !strings.Contains(w[0], "lost classes while connected") {
		t.Fatalf("warnings = %q, want one about the lost classes", w)
	}
	h.do(t, "SET", inputKey, "1")
	if k := h.sink.next(t); k != trigger.KindKeyspace {
		t.Fatalf("after SET: %s, want keyspace", k)
	}
}

// With ConfigureNotifications off the drift is reported (once) and not repaired; classes an
// admin sets back are noticed at the next tick.
func TestConfigDriftWithConfigureOffIsReported(t *testing.T) {
	srv := redistest.Start(t, `notify-keyspace-events "Kg$h"`)
	h, clk := startPolling(t, srv, func(o *trigger.Options) { o.ConfigureNotifications = false })
	if st := h.w.Status(); !st.Notifications {
		t.Fatalf("status = %+v, want notifications (the server has every class)", st)
	}
	h.do(t, "CONFIG", "SET", "notify-keyspace-events", "E")
	clk.Advance(5 * time.Second)
	h.logs.await(t, slog.LevelWarn, "ConfigureNotifications is off; relying on polling")
	if st := h.w.Status(); st.Notifications || st.NotifyConfig != "E" {
		t.Fatalf("status = %+v, want no notifications, config E", st)
	}
	if got := notifyConfig(t, h); got != "E" {
		t.Fatalf("notify-keyspace-events = %q, want E left as the admin set it", got)
	}
	h.do(t, "CONFIG", "SET", "notify-keyspace-events", "KEA")
	clk.Advance(5 * time.Second)
	h.logs.await(t, slog.LevelInfo, "enabled on the server now")
	if st := h.w.Status(); !st.Notifications || st.NotifyConfig != "AKE" {
		t.Fatalf("status = %+v, want notifications with config AKE", st)
	}
	if w := h.logs.warnings(); len(w) != 1 {
		t.Fatalf("warnings = %q, want exactly one", w)
	}
}

func TestConfigAlreadySetIsLeftAlone(t *testing.T) {
	srv := redistest.Start(t, `notify-keyspace-events "KEA"`)
	h := start(t, srv, nil)
	h.sink.waitFor(t, trigger.KindCatchup)
	if got := notifyConfig(t, h); got != "AKE" {
		t.Fatalf("notify-keyspace-events = %q, want the server's AKE unchanged", got)
	}
	if got := configSetCalls(t, h); got != "calls=0" {
		t.Fatalf("CONFIG SET %s, want none", got)
	}
	if st := h.w.Status(); !st.Notifications || st.NotifyConfig != "AKE" {
		t.Fatalf("status = %+v, want notifications with config AKE", st)
	}
}

func TestConfigMergeKeepsExistingFlags(t *testing.T) {
	srv := redistest.Start(t, `notify-keyspace-events "Ex"`)
	h := start(t, srv, nil)
	h.sink.waitFor(t, trigger.KindCatchup)
	got := notifyConfig(t, h)
	if !hasFlags(got, "ExKg$h") {
		t.Fatalf("notify-keyspace-events = %q, want E and x kept and K, g, $, h added", got)
	}
	h.do(t, "SET", inputKey, "1")
	if k := h.sink.next(t); k != trigger.KindKeyspace {
		t.Fatalf("after SET: %s, want keyspace", k)
	}
}

func TestConfigureNotificationsOff(t *testing.T) {
	srv := redistest.Start(t, `notify-keyspace-events "E$"`)
	h := start(t, srv, func(o *trigger.Options) { o.ConfigureNotifications = false })
	h.sink.waitFor(t, trigger.KindCatchup)
	if got := notifyConfig(t, h); got != "$E" {
		t.Fatalf("notify-keyspace-events = %q, want $E untouched", got)
	}
	st := h.w.Status()
	if st.Notifications || st.ConfigRefused {
		t.Fatalf("status = %+v, want notifications false (K missing), config not refused", st)
	}
	if w := h.logs.warnings(); len(w) != 1 {
		t.Fatalf("warnings = %q, want exactly one", w)
	}
}

// probeKeysExpire checks the probe left no key without a TTL behind.
func probeKeysExpire(t *testing.T, h *harness) {
	t.Helper()
	keys, err := h.do(t, "KEYS", "eventrt:probe:*").AsStrSlice()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	for _, k := range keys {
		if ttl, err := h.do(t, "PTTL", k).AsInt64(); err != nil || ttl < 0 {
			t.Fatalf("probe key %s has PTTL %d (%v), want an expiry", k, ttl, err)
		}
	}
}

func TestConfigRenamedWithoutNotificationsFallsBackToPolling(t *testing.T) {
	srv := redistest.Start(t, `notify-keyspace-events ""`, `rename-command CONFIG ""`)
	h := start(t, srv, func(o *trigger.Options) { o.PollPeriod = 20 * time.Millisecond })
	h.sink.waitFor(t, trigger.KindCatchup)
	st := h.w.Status()
	if st.Notifications || !st.ConfigRefused || !st.Subscribed {
		t.Fatalf("status = %+v, want subscribed, CONFIG refused, no notifications", st)
	}
	if !strings.Contains(st.LastError, "unknown command") || !strings.Contains(st.LastError, "CONFIG") {
		t.Fatalf("LastError = %q, want the refused CONFIG", st.LastError)
	}
	probeKeysExpire(t, h)
	h.sink.waitFor(t, trigger.KindPoll)

	// A reconnect probes again but does not warn again.
	srv.Restart()
	h.sink.waitFor(t, trigger.KindCatchup)
	st = h.w.Status()
	if st.Notifications || st.Reconnects != 1 {
		t.Fatalf("status after restart = %+v, want 1 reconnect and still no notifications", st)
	}
	if w := h.logs.warnings(); len(w) != 1 || !strings.Contains(w[0], "relying on polling") {
		t.Fatalf("warnings = %q, want exactly one about polling", w)
	}
	h.sink.waitFor(t, trigger.KindPoll)
}

func TestConfigRenamedButPreconfiguredProbeSucceeds(t *testing.T) {
	srv := redistest.Start(t, `notify-keyspace-events "Kh$g"`, `rename-command CONFIG ""`)
	h := start(t, srv, nil)
	h.sink.waitFor(t, trigger.KindCatchup)
	st := h.w.Status()
	if !st.Notifications || !st.ConfigRefused || st.NotifyConfig != "" {
		t.Fatalf("status = %+v, want notifications from the probe, CONFIG refused", st)
	}
	if w := h.logs.warnings(); len(w) != 0 {
		t.Fatalf("warnings = %q, want none", w)
	}
	probeKeysExpire(t, h)
	h.do(t, "SET", inputKey, "1")
	if k := h.sink.next(t); k != trigger.KindKeyspace {
		t.Fatalf("after SET: %s, want keyspace", k)
	}
}

func TestACLWithoutConfigIsRefused(t *testing.T) {
	srv := redistest.Start(t, `notify-keyspace-events ""`,
		`user eventrt on >s3cret-pw ~* &* +@all -config`)
	opt := srv.ClientOption()
	opt.Username, opt.Password = "eventrt", "s3cret-pw"
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(c.Close)
	h := startWith(t, srv, c, nil)
	h.sink.waitFor(t, trigger.KindCatchup)
	st := h.w.Status()
	if st.Notifications || !st.ConfigRefused || !strings.Contains(st.LastError, "NOPERM") {
		t.Fatalf("status = %+v, want CONFIG refused by NOPERM and no notifications", st)
	}
	if strings.Contains(st.LastError, "s3cret") {
		t.Fatalf("LastError leaks the password: %q", st.LastError)
	}
	if w := h.logs.warnings(); len(w) != 1 {
		t.Fatalf("warnings = %q, want exactly one", w)
	}
}

func TestRedisRestartReappliesConfigAndCatchesUp(t *testing.T) {
	srv := redistest.Start(t)
	h := start(t, srv, nil)
	h.sink.waitFor(t, trigger.KindCatchup)
	if got := notifyConfig(t, h); !hasFlags(got, "Kg$h") {
		t.Fatalf("before restart: notify-keyspace-events = %q", got)
	}
	srv.Restart()
	h.sink.waitFor(t, trigger.KindCatchup)
	if got := notifyConfig(t, h); !hasFlags(got, "Kg$h") {
		t.Fatalf("after restart: notify-keyspace-events = %q, want it re-applied", got)
	}
	// Command statistics start afresh with the new process: one CONFIG SET there proves the
	// configuration was re-applied rather than remembered.
	if got := configSetCalls(t, h); got != "calls=1" {
		t.Fatalf("CONFIG SET on the restarted server: %s, want calls=1", got)
	}
	st := h.w.Status()
	if st.Reconnects != 1 || st.Catchups != 2 || !st.Subscribed || !st.Notifications {
		t.Fatalf("status after restart = %+v, want 1 reconnect, 2 catchups, subscribed, notifications", st)
	}
	h.do(t, "SET", inputKey, "after-restart")
	if k := h.sink.next(t); k != trigger.KindKeyspace {
		t.Fatalf("after SET: %s, want keyspace", k)
	}
}

func TestRunCancelUnsubscribes(t *testing.T) {
	srv := redistest.Start(t)
	h := start(t, srv, nil)
	h.sink.waitFor(t, trigger.KindCatchup)
	ks := "__keyspace@0__:" + inputKey
	ch := "eventrt:trigger:" + inputKey
	numsub := func() map[string]int64 {
		m, err := h.do(t, "PUBSUB", "NUMSUB", ks, ch).AsIntMap()
		if err != nil {
			t.Fatalf("PUBSUB NUMSUB: %v", err)
		}
		return m
	}
	if m := numsub(); m[ks] != 1 || m[ch] != 1 {
		t.Fatalf("while running NUMSUB = %v, want 1 each", m)
	}
	h.stop(t)
	if m := numsub(); m[ks] != 0 || m[ch] != 0 {
		t.Fatalf("after Run returned NUMSUB = %v, want 0 each", m)
	}
	if st := h.w.Status(); st.Subscribed {
		t.Fatalf("status after stop = %+v, want not subscribed", st)
	}
	if err := h.w.Run(context.Background()); !errors.Is(err, trigger.ErrAlreadyRunning) {
		t.Fatalf("second Run = %v, want ErrAlreadyRunning", err)
	}
}

func TestNewValidates(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	base := func() trigger.Options {
		o := trigger.DefaultOptions()
		o.Client, o.InputKey = c, inputKey
		return o
	}
	if _, err := trigger.New(base(), newRecSink()); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	cases := map[string]func(*trigger.Options){
		"no client":        func(o *trigger.Options) { o.Client = nil },
		"no key":           func(o *trigger.Options) { o.InputKey = "" },
		"negative db":      func(o *trigger.Options) { o.DB = -1 },
		"negative poll":    func(o *trigger.Options) { o.PollPeriod = -time.Second },
		"backoff inverted": func(o *trigger.Options) { o.RetryBackoff, o.MaxRetryBackoff = time.Second, time.Millisecond },
		"bad class":        func(o *trigger.Options) { o.EventClasses = "$Q" },
		"alias class":      func(o *trigger.Options) { o.EventClasses = "A" },
		"keyspace channel": func(o *trigger.Options) { o.Channel = "__keyspace@0__:x" },
	}
	for name, edit := range cases {
		o := base()
		edit(&o)
		if _, err := trigger.New(o, newRecSink()); !trigger.IsInvalidOptions(err) {
			t.Errorf("%s: err = %v, want ErrInvalidOptions", name, err)
		}
	}
	if _, err := trigger.New(base(), nil); !trigger.IsInvalidOptions(err) {
		t.Errorf("nil sink: err = %v, want ErrInvalidOptions", err)
	}
}

// BenchmarkSetToNotify measures SET -> Notify(keyspace) through a real redis-server on loopback.
func BenchmarkSetToNotify(b *testing.B) {
	srv := redistest.Start(b)
	c := srv.Client()
	sink := newRecSink()
	opts := trigger.DefaultOptions()
	opts.Client, opts.InputKey, opts.PollPeriod = c, inputKey, time.Hour
	w, err := trigger.New(opts, sink)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for k := range sink.notify {
		if k == trigger.KindCatchup {
			break
		}
	}
	set := c.B().Set().Key(inputKey).Value(`{"cpu":1}`).Build().Pin()
	b.ResetTimer()
	for b.Loop() {
		if err := c.Do(ctx, set).Error(); err != nil {
			b.Fatal(err)
		}
		select {
		case <-sink.notify:
		case <-time.After(waitTimeout):
			b.Fatal("no Notify")
		}
	}
}

func TestSubscribeRefusedStillCatchesUpAndRetries(t *testing.T) {
	srv := redistest.Start(t, `user eventrt on >pw ~* resetchannels +@all`)
	opt := srv.ClientOption()
	opt.Username, opt.Password = "eventrt", "pw"
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(c.Close)
	clk := clock.NewFake(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	h := startWith(t, srv, c, func(o *trigger.Options) { o.Clock = clk })
	// The key is read once even though the subscription never comes.
	h.sink.waitFor(t, trigger.KindCatchup)
	// Registrations on the fake clock: the poll ticker, then one backoff wait per failed
	// SUBSCRIBE; advancing past each backoff makes the next attempt.
	for i := 0; i < 4; i++ {
		select {
		case <-clk.Registered:
		case <-time.After(waitTimeout):
			t.Fatalf("registration %d never came", i)
		}
		clk.Advance(trigger.DefaultMaxRetryBackoff)
	}
	st := h.w.Status()
	if st.Subscribed || st.Notifications || !strings.Contains(st.LastError, "NOPERM") {
		t.Fatalf("status = %+v, want unsubscribed, no notifications, NOPERM", st)
	}
	if w := h.logs.warnings(); len(w) != 1 || !strings.Contains(w[0], "subscription") {
		t.Fatalf("warnings = %q, want one about the subscription despite retries", w)
	}
	clk.Advance(time.Hour) // the harness's poll period
	h.sink.waitFor(t, trigger.KindPoll)
}
