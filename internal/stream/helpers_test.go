package stream

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/exec"

	"github.com/eventrt/eventrt/internal/exec/exprengine"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/redistest"
)

// waitTimeout bounds every wait for the consumer to make progress.
const waitTimeout = 30 * time.Second

// Programs used by the tests.
const (
	// counter is stateful: every entry increments env.n and reports it.
	counterSrc = `let n = (env.n ?? 0) + 1;
result({n: n, id: context.entry_id, v: input.v, trigger: context.trigger}, merge(env, {n: n}))`
	// square is stateless.
	squareSrc = `{id: context.entry_id, sq: input.v * input.v}`
	// flaky fails (an Inf output cannot be encoded) when input.fail is true.
	flakySrc = `(input.fail ?? false) ? {x: 1 / 0} : {v: input.v}`
	// echo returns its input.
	echoSrc = `input`
)

func compile(t testing.TB, src string) exec.Version {
	t.Helper()
	v, err := compileSource(src)
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return v
}

func compileSource(src string) (exec.Version, error) {
	p, err := exprengine.Compile("test.expr", []byte(src), exprengine.DefaultLimits())
	if err != nil {
		return exec.Version{}, err
	}
	return exec.Version{Handler: p, File: "test.expr", ModTime: time.Unix(1764085200, 0), Runtime: "expr"}, nil
}

// harness runs consumers against one Redis and collects their reports.
type harness struct {
	t      testing.TB
	srv    *redistest.Server
	client rueidis.Client

	mu      sync.Mutex
	reports []Report
	changed chan struct{}
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	srv := redistest.Start(t)
	return &harness{t: t, srv: srv, client: srv.Client(), changed: make(chan struct{}, 1)}
}

// options returns test options: stream "in", output "out", small batches, a short block.
func (h *harness) options(consumer string) Options {
	return Options{
		Name: "test.fn", Client: h.client, Stream: "in", Output: "out", Consumer: consumer,
		Batch: 50, Block: 50 * time.Millisecond, Observe: h.observe,
	}
}

func (h *harness) observe(r Report) {
	h.mu.Lock()
	h.reports = append(h.reports, r)
	h.mu.Unlock()
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// total sums a report field over every report so far.
func (h *harness) total(f func(Report) int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.reports {
		n += f(r)
	}
	return n
}

func acked(r Report) int     { return r.Acked }
func dead(r Report) int      { return r.DeadLettered }
func conflicts(r Report) int { return r.Conflicts }
func failed(r Report) int    { return r.Failed }

// await waits until cond holds over the reports, failing the test after waitTimeout.
func (h *harness) await(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.After(waitTimeout)
	// Batches signal changed; a few conditions (the group being created) have no event of their
	// own, so the condition is also re-checked on a short tick.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-h.changed:
		case <-tick.C:
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// start runs c until the test ends; the returned channel yields Run's result.
func (h *harness) start(c *Consumer) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(waitTimeout):
				h.t.Errorf("consumer did not stop")
			}
		})
		return err
	}
	h.t.Cleanup(func() { _ = stop() })
	return stop
}

func (h *harness) newConsumer(o Options, v exec.Version) *Consumer {
	h.t.Helper()
	c, err := New(o, v)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// addValues appends n entries with data {"v": from+i}.
func (h *harness) addValues(stream string, from, n int) []string {
	h.t.Helper()
	cmds := make(rueidis.Commands, n)
	for i := range n {
		cmds[i] = h.client.B().Xadd().Key(stream).Id("*").FieldValue().FieldValue("data", `{"v":`+strconv.Itoa(from+i)+`}`).Build()
	}
	ids := make([]string, n)
	for i, r := range h.client.DoMulti(context.Background(), cmds...) {
		id, err := r.ToString()
		if err != nil {
			h.t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

func (h *harness) add(stream string, fv ...string) string {
	h.t.Helper()
	b := h.client.B().Xadd().Key(stream).Id("*").FieldValue()
	for i := 0; i+1 < len(fv); i += 2 {
		b = b.FieldValue(fv[i], fv[i+1])
	}
	id, err := h.client.Do(context.Background(), b.Build()).ToString()
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

// outputs returns the entries of an output stream as (source id, decoded data).
type output struct {
	ID     string
	Source string
	Data   map[string]any
}

func (h *harness) outputs(stream string) []output {
	h.t.Helper()
	es, err := h.client.Do(context.Background(), h.client.B().Xrange().Key(stream).Start("-").End("+").Build()).AsXRange()
	if err != nil {
		h.t.Fatal(err)
	}
	out := make([]output, 0, len(es))
	for _, e := range es {
		o := output{ID: e.ID, Source: e.FieldValues["source"]}
		if err := json.Unmarshal([]byte(e.FieldValues["data"]), &o.Data); err != nil {
			h.t.Fatalf("output %s: %v", e.ID, err)
		}
		out = append(out, o)
	}
	return out
}

func (h *harness) pendingCount(stream, group string) int64 {
	h.t.Helper()
	r, err := h.client.Do(context.Background(), h.client.B().Xpending().Key(stream).Group(group).Build()).ToArray()
	if err != nil {
		h.t.Fatal(err)
	}
	n, _ := r[0].AsInt64()
	return n
}

// counterValue is env.n as stored.
func (h *harness) counterValue(stateKey string) string {
	return h.srv.Do("HGET", stateKey, "n")
}

// metricValue reads one sample of a metric by name (the first series).
func metricValue(t testing.TB, m *metrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		mt := mf.GetMetric()[0]
		switch {
		case mt.GetCounter() != nil:
			return mt.GetCounter().GetValue()
		case mt.GetGauge() != nil:
			return mt.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// checkExactlyOnce asserts that outputs hold each of ids exactly once, in order.
func checkExactlyOnce(t testing.TB, outs []output, ids []string) {
	t.Helper()
	if len(outs) != len(ids) {
		t.Fatalf("%d outputs for %d entries", len(outs), len(ids))
	}
	seen := map[string]bool{}
	for _, o := range outs {
		if seen[o.Source] {
			t.Fatalf("entry %s output twice", o.Source)
		}
		seen[o.Source] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("entry %s has no output", id)
		}
	}
}
