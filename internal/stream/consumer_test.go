package stream

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/exec"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/redistest"
)

func TestOrderedOutputsAndState(t *testing.T) {
	h := newHarness(t)
	ids := h.addValues("in", 0, 500)
	m := metrics.New()
	o := h.options("c1")
	o.Metrics = m.Function("test.fn")
	c := h.newConsumer(o, compile(t, counterSrc))
	h.start(c)
	h.await("500 acked", func() bool { return h.total(acked) >= 500 })

	outs := h.outputs("out")
	checkExactlyOnce(t, outs, ids)
	for i, out := range outs {
		if out.Source != ids[i] {
			t.Fatalf("output %d is for %s, want %s (stream order)", i, out.Source, ids[i])
		}
		if out.Data["n"] != float64(i+1) || out.Data["v"] != float64(i) || out.Data["id"] != ids[i] || out.Data["trigger"] != "stream" {
			t.Fatalf("output %d = %v", i, out.Data)
		}
	}
	if got := h.counterValue("{out}:env"); got != "500" {
		t.Fatalf("state n = %q, want 500", got)
	}
	if got := h.srv.Do("HGET", "{out}:env:meta", "last_entry"); got != ids[len(ids)-1] {
		t.Fatalf("last_entry = %q, want %s", got, ids[len(ids)-1])
	}
	if n := h.pendingCount("in", DefaultGroup); n != 0 {
		t.Fatalf("%d entries still pending", n)
	}
	if got := metricValue(t, m, "eventrt_executions_total"); got != 500 {
		t.Fatalf("executions_total = %v", got)
	}
	// The lag was exported at start, before anything was delivered.
	if got := metricValue(t, m, "eventrt_stream_lag_entries"); got != 500 {
		t.Fatalf("stream_lag_entries = %v, want 500", got)
	}
}

func TestStartDollarSkipsOldEntries(t *testing.T) {
	h := newHarness(t)
	h.addValues("in", 0, 3)
	o := h.options("c1")
	o.Start = "$"
	c := h.newConsumer(o, compile(t, squareSrc))
	h.start(c)
	// The group exists once Run has set up; entries added after it are new.
	h.await("group created", func() bool { return h.srv.Do("EXISTS", "in") == "1" && groupExists(h, "in") })
	ids := h.addValues("in", 10, 2)
	h.await("2 acked", func() bool { return h.total(acked) >= 2 })
	outs := h.outputs("out")
	checkExactlyOnce(t, outs, ids)
	if outs[0].Data["sq"] != float64(100) {
		t.Fatalf("first output %v", outs[0].Data)
	}
}

func groupExists(h *harness, stream string) bool {
	r, err := h.client.Do(context.Background(), h.client.B().XinfoGroups().Key(stream).Build()).ToArray()
	return err == nil && len(r) == 1
}

func TestInputIsDataJSONOrFieldsMap(t *testing.T) {
	h := newHarness(t)
	id1 := h.add("in", "data", `{"a":[1,2]}`, "other", "ignored")
	id2 := h.add("in", "x", "1", "y", "two")
	c := h.newConsumer(h.options("c1"), compile(t, echoSrc))
	h.start(c)
	h.await("2 acked", func() bool { return h.total(acked) >= 2 })
	outs := h.outputs("out")
	if len(outs) != 2 || outs[0].Source != id1 || outs[1].Source != id2 {
		t.Fatalf("outputs %+v", outs)
	}
	if fmt.Sprint(outs[0].Data) != "map[a:[1 2]]" {
		t.Fatalf("data input = %v", outs[0].Data)
	}
	if fmt.Sprint(outs[1].Data) != "map[x:1 y:two]" {
		t.Fatalf("fields input = %v", outs[1].Data)
	}

	// With NoDataField the data field is a plain string field.
	h2 := newHarness(t)
	h2.add("in", "data", `{"a":1}`)
	o := h2.options("c1")
	o.DataField = NoDataField
	h2.start(h2.newConsumer(o, compile(t, echoSrc)))
	h2.await("1 acked", func() bool { return h2.total(acked) >= 1 })
	if got := h2.outputs("out")[0].Data["data"]; got != `{"a":1}` {
		t.Fatalf("data field with NoDataField = %v", got)
	}
}

