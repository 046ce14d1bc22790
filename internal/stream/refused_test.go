package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/state"
)

// logBuffer collects log lines written from the consumer's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the lines containing s.
func (b *logBuffer) lines(s string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for l := range strings.Lines(b.buf.String()) {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

func withErr(r Report) int {
	if r.Err != nil {
		return 1
	}
	return 0
}

// deliveryCounts returns the delivery count of each pending entry of the default group.
func (h *harness) deliveryCounts(stream string) []int64 {
	h.t.Helper()
	rows, err := h.client.Do(context.Background(), h.client.B().Xpending().Key(stream).Group(DefaultGroup).
		Start("-").End("+").Count(1000).Build()).ToArray()
	if err != nil {
		h.t.Fatal(err)
	}
	out := make([]int64, len(rows))
	for i, r := range rows {
		row, err := r.ToArray()
		if err != nil || len(row) != 4 {
			h.t.Fatalf("XPENDING row %d: %v", i, err)
		}
		if out[i], err = row[3].AsInt64(); err != nil {
			h.t.Fatal(err)
		}
	}
	return out
}

// An output key left as a string by key mode makes every commit fail. The commit is refused
// before it writes anything: the entries stay pending (not redelivered, so no closer to the
// dead-letter stream), the state does not move, the refusal is logged once however often it
// is retried, and the batch commits as computed once the key is fixed.
func TestWrongTypeOutputKeepsEntriesPending(t *testing.T) {
	h := newHarness(t)
	h.srv.Do("SET", "out", "from key mode")
	ids := h.addValues("in", 0, 5)
	fc := clock.NewFake(time.Now())
	logs := &logBuffer{}
	m := metrics.New()
	o := h.options("c1")
	o.Clock = fc
	o.ClaimInterval = time.Hour
	o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	o.Metrics = m.Function("test.fn")
	h.start(h.newConsumer(o, compile(t, counterSrc)))
	awaitTickers(t, fc, 2)

	h.await("a refused commit", func() bool { return h.total(withErr) >= 1 })
	h.mu.Lock()
	r := h.reports[len(h.reports)-1]
	h.mu.Unlock()
	if !state.IsRefused(r.Err) || !strings.Contains(r.Err.Error(), "WRONGTYPE") || !strings.Contains(r.Err.Error(), "'out' holds a string") {
		t.Fatalf("report error = %v, want a refusal naming the output key", r.Err)
	}
	check := func(when string) {
		t.Helper()
		if n := h.pendingCount("in", DefaultGroup); n != 5 {
			t.Fatalf("%s: %d pending, want 5", when, n)
		}
		if d := h.deliveryCounts("in"); !slices.Equal(d, []int64{1, 1, 1, 1, 1}) {
			t.Fatalf("%s: delivery counts %v, want the entries left as delivered", when, d)
		}
		if h.srv.Do("GET", "out") != "from key mode" {
			t.Fatalf("%s: the output key changed", when)
		}
		for _, k := range []string{"{out}:env", "{out}:env:meta", "{in}:dead"} {
			if h.srv.Do("EXISTS", k) != "0" {
				t.Fatalf("%s: a refused commit wrote %s", when, k)
			}
		}
	}
	check("after the refusal")
	refusals := logs.lines("commit refused")
	if len(refusals) != 1 || !strings.Contains(refusals[0], "key=out") || !strings.Contains(refusals[0], "level=ERROR") {
		t.Fatalf("refusal log lines: %q", refusals)
	}

	// The retry waits on the clock: a second refusal is neither logged nor reported again.
	awaitTickers(t, fc, 1)
	fc.Advance(time.Minute)
	awaitTickers(t, fc, 1)
	check("after a retry")
	if n := len(logs.lines("commit refused")); n != 1 {
		t.Fatalf("refusal logged %d times for one batch", n)
	}
	if got := metricValue(t, m, "eventrt_errors_total"); got != 2 {
		t.Fatalf("errors_total = %v, want one per refused commit", got)
	}
	if n := h.total(withErr); n != 1 {
		t.Fatalf("%d reports with an error, want 1", n)
	}

	h.srv.Do("DEL", "out")
	fc.Advance(time.Minute)
	h.await("5 acked", func() bool { return h.total(acked) >= 5 })
	checkExactlyOnce(t, h.outputs("out"), ids)
	if got := h.counterValue("{out}:env"); got != "5" {
		t.Fatalf("counter = %s, want 5", got)
	}
	if n := h.pendingCount("in", DefaultGroup); n != 0 {
		t.Fatalf("%d still pending", n)
	}
	if h.srv.Do("EXISTS", "{in}:dead") != "0" {
		t.Fatal("entries were dead-lettered")
	}
}

// A poison entry with thousands of fields between good entries is dead-lettered with its
// fields folded into one, in the same commit as the good entries.
func TestHugePoisonEntryIsDeadLettered(t *testing.T) {
	h := newHarness(t)
	good1 := h.add("in", "data", `{"v":1}`)
	fields := []string{"data", `{"v":`}
	for i := range 5000 {
		fields = append(fields, "f"+strconv.Itoa(i), strconv.Itoa(i))
	}
	poison := h.add("in", fields...)
	good2 := h.add("in", "data", `{"v":3}`)
	h.start(h.newConsumer(h.options("c1"), compile(t, counterSrc)))
	h.await("the batch committed", func() bool { return h.total(acked) >= 2 && h.total(dead) >= 1 })

	checkExactlyOnce(t, h.outputs("out"), []string{good1, good2})
	if got := h.counterValue("{out}:env"); got != "2" {
		t.Fatalf("counter = %s, want 2", got)
	}
	if n := h.pendingCount("in", DefaultGroup); n != 0 {
		t.Fatalf("%d still pending", n)
	}
	if n := h.total(withErr); n != 0 {
		t.Fatalf("%d batches failed to commit", n)
	}
	ds := h.deadLetters("{in}:dead")
	if len(ds) != 1 {
		t.Fatalf("%d dead letters", len(ds))
	}
	d := ds[0]
	if d[state.DeadFieldSource] != poison || d[state.DeadFieldAttempts] != "1" || !strings.Contains(d[state.DeadFieldError], "decode") {
		t.Fatalf("dead letter: source %q attempts %q error %q", d[state.DeadFieldSource], d[state.DeadFieldAttempts], d[state.DeadFieldError])
	}
	var folded []string
	if err := json.Unmarshal([]byte(d[state.DeadFieldFields]), &folded); err != nil {
		t.Fatalf("%s: %v", state.DeadFieldFields, err)
	}
	if !slices.Equal(folded, fields) || len(d) != 4 {
		t.Fatalf("dead letter has %d fields, %d folded strings; want 4 and the entry's %d in order", len(d), len(folded), len(fields))
	}
}
