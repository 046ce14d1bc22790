package pyengine

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/exec"
)

// benchRequests is the worker extension that answers the benchmarks' requests (B and P),
// which the production protocol does not have.
func benchRequests(t testing.TB) string {
	t.Helper()
	src, err := os.ReadFile("testdata/bench_requests.py")
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

// TestWorkerScriptRunsExtensionBeforeMain: an extension can only register requests if it runs
// before main(), the worker source's last statement, which serves until the end.
func TestWorkerScriptRunsExtensionBeforeMain(t *testing.T) {
	if !strings.HasSuffix(workerSource, "\nmain()\n") {
		t.Fatal("worker.py must end with main(): workerScript puts extensions before it")
	}
	if s := workerScript("X = 1"); !strings.HasSuffix(s, "\nX = 1\n\nmain()\n") || strings.Count(s, "\nmain()\n") != 1 {
		t.Fatalf("extension misplaced:\n%s", s[len(s)-40:])
	}
}

// TestProductionWorkerRefusesBenchRequests: without the extension the benchmarks' requests are
// unknown to the worker, an error reply rather than a measurement.
func TestProductionWorkerRefusesBenchRequests(t *testing.T) {
	e, _ := startEngine(t, "def handler(i, c):\n    return None\n", Options{})
	deadline := time.Now().Add(5 * time.Second)
	_, kind, body, err := e.exchange([]byte{0, 0, 0, 0, 'P'}, &deadline)
	if err != nil || kind != 'H' || !strings.Contains(string(body), "unknown request kind") {
		t.Fatalf("ping to a production worker: %q %s %v, want an unknown-request error", kind, body, err)
	}
}

// DirectCost is what calling the handler costs inside the worker, without eventrt around it.
type DirectCost struct {
	// Handler is handler(input, context) alone, per call.
	Handler time.Duration
	// WithJSON adds json.loads of the input and json.dumps of the output, per call: what the
	// course runtime spent per execution besides Redis.
	WithJSON time.Duration
	// HandlerCPU and WithJSONCPU are the same as the worker's CPU time, which other load on
	// the machine disturbs less than elapsed time.
	HandlerCPU, WithJSONCPU time.Duration
}

// MeasureDirect times the handler called n times in a loop inside the worker, alone and with
// JSON decoding and encoding, on call's input, env and context. The worker must run the
// benchmarks' extension (benchRequests). The handler really runs (2n times), and context.env
// evolves across those calls.
func (e *Engine) MeasureDirect(call exec.Call, n int) (DirectCost, error) {
	if n <= 0 {
		return DirectCost{}, fmt.Errorf("pyengine: MeasureDirect: n = %d, want > 0", n)
	}
	raw, ok := call.Input.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(call.Input); err != nil {
			return DirectCost{}, fmt.Errorf("pyengine: MeasureDirect: input: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return DirectCost{}, ErrClosed
	}
	c := call.Context
	q := &e.req
	q.b = append(q.b[:0], 0, 0, 0, 0, 'B', mTuple)
	q.u32(12)
	q.int64(int64(n))
	q.str(string(raw))
	env := call.Env
	if env == nil {
		env = map[string]any{}
	}
	if err := q.value(env, 0); err != nil {
		return DirectCost{}, fmt.Errorf("pyengine: MeasureDirect: context.env%w", err)
	}
	q.str(c.Host)
	q.int64(int64(c.Port))
	q.str(c.InputKey)
	q.str(c.OutputKey)
	q.str(c.FunctionGetmtime)
	q.b = append(q.b, mNone)
	q.str(c.Trigger)
	q.str(c.EntryID)
	q.str(c.Function)
	deadline := time.Now().Add(min(time.Duration(2*n)*e.o.Timeout, 10*time.Minute))
	_, kind, body, err := e.exchange(q.b, &deadline)
	if err != nil {
		return DirectCost{}, err
	}
	if kind != 'B' {
		return DirectCost{}, e.replyError(kind, body)
	}
	var t struct {
		Handler     float64 `json:"handler_ns"`
		WithJSON    float64 `json:"with_json_ns"`
		HandlerCPU  float64 `json:"handler_cpu_ns"`
		WithJSONCPU float64 `json:"with_json_cpu_ns"`
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return DirectCost{}, e.protocolError(err.Error())
	}
	return DirectCost{Handler: time.Duration(t.Handler), WithJSON: time.Duration(t.WithJSON),
		HandlerCPU: time.Duration(t.HandlerCPU), WithJSONCPU: time.Duration(t.WithJSONCPU)}, nil
}
