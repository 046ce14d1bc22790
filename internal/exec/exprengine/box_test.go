package exprengine

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	"github.com/eventrt/eventrt/internal/exec"
)

// TestBoxedValuesOutliveRuns: numbers and arrays the fast path boxed into shared chunks keep
// their values after the run, through later runs that box more and through collections: every
// env a run returned still encodes as it did when the run returned it.
func TestBoxedValuesOutliveRuns(t *testing.T) {
	p := compileFile(t, classicPath)
	dec := NewDecoder()
	type kept struct {
		env     map[string]any
		encoded string
	}
	var all []kept
	env := map[string]any{}
	for i := range 600 {
		raw := fmt.Sprintf(`{"timestamp": %d, "net_io_counters_eth0-bytes_sent": %d, "net_io_counters_eth0-bytes_recv": 7,
			"virtual_memory-cached": 1, "virtual_memory-buffers": 2, "virtual_memory-total": 9,
			"cpu_percent-0": %d.5, "cpu_percent-1": %d, "cpu_percent-2": 1e%d}`, i, 1000+i, i, 300+i, i%300)
		in, err := InputFor(p, []byte(raw), dec)
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Run(exec.Call{Input: in, Env: env})
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(res.Env)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, kept{res.Env, string(b)})
		env = res.Env
		if i%100 == 0 {
			runtime.GC()
		}
	}
	runtime.GC()
	for i, k := range all {
		b, err := json.Marshal(k.env)
		if err != nil || string(b) != k.encoded {
			t.Fatalf("env of run %d: now %s (%v), when returned %s", i, b, err, k.encoded)
		}
	}
	if p.fast == nil || p.fast.bails.Load() != 0 {
		t.Fatal("the fast path did not run the classic handler")
	}
}
