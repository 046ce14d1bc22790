package exprengine

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/eventrt/eventrt/internal/exec"
)

// fallbacks records what ObserveFallbacks reports.
type fallbacks struct {
	mu      sync.Mutex
	reasons []string
}

func (r *fallbacks) observe(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons = append(r.reasons, reason)
}

func (r *fallbacks) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reasons
	r.reasons = nil
	return out
}

// TestFallbackReasons: every run that goes to the VM is reported once, with its reason, and
// a run the fast path finishes is not reported.
func TestFallbackReasons(t *testing.T) {
	for _, tc := range []struct {
		src    string
		input  any
		reason string // "" when the fast path finishes the run
	}{
		{`input.n + 1`, map[string]any{"n": 1}, ""},
		{`duration("1s").Seconds()`, map[string]any{}, "unsupported"},
		{`input.n + 1`, map[string]any{"n": "x"}, "error"},
		{`input[input.k] + 1`, json.RawMessage(`{"k": 5}`), "value"}, // not a key: left to the VM
		{`map(1..100, #)`, map[string]any{}, "budget"},
	} {
		lim := DefaultLimits()
		lim.MemoryBudget = 50
		p, err := Compile("h.expr", []byte(tc.src), lim)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		var got fallbacks
		p.ObserveFallbacks(got.observe)
		_, _ = p.Run(exec.Call{Input: tc.input, Env: map[string]any{}})
		want := []string{tc.reason}
		if tc.reason == "" {
			want = nil
		}
		if r := got.take(); !slices.Equal(r, want) {
			t.Errorf("%s on %v: reported %q, want %q", tc.src, tc.input, r, want)
		}
		if tc.reason != "" && !slices.Contains(FallbackReasons(), tc.reason) {
			t.Errorf("%q is not among FallbackReasons %q", tc.reason, FallbackReasons())
		}
	}
}

// TestFallbackBackoff: past maxFastBails failed runs in a row the fast path is only tried on
// every fastProbe-th run, the others reported as backoff.
func TestFallbackBackoff(t *testing.T) {
	p := mustCompile(t, `input.n + 1`)
	var got fallbacks
	p.ObserveFallbacks(got.observe)
	bad := map[string]any{"n": "x"}
	for range maxFastBails + fastProbe {
		_, _ = p.Run(exec.Call{Input: bad, Env: map[string]any{}})
	}
	r := got.take()
	count := map[string]int{}
	for _, x := range r {
		count[x]++
	}
	// maxFastBails failures, then one probe (when the count reaches a multiple of fastProbe)
	// among the backoffs.
	if len(r) != maxFastBails+fastProbe || count["error"] != maxFastBails+1 || count["backoff"] != fastProbe-1 {
		t.Errorf("reasons %v", count)
	}
	p.ObserveFallbacks(nil)
	_, _ = p.Run(exec.Call{Input: bad, Env: map[string]any{}})
	if r := got.take(); r != nil {
		t.Errorf("reported %q after ObserveFallbacks(nil)", r)
	}
}

// TestFastPathBugIsAnError: a panic of the fast path's own, on a run the VM finishes, fails
// the run with an internal error carrying the panic's stack, instead of the VM's value; a
// panic on a run the VM fails too is the program's failure, reported as the VM reports it.
func TestFastPathBugIsAnError(t *testing.T) {
	p := mustCompile(t, `input.n + 1`)
	var got fallbacks
	p.ObserveFallbacks(got.observe)
	var nilMap map[string]any
	p.fast.root = func(*frame) any { nilMap["x"] = 1; return nil } // a bug: assignment to a nil map
	_, err := p.Run(exec.Call{Input: map[string]any{"n": 1}, Env: map[string]any{}})
	if exec.KindOf(err) != exec.KindInternal || !strings.Contains(err.Error(), "assignment to entry in nil map") {
		t.Fatalf("a fast path bug gave %v (kind %q), want an internal error", err, exec.KindOf(err))
	}
	if stack := exec.PanicStack(err); !bytes.Contains(stack, []byte("TestFastPathBugIsAnError")) {
		t.Errorf("the error's stack does not show where the panic happened:\n%s", stack)
	}
	if r := got.take(); r != nil {
		t.Errorf("an internal error was also reported as a fallback: %q", r)
	}
	_, err = p.Run(exec.Call{Input: map[string]any{"n": "x"}, Env: map[string]any{}})
	if exec.KindOf(err) != exec.KindHandler || !strings.Contains(err.Error(), ".expr:1:9: invalid operation") {
		t.Errorf("the program's own failure gave %v (kind %q)", err, exec.KindOf(err))
	}
	if r := got.take(); !slices.Equal(r, []string{"error"}) {
		t.Errorf("reported %q, want error", r)
	}
}