func TestStatelessParallelWorkersKeepOrder(t *testing.T) {
	h := newHarness(t)
	ids := h.addValues("in", 0, 1000)
	o := h.options("c1")
	o.Workers = 4
	o.Batch = 128
	c := h.newConsumer(o, compile(t, squareSrc))
	if c.Version().Handler.UsesState() {
		t.Fatal("square program reported as stateful")
	}
	h.start(c)
	h.await("1000 acked", func() bool { return h.total(acked) >= 1000 })
	outs := h.outputs("out")
	checkExactlyOnce(t, outs, ids)
	for i, out := range outs {
		if out.Source != ids[i] || out.Data["sq"] != float64(i*i) || out.Data["id"] != ids[i] {
			t.Fatalf("output %d = %s %v", i, out.Source, out.Data)
		}
	}
	if got := h.srv.Do("EXISTS", "{out}:env"); got != "0" {
		t.Fatalf("stateless handler wrote state")
	}
}

func TestOutputModes(t *testing.T) {
	t.Run("set", func(t *testing.T) {
		h := newHarness(t)
		h.addValues("in", 0, 10)
		o := h.options("c1")
		o.OutputMode = OutputSet
		h.start(h.newConsumer(o, compile(t, squareSrc)))
		h.await("10 acked", func() bool { return h.total(acked) >= 10 })
		if got := h.srv.Do("GET", "out"); !strings.Contains(got, `"sq":81`) {
			t.Fatalf("out = %q, want the last output", got)
		}
	})
	t.Run("publish", func(t *testing.T) {
		h := newHarness(t)
		got := make(chan string, 10)
		subscribed := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sub := h.srv.Client()
		hookCtx := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
			if s.Kind == "subscribe" {
				close(subscribed)
			}
		})
		go func() {
			_ = sub.Receive(hookCtx, sub.B().Subscribe().Channel("out").Build(), func(m rueidis.PubSubMessage) { got <- m.Message })
		}()
		select {
		case <-subscribed:
		case <-time.After(waitTimeout):
			t.Fatal("subscription not confirmed")
		}
		h.addValues("in", 0, 3)
		o := h.options("c1")
		o.OutputMode = OutputPublish
		h.start(h.newConsumer(o, compile(t, squareSrc)))
		for i := range 3 {
			select {
			case m := <-got:
				if !strings.Contains(m, `"sq":`+strconv.Itoa(i*i)) {
					t.Fatalf("message %d = %s", i, m)
				}
			case <-time.After(waitTimeout):
				t.Fatalf("message %d not published", i)
			}
		}
		if h.srv.Do("EXISTS", "out") != "0" {
			t.Fatal("publish mode wrote a key")
		}
	})
	t.Run("nil output writes nothing", func(t *testing.T) {
		h := newHarness(t)
		h.addValues("in", 0, 4)
		h.start(h.newConsumer(h.options("c1"), compile(t, `input.v % 2 == 0 ? nil : input`)))
		h.await("4 acked", func() bool { return h.total(acked) >= 4 })
		if outs := h.outputs("out"); len(outs) != 2 {
			t.Fatalf("%d outputs, want 2", len(outs))
		}
	})
}

func TestCrashBeforeCommitRedeliversExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		consumer string // the consumer that takes over
	}{
		{"same consumer restarts", "c1"},
		{"another consumer reclaims", "c2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			// Batches of 50: the first crashes, readAheadDepth more were read ahead of it,
			// and one batch is left unread.
			crashed := 50 * (1 + readAheadDepth)
			total := crashed + 50
			ids := h.addValues("in", 0, total)
			o := h.options("c1")
			var aborted atomic.Bool
			o.BeforeCommit = func(ids []string) error {
				aborted.Store(true)
				return errors.New("simulated crash")
			}
			c := h.newConsumer(o, compile(t, counterSrc))
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			err := c.Run(ctx)
			if !IsAborted(err) || !aborted.Load() {
				t.Fatalf("Run = %v, want an aborted batch", err)
			}
			if h.srv.Do("EXISTS", "out") != "0" || h.srv.Do("EXISTS", "{out}:env") != "0" {
				t.Fatal("an aborted batch left output or state behind")
			}
			if n := h.pendingCount("in", DefaultGroup); n != int64(crashed) {
				t.Fatalf("%d pending after the crash, want the %d of the first batch and those read ahead", n, crashed)
			}

			o = h.options(tc.consumer)
			fc := clock.NewFake(time.Now())
			o.Clock = fc
			o.ClaimIdle = time.Millisecond
			c2 := h.newConsumer(o, compile(t, counterSrc))
			h.start(c2)
			if tc.consumer != "c1" {
				// The new entries are read at once; the crashed batch waits to be reclaimed.
				h.await("the unread batch acked", func() bool { return h.total(acked) >= total-crashed })
				if h.pendingCount("in", DefaultGroup) != int64(crashed) {
					t.Fatal("crashed batch not pending before the reclaim")
				}
				awaitTickers(t, fc, 2)
				fc.Advance(c2.Options().ClaimInterval)
			}
			h.await("all acked", func() bool { return h.total(acked) >= total })
			checkExactlyOnce(t, h.outputs("out"), ids)
			if got := h.counterValue("{out}:env"); got != strconv.Itoa(total) {
				t.Fatalf("counter = %s, want %d", got, total)
			}
			if n := h.pendingCount("in", DefaultGroup); n != 0 {
				t.Fatalf("%d still pending", n)
			}
		})
	}
}

