package exprengine

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestKeyCacheComparesValues: the key cache finds a key by its bytes, whatever string holds
// them, and tells apart strings sharing a prefix of their bytes.
func TestKeyCacheComparesValues(t *testing.T) {
	s := strings.Repeat("key", 3)
	var c keyCache
	shape := &docShape{keys: []string{s}, index: map[string]int{s: 0}}
	if c.index(shape, s, strHash(s), false) != 0 || c.index(shape, strings.Clone(s), strHash(s), false) != 0 ||
		c.index(shape, s[:4], strHash(s[:4]), false) != -1 {
		t.Fatal("keyCache confuses strings sharing bytes")
	}
	if size := reflect.TypeFor[keyEntry]().Size(); size != 64 {
		t.Errorf("a keyEntry is %d bytes, not a cache line", size)
	}
	if strHash("") != emptyHash {
		t.Fatalf("emptyHash is %#x, strHash(\"\") %#x", uint64(emptyHash), strHash(""))
	}
}

// TestKeysChargedAsTheVM: the key sites of a document input (input["k" + string(i)],
// ("k" + string(i)) in input, keys built from a variable) charge the run's budget what the VM
// charges building the same keys, on the first run and on the runs the cache serves.
func TestKeysChargedAsTheVM(t *testing.T) {
	p := mustCompile(t, `let ks = map(0..9, "k" + string(#));
		[sum(0..9, input["k" + string(#)] ?? 0), len(filter(0..9, ("k" + string(#)) in input)),
		 map(ks, input[#] ?? -1), map(0..9, input["v" + ks[#]] ?? 0)]`)
	raw := json.RawMessage(`{"k1": 1, "k3": 3, "vk2": 2, "x": 0}`)
	for run := range 3 {
		st := p.pool.Get().(*runState)
		in, err := st.input.decode(raw, true)
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]any{}
		st.vars.Input, st.vars.Env, st.vars.Context = in, env, &st.ctx
		st.mem.reset(p.lim.MaxRunBytes)
		if _, reason, bug := p.fast.run(st, vmMemoryBudget(p.lim)); reason != fallbackNone {
			t.Fatalf("run %d left the fast path: %s %v", run, reason, bug)
		}
		fast := st.mem.used
		st.mem.reset(p.lim.MaxRunBytes)
		if _, err := p.vmRun(st); err != nil {
			t.Fatal(err)
		}
		if fast != st.mem.used || fast == 0 {
			t.Errorf("run %d: the fast path charged %d bytes, the VM %d", run, fast, st.mem.used)
		}
		st.vars.Input, st.vars.Env, st.vars.Context = nil, nil, nil
		p.pool.Put(st)
	}
}
