package stream

import (
	"errors"
	"math"
	"testing"

	"github.com/eventrt/eventrt/internal/exec"
)

// TestStateOfEarlierEntryWhenLastFails covers a batch whose last entry fails: the entries
// before it ran with exec.Call.EnvOnly, so the state committed is encoded from the Env of the
// last one that succeeded.
func TestStateOfEarlierEntryWhenLastFails(t *testing.T) {
	h := newHarness(t)
	ids := h.addValues("in", 0, 3)
	h.add("in", "data", `{"fail": true}`)
	src := `let n = (env.n ?? 0) + 1;
(input.fail ?? false) ? result({x: 1 / 0}, env) : result({n: n}, merge(env, {n: n, f: n * 1.0, half: n / 2}))`
	c := h.newConsumer(h.options("c1"), compile(t, src))
	h.start(c)
	h.await("3 acked, 1 failed", func() bool { return h.total(acked) >= 3 && h.total(failed) >= 1 })
	checkExactlyOnce(t, h.outputs("out"), ids)
	// f is an integral float: stored the way a run without EnvOnly stores it.
	for field, want := range map[string]string{"n": "3", "f": "3", "half": "1.5"} {
		if got := h.srv.Do("HGET", "{out}:env", field); got != want {
			t.Errorf("state %s = %q, want %q", field, got, want)
		}
	}
	if n := h.pendingCount("in", DefaultGroup); n != 1 {
		t.Errorf("%d entries pending, want the failed one", n)
	}
}

// envOnlyHandler honours EnvOnly but returns an env that cannot be stored, and fails when
// asked for the fields: the batch cannot commit its state and must commit nothing.
type envOnlyHandler struct{}

func (envOnlyHandler) Run(call exec.Call) (exec.Result, error) {
	if !call.EnvOnly {
		return exec.Result{}, &exec.Error{Kind: exec.KindHandler, Err: errors.New("asked for fields")}
	}
	return exec.Result{Output: []byte(`{}`), Value: map[string]any{}, StateSet: true, Env: map[string]any{"x": math.NaN()}}, nil
}
func (envOnlyHandler) Hash() string    { return "envonly" }
func (envOnlyHandler) UsesState() bool { return true }

func TestUnencodableEnvFailsTheBatch(t *testing.T) {
	h := newHarness(t)
	h.addValues("in", 0, 4)
	c := h.newConsumer(h.options("c1"), exec.Version{Handler: envOnlyHandler{}, File: "x", Runtime: "test"})
	h.start(c)
	h.await("4 failed", func() bool { return h.total(failed) >= 4 })
	if n := h.total(acked); n != 0 {
		t.Errorf("%d entries acknowledged, want none", n)
	}
	if n := h.srv.Do("HLEN", "{out}:env"); n != "0" {
		t.Errorf("state has %s fields, want none", n)
	}
	if n := h.pendingCount("in", DefaultGroup); n != 4 {
		t.Errorf("%d entries pending, want 4", n)
	}
}