// awaitTickers waits until n tickers or timers were registered on fc.
func awaitTickers(t *testing.T, fc *clock.Fake, n int) {
	t.Helper()
	for range n {
		select {
		case <-fc.Registered:
		case <-time.After(waitTimeout):
			t.Fatal("consumer never registered its tickers")
		}
	}
}

func TestReclaimFromDeadConsumer(t *testing.T) {
	h := newHarness(t)
	ids := h.addValues("in", 0, 30)
	h.srv.Do("XGROUP", "CREATE", "in", DefaultGroup, "0")
	// Consumer "dead" reads everything and never acknowledges. It is still alive in the
	// registry (a stuck consumer), so only the idle reclaim takes its entries over.
	h.srv.Do("XREADGROUP", "GROUP", DefaultGroup, "dead", "COUNT", "100", "STREAMS", "in", ">")
	h.srv.Do("ZADD", DefaultMembersKey("in", DefaultGroup), "99999999999999", "dead")
	if n := h.pendingCount("in", DefaultGroup); n != 30 {
		t.Fatalf("pending = %d", n)
	}
	fc := clock.NewFake(time.Now())
	o := h.options("live")
	o.Clock = fc
	o.ClaimIdle = time.Millisecond
	o.ClaimInterval = time.Minute
	h.start(h.newConsumer(o, compile(t, counterSrc)))
	awaitTickers(t, fc, 2)
	if h.srv.Do("EXISTS", "out") != "0" {
		t.Fatal("entries of another consumer processed before any reclaim")
	}
	fc.Advance(time.Minute)
	h.await("30 acked", func() bool { return h.total(acked) >= 30 })
	outs := h.outputs("out")
	checkExactlyOnce(t, outs, ids)
	for i, out := range outs {
		if out.Source != ids[i] {
			t.Fatalf("reclaimed output %d out of order", i)
		}
	}
	if h.counterValue("{out}:env") != "30" {
		t.Fatalf("counter = %s", h.counterValue("{out}:env"))
	}
	h.mu.Lock()
	src := h.reports[len(h.reports)-1].Source
	h.mu.Unlock()
	if src != SourceClaimed {
		t.Fatalf("last batch source = %s", src)
	}
}

