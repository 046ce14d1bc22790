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
		f.StreamLag(3, 4)
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
	// Only series with a value are exported: no stream failure, no poll success.
	if n := testutil.CollectAndCount(m.executions); n != 2 {
		t.Errorf("executions: %d series, want 2", n)
	}
	if n := testutil.CollectAndCount(m.lag); n != 1 {
		t.Errorf("lag: %d series, want stream's only", n)
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
