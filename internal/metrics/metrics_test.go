package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestOutputFieldsAreCapped(t *testing.T) {
	m := New()
	f := m.Function("m.f")
	out := map[string]any{"s": "text", "b": true, "nan": nanValue()}
	for i := 0; i < MaxOutputFields+10; i++ {
		out[fmt.Sprintf("f%03d", i)] = float64(i)
	}
	f.Output(out)
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