func TestDeadLetter(t *testing.T) {
	h := newHarness(t)
	good1 := h.add("in", "data", `{"v":1}`)
	bad := h.add("in", "data", `{"v":2,"fail":true}`, "note", "keep me")
	garbage := h.add("in", "data", `{"v":`)
	good2 := h.add("in", "data", `{"v":3}`)
	m := metrics.New()
	fc := clock.NewFake(time.Now())
	o := h.options("c1")
	o.Metrics = m.Function("test.fn")
	o.Clock = fc
	o.ClaimIdle = time.Millisecond
	o.ClaimInterval = time.Minute
	o.MaxAttempts = 3
	h.start(h.newConsumer(o, compile(t, flakySrc)))

	// First delivery: the good entries commit, the garbage goes to dead letter at once, the
	// failing entry stays pending.
	h.await("first batch", func() bool { return h.total(acked) >= 2 && h.total(dead) >= 1 })
	outs := h.outputs("out")
	if len(outs) != 2 || outs[0].Source != good1 || outs[1].Source != good2 {
		t.Fatalf("outputs %+v", outs)
	}
	deadEntries := h.deadLetters("{in}:dead")
	if len(deadEntries) != 1 || deadEntries[0]["eventrt:source"] != garbage || deadEntries[0]["eventrt:attempts"] != "1" ||
		deadEntries[0]["data"] != `{"v":` || !strings.Contains(deadEntries[0]["eventrt:error"], "decode") {
		t.Fatalf("dead letters after the first pass: %v", deadEntries)
	}
	if h.pendingCount("in", DefaultGroup) != 1 {
		t.Fatal("the failing entry is not pending")
	}
	// Attempts 2 and 3 come from reclaims; the third failure dead-letters it.
	awaitTickers(t, fc, 2)
	for attempt := 2; attempt <= 3; attempt++ {
		before := h.total(failed) + h.total(dead)
		fc.Advance(time.Minute)
		h.await(fmt.Sprintf("attempt %d", attempt), func() bool { return h.total(failed)+h.total(dead) > before })
	}
	deadEntries = h.deadLetters("{in}:dead")
	if len(deadEntries) != 2 {
		t.Fatalf("dead letters: %v", deadEntries)
	}
	d := deadEntries[1]
	if d["eventrt:source"] != bad || d["eventrt:attempts"] != "3" || d["note"] != "keep me" || d["data"] != `{"v":2,"fail":true}` ||
		!strings.Contains(d["eventrt:error"], "output") {
		t.Fatalf("dead letter of the failing entry: %v", d)
	}
	if n := h.pendingCount("in", DefaultGroup); n != 0 {
		t.Fatalf("%d still pending", n)
	}
	if len(h.outputs("out")) != 2 {
		t.Fatal("a failed entry wrote an output")
	}
	if got := metricValue(t, m, "eventrt_dead_letters_total"); got != 2 {
		t.Fatalf("dead_letters_total = %v", got)
	}
}

func (h *harness) deadLetters(key string) []map[string]string {
	h.t.Helper()
	es, err := h.client.Do(context.Background(), h.client.B().Xrange().Key(key).Start("-").End("+").Build()).AsXRange()
	if err != nil {
		h.t.Fatal(err)
	}
	out := make([]map[string]string, len(es))
	for i, e := range es {
		out[i] = e.FieldValues
	}
	return out
}

func TestDeletedPendingEntryIsAcknowledged(t *testing.T) {
	h := newHarness(t)
	ids := h.addValues("in", 0, 3)
	h.srv.Do("XGROUP", "CREATE", "in", DefaultGroup, "0")
	h.srv.Do("XREADGROUP", "GROUP", DefaultGroup, "c1", "COUNT", "10", "STREAMS", "in", ">")
	h.srv.Do("XDEL", "in", ids[1])
	// The same consumer name restarts and reads its pending entries first.
	h.start(h.newConsumer(h.options("c1"), compile(t, counterSrc)))
	h.await("3 acked", func() bool { return h.total(acked) >= 3 })
	outs := h.outputs("out")
	if len(outs) != 2 || outs[0].Source != ids[0] || outs[1].Source != ids[2] {
		t.Fatalf("outputs %+v", outs)
	}
	if n := h.pendingCount("in", DefaultGroup); n != 0 {
		t.Fatalf("%d still pending", n)
	}
}

func TestLostCommitReplyIsNotApplyingTwice(t *testing.T) {
	h := newHarness(t)
	ids := h.addValues("in", 0, 200)
	c := h.newConsumer(h.options("c1"), compile(t, counterSrc))
	var lost atomic.Int32
	c.afterCommit = func() error {
		if lost.Add(1)%2 == 1 {
			return errors.New("connection reset after the script ran")
		}
		return nil
	}
	h.start(c)
	h.await("all entries settled", func() bool { return h.total(acked) >= 100 && h.pendingCount("in", DefaultGroup) == 0 })
	checkExactlyOnce(t, h.outputs("out"), ids)
	if got := h.counterValue("{out}:env"); got != "200" {
		t.Fatalf("counter = %s, want 200", got)
	}
	if lost.Load() < 2 {
		t.Fatal("the lost-reply path was not exercised")
	}
}

