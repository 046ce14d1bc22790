package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/eventrt/eventrt/internal/redistest"
)

// A stream input (detected with TYPE) is consumed through the consumer group: one execution
// per entry, in order, outputs XADDed to the output stream, state committed with the XACKs.
func TestStreamInputDetectedAndConsumed(t *testing.T) {
	srv := redistest.Start(t)
	for i := 1; i <= 20; i++ {
		srv.Do("XADD", "events", "*", "data", fmt.Sprintf(`{"n": %d}`, i))
	}
	d := startDaemon(t, srv, map[string]string{"REDIS_INPUT_KEY": "events", "REDIS_OUTPUT_KEY": "results",
		"HANDLER_PATH": writeHandler(t, `result({"n": input.n, "sum": (env.sum ?? 0) + input.n, "entry": context.entry_id}, {"sum": (env.sum ?? 0) + input.n})`)})
	d.awaitMetric(`eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="stream"}`, 20)
	if n := d.streamed.Load(); n != 1 {
		t.Errorf("streaming hook called %d times, want once (main raises the GC percent there)", n)
	}
	if got, _ := d.running.Load().([2]int); got != [2]int{0, 1} {
		t.Errorf("running hook reported %v, want no key-mode function and one stream", got)
	}
	if got := srv.Do("XLEN", "results"); got != "20" {
		t.Fatalf("XLEN results = %s", got)
	}
	if got := srv.Do("HGET", "{results}:env", "sum"); got != "210" {
		t.Fatalf("state sum = %s, want 210", got)
	}
	last := srv.Do("XREVRANGE", "results", "+", "-", "COUNT", "1")
	if !strings.Contains(last, `"sum":210`) || !strings.Contains(last, `"n":20`) {
		t.Fatalf("last output %s", last)
	}
	if got := srv.Do("XPENDING", "events", "eventrt"); !strings.HasPrefix(got, "[0 ") {
		t.Fatalf("entries left pending: %s", got)
	}
	// A restart does not run the acknowledged entries again.
	if code := d.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	d2 := startDaemon(t, srv, map[string]string{"REDIS_INPUT_KEY": "events", "REDIS_OUTPUT_KEY": "results",
		"HANDLER_PATH": writeHandler(t, `result({"n": input.n, "sum": (env.sum ?? 0) + input.n}, {"sum": (env.sum ?? 0) + input.n})`)})
	srv.Do("XADD", "events", "*", "data", `{"n": 100}`)
	d2.awaitMetric(`eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="stream"}`, 1)
	if got := srv.Do("HGET", "{results}:env", "sum"); got != "310" {
		t.Fatalf("state sum after restart = %s, want 310", got)
	}
}
