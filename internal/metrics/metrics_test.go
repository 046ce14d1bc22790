package metrics

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestOutputFieldsAreCapped(t *testing.T) {
	m := New()
	f := m.Function("m.f")
	out := map[string]any{"s": "text", "b": true, "nan": nanValue()}
	for i := 0; i < MaxOutputFields+10; i++ {
		out[fmt.Sprintf("f%03d", i)] = float64(i)
	}
	f.Output(maps.All(out))
	if n := testutil.CollectAndCount(m.outputValue); n != MaxOutputFields {
		t.Fatalf("%d output series, want %d", n, MaxOutputFields)
	}
}

func nanValue() float64 { z := 0.0; return z / z }

func TestHandlerInfoReplacesPreviousVersion(t *testing.T) {
	m := New()
	f := m.Function("m.f")
	f.Handler("aaa", "expr", time.Unix(10, 0))
	f.Handler("bbb", "expr", time.Unix(20, 0))
	if n := testutil.CollectAndCount(m.handlerInfo); n != 1 {
		t.Fatalf("%d handler_info series after a reload, want 1", n)
	}
	if v := testutil.ToFloat64(m.handlerInfo.WithLabelValues("m.f", "bbb", "expr")); v != 1 {
		t.Fatalf("handler_info for the new hash = %v", v)
	}
	if v := testutil.ToFloat64(m.handlerMtime.WithLabelValues("m.f")); v != 20 {
		t.Fatalf("mtime = %v", v)
	}
}

func TestLiveGaugesFollowTheirSource(t *testing.T) {
	m := New()
	f := m.Function("m.f")
	on := false
	f.ObserveNotifications(func() bool { return on })
	if v := testutil.ToFloat64(m.notify); v != 0 {
		t.Fatalf("notifications = %v", v)
	}
	on = true
	if v := testutil.ToFloat64(m.notify); v != 1 {
		t.Fatalf("notifications = %v after the source changed", v)
	}
	f.ObserveNotifications(nil)
	if n := testutil.CollectAndCount(m.notify); n != 0 {
		t.Fatalf("%d series after removal", n)
	}
}

func TestExecutedRecordsOutcomeAndLag(t *testing.T) {
	m := New()
	f := m.Function("m.f")
	now := time.Unix(100, 0)
	f.Executed("keyspace", true, time.Millisecond, 2*time.Millisecond, now)
	f.Executed("keyspace", false, time.Millisecond, 0, now)
	if v := testutil.ToFloat64(m.executions.WithLabelValues("m.f", "keyspace", OutcomeSuccess)); v != 1 {
		t.Fatalf("success = %v", v)
	}
	if v := testutil.ToFloat64(m.executions.WithLabelValues("m.f", "keyspace", OutcomeError)); v != 1 {
		t.Fatalf("error = %v", v)
	}
	if v := testutil.ToFloat64(m.lastSuccess.WithLabelValues("m.f")); v != 100 {
		t.Fatalf("last success = %v", v)
	}
	if n := testutil.CollectAndCount(m.lag); n != 1 {
		t.Fatalf("lag observed %d series: a failed run must not observe lag", n)
	}
}