func TestVersionConflictExecutesAgainOnNewState(t *testing.T) {
	h := newHarness(t)
	ids := h.addValues("in", 0, 5)
	o := h.options("c1")
	var calls atomic.Int32
	o.BeforeCommit = func(batch []string) error {
		if calls.Add(1) == 1 {
			// Another replica commits first: it took over the first entry, counted it and
			// acknowledged it.
			h.srv.Do("HSET", "{out}:env", "n", "100")
			h.srv.Do("HINCRBY", "{out}:env:meta", "version", "1")
			h.srv.Do("XACK", "in", DefaultGroup, ids[0])
		}
		return nil
	}
	h.start(h.newConsumer(o, compile(t, counterSrc)))
	h.await("settled", func() bool { return h.total(acked) >= 4 })
	if got := h.total(conflicts); got != 1 {
		t.Fatalf("conflicts = %d, want 1", got)
	}
	outs := h.outputs("out")
	checkExactlyOnce(t, outs, ids[1:])
	if outs[0].Data["n"] != float64(101) {
		t.Fatalf("first output after the conflict = %v, want n=101 (run on the new state)", outs[0].Data)
	}
	if got := h.counterValue("{out}:env"); got != "104" {
		t.Fatalf("counter = %s, want 104", got)
	}
}

func TestReplicasStatefulNoLostUpdates(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(strconv.Itoa(n)+" replicas", func(t *testing.T) {
			h := newHarness(t)
			const entries = 1500
			ids := h.addValues("in", 0, entries)
			for i := range n {
				o := h.options("r" + strconv.Itoa(i))
				o.Batch = 20
				h.start(h.newConsumer(o, compile(t, counterSrc)))
			}
			h.await("all acked", func() bool { return h.total(acked) >= entries })
			outs := h.outputs("out")
			checkExactlyOnce(t, outs, ids)
			if got := h.counterValue("{out}:env"); got != strconv.Itoa(entries) {
				t.Fatalf("counter = %s, want %d (lost updates)", got, entries)
			}
			// Every commit was serialised: the counter values are exactly 1..entries.
			seen := make([]bool, entries+1)
			for _, o := range outs {
				v := int(o.Data["n"].(float64))
				if v < 1 || v > entries || seen[v] {
					t.Fatalf("counter value %d repeated or out of range", v)
				}
				seen[v] = true
			}
			t.Logf("%d replicas: %d version conflicts", n, h.total(conflicts))
		})
	}
}

func TestReplicasStatelessShareEntries(t *testing.T) {
	h := newHarness(t)
	const entries = 1500
	ids := h.addValues("in", 0, entries)
	for i := range 3 {
		o := h.options("r" + strconv.Itoa(i))
		o.Batch = 20
		h.start(h.newConsumer(o, compile(t, squareSrc)))
	}
	h.await("all acked", func() bool { return h.total(acked) >= entries })
	checkExactlyOnce(t, h.outputs("out"), ids)
	if got := h.total(conflicts); got != 0 {
		t.Fatalf("stateless commits conflicted %d times", got)
	}
}

func TestSwapHandler(t *testing.T) {
	h := newHarness(t)
	h.addValues("in", 0, 2)
	c := h.newConsumer(h.options("c1"), compile(t, squareSrc))
	h.start(c)
	h.await("2 acked", func() bool { return h.total(acked) >= 2 })
	c.Swap(compile(t, `{id: context.entry_id, cube: input.v * input.v * input.v}`))
	h.addValues("in", 3, 1)
	h.await("3 acked", func() bool { return h.total(acked) >= 3 })
	outs := h.outputs("out")
	if outs[2].Data["cube"] != float64(27) {
		t.Fatalf("output after swap = %v", outs[2].Data)
	}
}

