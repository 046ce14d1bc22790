package exprengine

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"
)

// TestBoxedValuesOutliveRuns: numbers and arrays the fast path boxed into shared chunks keep
// their values after the run, through later runs that box more and through collections: every
// env a run returned still encodes as it did when the run returned it.
func TestBoxedValuesOutliveRuns(t *testing.T) {
	p := compileFile(t, classicPath)
	dec := codec.NewDecoder()
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
		in, err := exec.InputFor(p, []byte(raw), dec)
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

// TestBoxLayout checks what pack assumes of Go's interface layout: an interface{} is two
// words, a type word shared by every value of the type and a pointer to the value, and an
// interface made by pack is one Go would have made.
func TestBoxLayout(t *testing.T) {
	if unsafe.Sizeof(any(nil)) != unsafe.Sizeof(eface{}) {
		t.Fatalf("an interface is %d bytes, eface %d", unsafe.Sizeof(any(nil)), unsafe.Sizeof(eface{}))
	}
	f := float64(len(t.Name())) + 0.5 // not a constant: Go boxes it in memory of its own
	var made any = f
	if e := (*eface)(unsafe.Pointer(&made)); e.typ != floatWord || *(*float64)(e.data) != f {
		t.Fatal("Go's boxed float64 does not have the type word and value pointer pack writes")
	}
	n, arr := 1000+len(t.Name()), []any{"x", 2}
	for _, tc := range []struct {
		packed, want any
	}{
		{pack(floatWord, unsafe.Pointer(&f)), f},
		{pack(intWord, unsafe.Pointer(&n)), n},
	} {
		if tc.packed != tc.want {
			t.Errorf("packed %#v, want %#v", tc.packed, tc.want)
		}
	}
	if got, ok := pack(arrayWord, unsafe.Pointer(&arr)).([]any); !ok || len(got) != 2 || got[0] != "x" {
		t.Errorf("packed array %#v", got)
	}
}