func TestForgetDropsTheFunctionsGauges(t *testing.T) {
	m := New()
	a, b := m.Function("a.f"), m.Function("b.f")
	for _, f := range []*Function{a, b} {
		f.Handler("h", "expr", time.Unix(1, 0))
		f.Executed("keyspace", true, time.Millisecond, time.Millisecond, time.Unix(2, 0))
		f.Output(maps.All(map[string]any{"x": 1.0}))
		f.Mode(ModeStream)
		f.StreamBacklog(Backlog{Undelivered: 3, UndeliveredKnown: true, Pending: 4})
	}
	a.Forget()
	for name, c := range map[string]interface{ Describe(chan<- *prometheus.Desc) }{
		"handler_info": m.handlerInfo, "last_success": m.lastSuccess, "output_value": m.outputValue, "stream_lag": m.streamLag,
	} {
		if n := testutil.CollectAndCount(c.(prometheus.Collector)); n != 1 {
			t.Errorf("%s: %d series after Forget, want only b.f's", name, n)
		}
	}
	if v := testutil.ToFloat64(m.executions.WithLabelValues("a.f", "keyspace", OutcomeSuccess)); v != 1 {
		t.Errorf("Forget dropped a counter's history: %v", v)
	}
	// Output keeps each field's series bound: after Forget, a new output must be exported again.
	a.Output(maps.All(map[string]any{"x": 2.0}))
	if n := testutil.CollectAndCount(m.outputValue); n != 2 {
		t.Errorf("output_value: %d series after an output that followed Forget, want 2", n)
	}
}

// Executed binds its series once per trigger; a change of trigger and a Forget in between
// must still land every update on the series that are exported.
func TestExecutedAcrossTriggersAndForget(t *testing.T) {
	m := New()
	f := m.Function("m.f")
	f.Executed("stream", true, time.Millisecond, time.Millisecond, time.Unix(10, 0))
	f.Executed("poll", false, time.Millisecond, 0, time.Unix(11, 0))
	f.Executed("stream", true, time.Millisecond, time.Millisecond, time.Unix(12, 0))
	for _, c := range []struct {
		trigger, outcome string
		want             float64
	}{{"stream", OutcomeSuccess, 2}, {"poll", OutcomeError, 1}} {
		if v := testutil.ToFloat64(m.executions.WithLabelValues("m.f", c.trigger, c.outcome)); v != c.want {
			t.Errorf("executions %s/%s = %v, want %v", c.trigger, c.outcome, v, c.want)
		}
	}
	f.Forget()
	if n := testutil.CollectAndCount(m.lastSuccess); n != 0 {
		t.Fatalf("last_success: %d series after Forget", n)
	}
	f.Executed("stream", true, time.Millisecond, time.Millisecond, time.Unix(13, 0))
	if v := testutil.ToFloat64(m.lastSuccess.WithLabelValues("m.f")); v != 13 {
		t.Fatalf("last success after Forget and a new run = %v, want 13", v)
	}
	f.Events("stream", 256)
	f.Event("stream")
	if v := testutil.ToFloat64(m.events.WithLabelValues("m.f", "stream")); v != 257 {
		t.Fatalf("events = %v, want 257", v)
	}
}

// A freshly registered function exports every series of its closed label sets at 0, so that
// increase() sees the first failure and ratios are 0, not empty.
func TestSeriesExistAtZeroFromRegistration(t *testing.T) {
	m := New()
	k := m.Function("k.f")
	k.Mode(ModeKey)
	s := m.Function("s.f")
	s.Mode(ModeStream)
	for _, c := range []struct {
		name  string
		c     prometheus.Collector
		count int
	}{
		{"executions", m.executions, 2 * (4 + 1)},
		{"events", m.events, 4 + 1},
		{"errors", m.errors, 2 * len(errorKinds)},
		{"skipped", m.skipped, 2 * len(skipReasons)},
		{"reloads", m.reloads, 2 * 2},
		{"worker restarts", m.restarts, 2 * len(restartReasons)},
		{"dead letters", m.deadLetters, 2},
		{"redeliveries", m.redelivered, 2},
		{"stream lag", m.streamLag, 1},
		{"stream pending", m.pending, 1},
		{"oldest entry age", m.oldest, 1},
		{"last success", m.lastSuccess, 2},
	} {
		if n := testutil.CollectAndCount(c.c); n != c.count {
			t.Errorf("%s: %d series after registration, want %d", c.name, n, c.count)
		}
	}
	if v := testutil.ToFloat64(m.reloads.WithLabelValues("k.f", OutcomeFailure)); v != 0 {
		t.Errorf("reload failures = %v, want 0", v)
	}
	if v := testutil.ToFloat64(m.deadLetters.WithLabelValues("s.f", ModeStream)); v != 0 {
		t.Errorf("dead letters = %v, want 0", v)
	}
	k.Reload(false)
	if v := testutil.ToFloat64(m.reloads.WithLabelValues("k.f", OutcomeFailure)); v != 1 {
		t.Errorf("reload failures = %v after one, want 1", v)
	}
	// Registering again (a function restarted by a reload) keeps the counts.
	m.Function("k.f").Mode(ModeKey)
	if v := testutil.ToFloat64(m.reloads.WithLabelValues("k.f", OutcomeFailure)); v != 1 {
		t.Errorf("reload failures = %v after registering again, want 1", v)
	}
}

