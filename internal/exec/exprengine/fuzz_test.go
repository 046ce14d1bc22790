package exprengine

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/eventrt/eventrt/internal/exec"
)

var jsonSeeds = []string{
	`{}`, `[]`, `0`, `-0.0`, `1e400`, `"\ud800"`, `{"a":[1,2,{"b":null}]}`, `[1, 2.5, "x", true]`,
	`{"cpu_percent-0": 1, "cpu_percent-1": "x"}`, `{"net_io_counters_eth0-bytes_sent": 1, "net_io_counters_eth0-bytes_recv": -1}`,
	"\"\xff\"", `[[[[[]]]]]`, `{"a":1,"a":2}`, `12345678901234567890`, ` {"k" : [ ] } `,
}

// FuzzDecodeRun feeds arbitrary documents to the example handlers and to a program that
// touches many builtins: a run may fail, but never panics, and a successful one yields valid
// JSON and an env equal to what its stored fields decode to.
func FuzzDecodeRun(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	if raw, err := os.ReadFile("testdata/metrics-sample.json"); err == nil {
		f.Add(raw)
	}
	programs := []*Program{
		compileFile(f, classicPath),
		compileFile(f, statelessPath),
		mustCompile(f, `let v = input; result({
			json: toJSON(v), s: string(v), eq: v == v, has: v in [v], keys: type(v) == "map" ? keys(v) : [],
			flat: type(v) == "array" ? flatten(v) : [], u: type(v) == "array" ? uniq(v) : [],
			m: merge(env, type(v) == "map" ? v : {}), back: fromJSON(toJSON(v))
		}, merge(env, {last: v, n: (env.n ?? 0) + 1}))`),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := exec.DecodeInput(data)
		if err != nil {
			if !exec.IsDecode(err) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("decode error %v", err)
			}
			return
		}
		for _, p := range programs {
			res, err := p.Run(exec.Call{Input: in, Env: map[string]any{"n": 1}})
			if err != nil {
				if exec.KindOf(err) == "" {
					t.Fatalf("%s: error without a kind: %v", p.File(), err)
				}
				continue
			}
			if res.Output != nil && !json.Valid(res.Output) {
				t.Fatalf("%s: invalid output %q", p.File(), res.Output)
			}
			if res.StateSet {
				fields := map[string]string{}
				for k, v := range res.EnvFields.All() {
					fields[k] = string(v)
				}
				decoded, err := exec.DecodeEnv(fields)
				if err != nil || !reflect.DeepEqual(decoded, res.Env) {
					t.Fatalf("%s: Env %#v, decoded fields %#v (%v)", p.File(), res.Env, decoded, err)
				}
			}
		}
	})
}

// FuzzCompile: no source makes Compile panic, and errors point inside the source.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		`input.a + 1`, `let x = 1; x`, `map(0..3, {let v = #; v * 2})`, `((((1))))`, `"unterminated`,
		`context.host`, `result(1, {})`, `round(1.5, 2)`, `now()`, `/* c */ 1 // d`, `{a: 1}.a`,
		`input?.a?.b ?? 1`, `1 in [1]`, `"x" + "y"`, `[1] == [1]`, `date("2024-01-01").Format("2006")`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := Compile("fuzz.expr", []byte(src), DefaultLimits())
		if err != nil {
			ce, ok := err.(*CompileError)
			if !ok {
				t.Fatalf("%q: %T %v", src, err, err)
			}
			if ce.Line > strings.Count(src, "\n")+1 {
				t.Fatalf("%q: line %d beyond the source", src, ce.Line)
			}
			return
		}
		// A compiled program runs without panicking on a small input.
		_, _ = p.Run(exec.Call{Input: map[string]any{"a": 1, "xs": []any{1, "x"}}, Env: map[string]any{}})
	})
}
