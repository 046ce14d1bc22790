package exprengine

import (
	"maps"
	"reflect"
	"testing"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"
)

// TestMergeOutputIsAnObject: a merge that is the program's output, or result's, gives an
// Object on the fast path, whose fields, map and encoding are the VM's map's; a merge anywhere
// else gives a map.
func TestMergeOutputIsAnObject(t *testing.T) {
	for _, tc := range []struct {
		src    string
		object bool
	}{
		{`merge({b: 1, a: 2}, map(1..2, ["k" + string(#), #]))`, true},
		{`let x = 1; input.n > 0 ? merge({a: x}, [["b", 2]]) : merge({c: 3}, map(1..2, [string(#), #]))`, true},
		{`result(merge({a: 1}, map(1..2, ["a", #])), {n: 1})`, true},
		{`merge({a: 1}, input.m)`, false}, // a map argument: its keys come in no fixed order
		{`[merge({a: 1}, [["b", 2]])]`, false},
		{`let m = merge({a: 1}, [["b", 2]]); m`, false},
		{`result(nil, merge(env, {a: 1}))`, false},
		// A map literal with constant keys, likewise.
		{`{b: 1, a: input.n, "c d": [2]}`, true}, {`result({z: 1, a: {y: 2}}, {})`, true}, {`{}`, true},
		{`[{a: 1}]`, false}, {`let m = {a: 1}; m`, false}, {`{a: 1, ("a"): 2}`, false},
	} {
		p := mustCompile(t, tc.src)
		if fast, why := p.FastPath(); !fast {
			t.Fatalf("%s: not on the fast path: %s", tc.src, why)
		}
		for range 2 {
			res, err := p.Run(exec.Call{Input: map[string]any{"n": 1, "m": map[string]any{"z": 1}}, Env: map[string]any{}})
			if err != nil {
				t.Fatalf("%s: %v", tc.src, err)
			}
			o, isObject := res.Value.(*codec.Object)
			if isObject != tc.object {
				t.Fatalf("%s: output %T", tc.src, res.Value)
			}
			if !isObject {
				continue
			}
			want := stdEncode(t, o.Map(), false)
			if string(res.Output) != want {
				t.Errorf("%s: output %s, its map encodes as %s", tc.src, res.Output, want)
			}
			if top := maps.Collect(exec.TopLevel(res.Value)); !reflect.DeepEqual(top, o.Map()) || o.Len() != len(top) {
				t.Errorf("%s: TopLevel %v, Map %v, Len %d", tc.src, top, o.Map(), o.Len())
			}
		}
	}
}

// TestObjectSiteRelearns: a merge site whose keys change from run to run makes each object
// with that run's keys (the last of equal keys winning), and objects made before keep theirs.
func TestObjectSiteRelearns(t *testing.T) {
	p := mustCompile(t, `merge({z: 0}, map(input.keys, [#, #index]), {a: "last"})`)
	if fast, why := p.FastPath(); !fast {
		t.Fatalf("not on the fast path: %s", why)
	}
	var kept []exec.Result
	for i, keys := range [][]any{{"a", "b"}, {"a", "b"}, {"b", "a", "b"}, {"c"}, {}, {"a", "b"}} {
		res, err := p.Run(exec.Call{Input: map[string]any{"keys": keys}, Env: map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, res)
		for j, r := range kept {
			if want := stdEncode(t, r.Value.(*codec.Object).Map(), false); string(r.Output) != want {
				t.Fatalf("after run %d, run %d's object encodes as %s, its output was %s", i, j, want, r.Output)
			}
		}
	}
	if got := string(kept[2].Output); got != `{"a":"last","b":2,"z":0}` {
		t.Errorf("run 2: %s", got)
	}
}