func TestStreamBacklog(t *testing.T) {
	m := New()
	now := time.Unix(1000, 0)
	m.oldest.now = func() time.Time { return now }
	f := m.Function("s.f")
	f.Mode(ModeStream)
	if v := testutil.ToFloat64(m.oldest); v != 0 {
		t.Fatalf("oldest age %v with nothing waiting, want 0", v)
	}
	f.StreamBacklog(Backlog{Undelivered: 5, UndeliveredKnown: true, Pending: 2, OldestAge: 3 * time.Second})
	if v := testutil.ToFloat64(m.oldest); v != 3 {
		t.Fatalf("oldest age %v, want 3", v)
	}
	now = now.Add(2 * time.Second) // no new measurement: the age keeps growing
	if v := testutil.ToFloat64(m.oldest); v != 5 {
		t.Fatalf("oldest age %v two seconds later, want 5", v)
	}
	if v := testutil.ToFloat64(m.streamLag); v != 5 {
		t.Fatalf("lag %v, want 5", v)
	}
	f.StreamBacklog(Backlog{Pending: 2})
	if n := testutil.CollectAndCount(m.streamLag); n != 0 {
		t.Fatalf("an unknown lag left %d series; want none, not a sentinel", n)
	}
	if v := testutil.ToFloat64(m.oldest); v != 0 {
		t.Fatalf("oldest age %v after the backlog cleared, want 0", v)
	}
	f.Forget()
	if n := testutil.CollectAndCount(m.oldest); n != 0 {
		t.Fatalf("oldest age: %d series after Forget", n)
	}
}

func TestRedeliveriesAndDeadLettersApart(t *testing.T) {
	m := New()
	f := m.Function("s.f")
	f.Mode(ModeStream)
	f.Redelivered(false)
	f.Redelivered(false)
	f.DeadLetter(ModeStream, 1)
	f.DeadLetter(ModeKey, 1)
	if v := testutil.ToFloat64(m.redelivered.WithLabelValues("s.f", OutcomeError)); v != 2 {
		t.Errorf("failed redeliveries = %v, want 2", v)
	}
	if v := testutil.ToFloat64(m.deadLetters.WithLabelValues("s.f", ModeStream)); v != 1 {
		t.Errorf("stream dead letters = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.deadLetters.WithLabelValues("s.f", ModeKey)); v != 1 {
		t.Errorf("key dead letters = %v, want 1", v)
	}
}

func TestFastPathFallbacksStartAtZero(t *testing.T) {
	m := New()
	f := m.Function("m.f")
	f.FastPathReasons([]string{"value", "error"})
	if n := testutil.CollectAndCount(m.fallbacks); n != 2 {
		t.Fatalf("%d fallback series after registering two reasons, want 2", n)
	}
	if v := testutil.ToFloat64(m.fallbacks.WithLabelValues("m.f", "error")); v != 0 {
		t.Fatalf("error fallbacks = %v before any run, want 0", v)
	}
	f.FastPathFallback("error")
	f.FastPathFallback("error")
	if v := testutil.ToFloat64(m.fallbacks.WithLabelValues("m.f", "error")); v != 2 {
		t.Fatalf("error fallbacks = %v, want 2", v)
	}
}