func TestStateKeyHoldingWrongTypeStopsRun(t *testing.T) {
	h := newHarness(t)
	h.srv.Do("SET", "in", "not a stream")
	c := h.newConsumer(h.options("c1"), compile(t, squareSrc))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := c.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") || !strings.Contains(err.Error(), "stream in") {
		t.Fatalf("Run = %v, want a WRONGTYPE error naming the stream", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	h := newHarness(t)
	v := compile(t, squareSrc)
	for name, mutate := range map[string]func(*Options){
		"batch":        func(o *Options) { o.Batch = MaxBatch + 1 },
		"mode":         func(o *Options) { o.OutputMode = "append" },
		"same keys":    func(o *Options) { o.Output = "in" },
		"dead=stream":  func(o *Options) { o.DeadLetter = "in" },
		"attempts":     func(o *Options) { o.MaxAttempts = -1 },
		"maxlen":       func(o *Options) { o.OutputMaxLen = -5 },
		"no stream":    func(o *Options) { o.Stream = "" },
		"no client":    func(o *Options) { o.Client = nil },
		"claim idle":   func(o *Options) { o.ClaimIdle = time.Microsecond },
		"state=output": func(o *Options) { o.StateKey = "out" },
		"workers":      func(o *Options) { o.Workers = -1 },
	} {
		o := h.options("c1")
		mutate(&o)
		if _, err := New(o, v); !IsInvalid(err) {
			t.Errorf("%s: New = %v, want an invalid-options error", name, err)
		}
	}
	if _, err := New(h.options("c1"), exec.Version{}); !IsInvalid(err) {
		t.Errorf("nil handler accepted: %v", err)
	}
	c, err := New(Options{Name: "f", Client: h.client, Stream: "s", Output: "o"}, v) // an output uncapped by default
	if err != nil {
		t.Fatal(err)
	}
	got := c.Options()
	if got.Group != DefaultGroup || got.Start != "0" || got.Batch != DefaultBatch || got.DeadLetter != "{s}:dead" ||
		got.StateKey != "{o}:env" || got.OutputMode != OutputXAdd || got.OutputMaxLen != 0 || got.MaxAttempts != DefaultMaxAttempts ||
		got.Consumer == "" || got.ClaimInterval != DefaultClaimIdle/2 || got.Workers != 0 {
		t.Fatalf("defaults: %+v", got)
	}
	// Workers 0 follows GOMAXPROCS, leaving one P to the consumer's own goroutines.
	for procs, want := range map[int]int{1: 1, 2: 1, 8: 7} {
		prev := runtime.GOMAXPROCS(procs)
		got := c.workers()
		runtime.GOMAXPROCS(prev)
		if got != want {
			t.Errorf("GOMAXPROCS %d: %d workers, want %d", procs, got, want)
		}
	}
}

func TestSlots(t *testing.T) {
	if err := checkSlots("f", []string{"{m}:in", "{m}:env", "{m}:env:meta", "{m}:dead", "{m}:out"}); err != nil {
		t.Fatal(err)
	}
	err := checkSlots("f", []string{"{m}:in", "{m}:env", "out"})
	if !IsCrossSlot(err) || !strings.Contains(err.Error(), `"out" (slot 16101)`) || !strings.Contains(err.Error(), "stream consumer f") {
		t.Fatalf("checkSlots = %v", err)
	}
}

func TestCluster(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	cl := cluster.Client()
	ctx := context.Background()
	bad := Options{Name: "f", Client: cl, Stream: "in", Output: "out"}
	if _, err := New(bad, compile(t, counterSrc)); !IsCrossSlot(err) {
		t.Fatalf("New with cross-slot keys on a cluster = %v", err)
	}
	h := &harness{t: t, client: cl, changed: make(chan struct{}, 1)}
	o := Options{Name: "f", Client: cl, Stream: "{m}:in", Output: "{m}:out", Consumer: "c1", Batch: 20,
		Block: 50 * time.Millisecond, Observe: h.observe}
	ids := h.addValues("{m}:in", 0, 100)
	h.start(h.newConsumer(o, compile(t, counterSrc)))
	h.await("100 acked", func() bool { return h.total(acked) >= 100 })
	checkExactlyOnce(t, h.outputs("{m}:out"), ids)
	n, err := cl.Do(ctx, cl.B().Hget().Key("{m}:out:env").Field("n").Build()).ToString()
	if err != nil || n != "100" {
		t.Fatalf("counter = %q, %v", n, err)
	}
}

func TestRedisRestartIsSurvived(t *testing.T) {
	h := newHarness(t)
	ids := h.addValues("in", 0, 100)
	h.start(h.newConsumer(h.options("c1"), compile(t, counterSrc)))
	h.await("100 acked", func() bool { return h.total(acked) >= 100 })
	h.srv.Restart()
	// The test's own connections died with the server; the consumer keeps its client.
	h.client = h.srv.Client()
	ids = append(ids, h.addValues("in", 100, 100)...)
	h.await("200 acked", func() bool { return h.total(acked) >= 200 })
	checkExactlyOnce(t, h.outputs("out"), ids)
	if got := h.counterValue("{out}:env"); got != "200" {
		t.Fatalf("counter = %s, want 200", got)
	}
}
