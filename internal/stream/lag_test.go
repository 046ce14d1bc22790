package stream

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/metrics"
)

func TestAddedAtReadsRedisGeneratedIDs(t *testing.T) {
	now := time.UnixMilli(1_765_000_000_000)
	read := now.Add(-time.Second)
	for _, tc := range []struct {
		id   string
		want time.Time
	}{
		{"1764999990000-0", time.UnixMilli(1_764_999_990_000)}, // 10 s in a backlog
		{"1765000030000-5", time.UnixMilli(1_765_000_030_000)}, // Redis' clock 30 s ahead: still a time
		{"1-1", read},             // an explicit sequence number
		{"999999999999-0", read},  // before 2001-09-09: not a time
		{"1765000090000-0", read}, // more than a minute in the future
		{"garbage", read},         // no id at all
		{"17650000x0000-0", read}, // not a number
	} {
		if got := addedAt(tc.id, read, now); !got.Equal(tc.want) {
			t.Errorf("addedAt(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestIDLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"1-0", "2-0", true}, {"2-0", "10-0", true}, {"10-0", "2-0", false},
		{"5-2", "5-10", true}, {"5-10", "5-2", false}, {"5-1", "5-1", false},
	} {
		if got := idLess(tc.a, tc.b); got != tc.want {
			t.Errorf("idLess(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// The backlog measurement against a real group: entries not delivered and delivered but not
// acknowledged both count, and the oldest of them is aged from its id's time.
func TestRefreshLagMeasuresTheOldestWaitingEntry(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// The first entry was added ten seconds ago (an id in Redis' own form), two just now.
	first := strconv.FormatInt(time.Now().Add(-10*time.Second).UnixMilli(), 10) + "-0"
	if err := h.client.Do(ctx, h.client.B().Xadd().Key("in").Id(first).FieldValue().FieldValue("data", `{"v":0}`).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	ids := append([]string{first}, h.addValues("in", 1, 2)...)
	if err := h.client.Do(ctx, h.client.B().XgroupCreate().Key("in").Group(DefaultGroup).Id("0").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	fc := clock.NewFake(time.Now().Add(time.Hour)) // this process's clock is an hour off Redis'
	o := h.options("c1")
	o.Metrics = m.Function("test.fn")
	o.Clock = fc
	c := h.newConsumer(o, compile(t, counterSrc))

	var seen oldestEntry
	c.refreshLag(ctx, &seen)
	if got := metricValue(t, m, "eventrt_stream_lag_entries"); got != 3 {
		t.Errorf("lag = %v, want 3", got)
	}
	if got := metricValue(t, m, "eventrt_stream_oldest_entry_age_seconds"); got < 10 || got > 15 {
		t.Errorf("oldest entry age = %v s, want about 10 s (not skewed by the hour between the clocks)", got)
	}

	// Deliver one entry without acknowledging it: one pending, two undelivered, the oldest is
	// still the first.
	if err := h.client.Do(ctx, h.client.B().Xreadgroup().Group(DefaultGroup, "c1").Count(1).Streams().Key("in").Id(">").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	c.refreshLag(ctx, &seen)
	if got := metricValue(t, m, "eventrt_stream_pending_entries"); got != 1 {
		t.Errorf("pending = %v, want 1", got)
	}
	if got := metricValue(t, m, "eventrt_stream_lag_entries"); got != 2 {
		t.Errorf("lag = %v, want 2", got)
	}
	if seen.id != ids[0] {
		t.Errorf("oldest waiting entry %s, want %s", seen.id, ids[0])
	}

	// Everything acknowledged and delivered: nothing waits, the age is 0.
	if err := h.client.Do(ctx, h.client.B().Xreadgroup().Group(DefaultGroup, "c1").Count(10).Streams().Key("in").Id(">").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := h.client.Do(ctx, h.client.B().Xack().Key("in").Group(DefaultGroup).Id(ids...).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	c.refreshLag(ctx, &seen)
	for _, name := range []string{"eventrt_stream_lag_entries", "eventrt_stream_pending_entries", "eventrt_stream_oldest_entry_age_seconds"} {
		if got := metricValue(t, m, name); got != 0 {
			t.Errorf("%s = %v with nothing waiting, want 0", name, got)
		}
	}
}

// The trigger lag of a stream entry runs from its addition (the time in its id) to its
// commit; an explicit id that is no time is measured from the read.
func TestTriggerLagFromTheEntryID(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	old := strconv.FormatInt(time.Now().Add(-10*time.Second).UnixMilli(), 10) + "-0"
	for _, id := range []string{"1-1", old} {
		if err := h.client.Do(ctx, h.client.B().Xadd().Key("in").Id(id).FieldValue().FieldValue("data", `{"v":1}`).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	m := metrics.New()
	o := h.options("c1")
	o.Metrics = m.Function("test.fn")
	h.start(h.newConsumer(o, compile(t, counterSrc)))
	h.await("2 acked", func() bool { return h.total(acked) >= 2 })

	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "eventrt_trigger_lag_seconds" {
			continue
		}
		hist := mf.GetMetric()[0].GetHistogram()
		// 10 s for the old entry, a moment for the explicit one (not the 56 years since 1-1).
		if hist.GetSampleCount() != 2 || hist.GetSampleSum() < 10 || hist.GetSampleSum() > 20 {
			t.Fatalf("trigger lag: %d samples summing to %v s, want 2 summing to about 10 s", hist.GetSampleCount(), hist.GetSampleSum())
		}
		return
	}
	t.Fatal("no trigger lag exported")
}
