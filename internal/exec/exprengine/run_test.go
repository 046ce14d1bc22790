package exprengine

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/exec"
)

func mustCompile(t testing.TB, src string) *Program {
	t.Helper()
	p, err := Compile("handler.expr", []byte(src), DefaultLimits())
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return p
}

func mustDecode(t testing.TB, s string) any {
	t.Helper()
	v, err := exec.DecodeInput([]byte(s))
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v
}

// run compiles src and runs it on the JSON input with env, failing the test on error.
func run(t testing.TB, src, input string, env map[string]any) exec.Result {
	t.Helper()
	if env == nil {
		env = map[string]any{}
	}
	res, err := mustCompile(t, src).Run(exec.Call{Input: mustDecode(t, input), Env: env})
	if err != nil {
		t.Fatalf("run %q: %v", src, err)
	}
	return res
}

func runErr(t testing.TB, p *Program, input string) error {
	t.Helper()
	_, err := p.Run(exec.Call{Input: mustDecode(t, input), Env: map[string]any{}})
	if err == nil {
		t.Fatal("run succeeded, want an error")
	}
	return err
}

func TestRunOutputs(t *testing.T) {
	for _, tc := range []struct{ src, input, want string }{
		{`input.a + input.b`, `{"a": 2, "b": 3}`, `5`},
		{`input.a / input.b`, `{"a": 3, "b": 2}`, `1.5`},
		{`input.a * 2.5`, `{"a": 2}`, `5`},
		{`{n: input.n, f: input.f, big: input.big}`, `{"n": 5, "f": 5.5, "big": 123456789012345678}`, `{"big":123456789012345678,"f":5.5,"n":5}`},
		{`input`, `{"z": [1, "two", null, true, {"x": 1e-7}], "a": "\u00e9<>&\u2028"}`, `{"a":"é<>&\u2028","z":[1,"two",null,true,{"x":1e-7}]}`},
		{`"cpu" + string(input.i) + "-" + string(1.5)`, `{"i": 3}`, `"cpu3-1.5"`},
		{`merge({a: 1, b: 1}, {b: 2}, nil, [["c", 3], ["a", 4]])`, `{}`, `{"a":4,"b":2,"c":3}`},
		{`fromPairs([["a", 1], ["b", [2]]])`, `{}`, `{"a":1,"b":[2]}`},
		{`fromPairs(toPairs(input))`, `{"k": 1}`, `{"k":1}`},
		{`map(0..3, # * 2)`, `{}`, `[0,2,4,6]`},
		{`1..3`, `{}`, `[1,2,3]`},
		{`[round(2.675, 2), round(0.125, 2), round(-0.5, 0), round(1234.5, -2), round(2.5)]`, `{}`, `[2.67,0.12,-0,1200,3]`},
		{`toJSON({b: [1, 2], a: "x"})`, `{}`, `"{\n  \"a\": \"x\",\n  \"b\": [\n    1,\n    2\n  ]\n}"`},
		{`fromJSON("{\"n\": 1, \"f\": 1.5}")`, `{}`, `{"f":1.5,"n":1}`},
		{`input.missing ?? "default"`, `{}`, `"default"`},
		{`[input?.a?.b, input?.x?.y]`, `{"a": null, "x": {"y": 1}}`, `[null,1]`},
		{`"x" in input && !("y" in input)`, `{"x": 1}`, `true`},
		{`[1, 2] in [[1, 2], [3]]`, `{}`, `true`},
		{`input.a == input.b`, `{"a": [1, [2, 3]], "b": [1, [2, 3]]}`, `true`},
		{`input.a != input.b`, `{"a": [1], "b": [1.0]}`, `false`},
		{`uniq([1, 1.0, "a", "a", [1], [1], nil, nil])`, `{}`, `[1,"a",[1],null]`},
		{`flatten([1, [2, [3, [4]]]])`, `{}`, `[1,2,3,4]`},
		{`max(input.xs) + min(1, 2) + mean([1, 3]) + median([5, 1, 3])`, `{"xs": [1, 9, [4]]}`, `15`},
		{`join(["a", "b"], "-") + repeat("ab", 2) + replace("aXa", "X", "-")`, `{}`, `"a-babab a-a"`[:0] + `"a-bababa-a"`},
		{`upper(trim("  x ")) + toBase64("hi")`, `{}`, `"XaGk="`},
		{`date("2024-01-02").Format("2006")`, `{}`, `"2024"`},
		{`sum(filter(input.xs, # > 1), # * 10)`, `{"xs": [1, 2, 3]}`, `50`},
		{`reduce(1..4, #acc * #, 1)`, `{}`, `24`},
		{`let xs = sortBy(input.xs, -#); xs[0]`, `{"xs": [3, 9, 1]}`, `9`},
		{`groupBy(input.xs, # % 2 == 0)[true]`, `{"xs": [1, 2, 4]}`, `[2,4]`},
		{`groupBy(input.xs, # % 2 == 0 ? "even" : "odd")`, `{"xs": [1, 2, 4]}`, `{"even":[2,4],"odd":[1]}`},
		{`merge({n: 1}, groupBy(input.xs, "all"))`, `{"xs": [1, 2]}`, `{"all":[1,2],"n":1}`},
	} {
		res := run(t, tc.src, tc.input, nil)
		if string(res.Output) != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.src, res.Output, tc.want)
		}
		if res.StateSet || res.Env != nil || res.EnvFields != nil {
			t.Errorf("%s: a plain value must leave the state alone: %+v", tc.src, res)
		}
	}
}

func TestRunNilOutput(t *testing.T) {
	for _, src := range []string{`nil`, `input.missing`, `result(nil, {n: 1})`} {
		res := run(t, src, `{}`, nil)
		if res.Output != nil {
			t.Errorf("%s: Output = %q, want nil (nothing written)", src, res.Output)
		}
	}
	if res := run(t, `result(nil, {n: 1})`, `{}`, nil); !res.StateSet || string(res.EnvFields.Map()["n"]) != "1" {
		t.Errorf("result(nil, env) must still set the state: %+v", res)
	}
}

func TestRunContext(t *testing.T) {
	p := mustCompile(t, `{
		host: context.host, port: context.port, input_key: context.input_key,
		output_key: context.output_key, mtime: context.function_getmtime,
		last: context.last_execution, first: context.last_execution == nil,
		env: context.env, trigger: context.trigger, entry_id: context.entry_id,
		function: context.function, same_env: context.env == env
	}`)
	last := time.Date(2026, 11, 25, 10, 0, 0, 5, time.UTC)
	call := exec.Call{
		Input: map[string]any{},
		Env:   map[string]any{"k": 1},
		Context: exec.Context{Host: "redis", Port: 6380, InputKey: "metrics", OutputKey: "out",
			FunctionGetmtime: "2026-11-25 09:00:00", LastExecution: &last, Trigger: "keyspace",
			EntryID: "1-0", Function: "handler_module.handler"},
	}
	res, err := p.Run(call)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"entry_id":"1-0","env":{"k":1},"first":false,"function":"handler_module.handler",` +
		`"host":"redis","input_key":"metrics","last":"2026-11-25T10:00:00.000000005Z","mtime":"2026-11-25 09:00:00",` +
		`"output_key":"out","port":6380,"same_env":true,"trigger":"keyspace"}`
	if string(res.Output) != want {
		t.Errorf("context:\n got %s\nwant %s", res.Output, want)
	}
	call.Context.LastExecution = nil
	res, err = p.Run(call)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(res.Output, &got); err != nil || got["last"] != nil || got["first"] != true {
		t.Errorf("first run: last_execution must be nil: %s (%v)", res.Output, err)
	}
	// The whole context encodes too, with the course runtime's names; stored in env, it is
	// a plain map from then on.
	p = mustCompile(t, `result(context, {ctx: context})`)
	call.Context.LastExecution = nil
	res, err = p.Run(call)
	if err != nil {
		t.Fatal(err)
	}
	want = `{"entry_id":"1-0","env":{"k":1},"function":"handler_module.handler","function_getmtime":"2026-11-25 09:00:00",` +
		`"host":"redis","input_key":"metrics","last_execution":null,"output_key":"out","port":6380,"trigger":"keyspace"}`
	if string(res.Output) != want || string(res.EnvFields.Map()["ctx"]) != want {
		t.Errorf("context as a value:\n got %s\nwant %s", res.Output, want)
	}
	if m, ok := res.Env["ctx"].(map[string]any); !ok || m["host"] != "redis" || m["port"] != 6380 {
		t.Errorf("context in env: %#v", res.Env["ctx"])
	}
}

func TestRunState(t *testing.T) {
	p := mustCompile(t, `result({seen: env.count ?? 0}, merge(env, {count: (env.count ?? 0) + 1, avg: 2.0, half: 0.5, list: 1..2, pairs: fromPairs([["x", 1.0]]), groups: groupBy([1], "one")}))`)
	env := map[string]any{"keep": "me"}
	before := map[string]any{"keep": "me"}
	res, err := p.Run(exec.Call{Input: nil, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(env, before) {
		t.Errorf("Run mutated call.Env: %v", env)
	}
	if !res.StateSet || string(res.Output) != `{"seen":0}` {
		t.Fatalf("first run: %+v", res)
	}
	fields := map[string]string{}
	for k, v := range res.EnvFields.All() {
		fields[k] = string(v)
	}
	wantFields := map[string]string{"keep": `"me"`, "count": `1`, "avg": `2`, "half": `0.5`, "list": `[1,2]`, "pairs": `{"x":1}`, "groups": `{"one":[1]}`}
	if !reflect.DeepEqual(fields, wantFields) {
		t.Errorf("EnvFields = %v, want %v", fields, wantFields)
	}
	// Result.Env is exactly what decoding the stored fields gives (2.0 is stored as 2 and
	// comes back as an int), so a restart changes nothing a handler can see.
	decoded, err := exec.DecodeEnv(fields)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Env, decoded) {
		t.Errorf("Env = %#v\nwant %#v (decoded fields)", res.Env, decoded)
	}
	res2, err := p.Run(exec.Call{Env: res.Env})
	if err != nil || string(res2.Output) != `{"seen":1}` || string(res2.EnvFields.Map()["count"]) != "2" {
		t.Errorf("second run: %+v %v", res2, err)
	}
}

func TestRunErrors(t *testing.T) {
	for _, tc := range []struct {
		src, input string
		kind       exec.Kind
		msg        string // substring of the error
	}{
		{`input.a + input.b`, `{"a": 1, "b": "x"}`, exec.KindHandler, `handler.expr:1:9: invalid operation: int + string`},
		{`input.a.b`, `{"a": 1}`, exec.KindHandler, `handler.expr:1:9: cannot fetch b from int`},
		{`input.xs[5]`, `{"xs": [1]}`, exec.KindHandler, `index out of range: 5 (array length is 1)`},
		{`1 % input.zero`, `{"zero": 0}`, exec.KindHandler, `integer divide by zero`},
		{`merge(input, 1)`, `{}`, exec.KindHandler, `merge: argument 2 is int, not a map or an array of pairs`},
		{`result(1, [1])`, `{}`, exec.KindHandler, `result: the new env must be a map with string keys, got array`},
		{`fromJSON(input.s)`, `{"s": "{"}`, exec.KindHandler, `fromJSON: invalid JSON at 1:2: unexpected end of JSON input`},
		{`{ratio: input.a / input.b}`, `{"a": 1, "b": 0}`, exec.KindOutput, `output["ratio"]: +Inf is not representable in JSON`},
		{`{xs: [0, input.a / input.a]}`, `{"a": 0}`, exec.KindOutput, `output["xs"][1]: NaN is not representable in JSON`},
		{`fromPairs([[1, "a"]])`, `{}`, exec.KindOutput, `output: map key "1" (int) is not a string`},
		{`result(1, fromPairs([[1, "a"]]))`, `{}`, exec.KindOutput, `env: key "1" (int) is not a string`},
		{`groupBy([2, 4], # % 2)`, `{}`, exec.KindOutput, `output: map key "0" (int) is not a string`},
		{`merge({}, groupBy([1, 2], # % 2))`, `{}`, exec.KindHandler, `merge: argument 2: key "`},
		{`result(1, {bad: {x: 0.0 / 0}})`, `{}`, exec.KindOutput, `env["bad"]["x"]: NaN is not representable in JSON`},
		{`[result(1, {})]`, `{}`, exec.KindOutput, `output[0]: result(output, env) must be the program's final value`},
		{`timezone("UTC")`, `{}`, exec.KindOutput, `output: cannot encode a value of type *time.Location as JSON`},
	} {
		err := runErr(t, mustCompile(t, tc.src), tc.input)
		var e *exec.Error
		if !errors.As(err, &e) || e.Kind != tc.kind || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v (kind %q), want kind %s containing %q", tc.src, err, exec.KindOf(err), tc.kind, tc.msg)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error spans lines: %q", tc.src, err)
		}
	}
}

func TestRunRuntimeErrorPosition(t *testing.T) {
	p := mustCompile(t, "let a = input.a;\nlet b = a * 2;\nb + input.s")
	err := runErr(t, p, `{"a": 1, "s": "x"}`)
	var re *RuntimeError
	if !errors.As(err, &re) || re.File != "handler.expr" || re.Line != 3 || re.Column != 3 {
		t.Fatalf("error %v, want a RuntimeError at handler.expr:3:3", err)
	}
}

func TestRunOutputLimit(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxOutputBytes = 64
	p, err := Compile("big.expr", []byte(`input.s`), lim)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Run(exec.Call{Input: map[string]any{"s": strings.Repeat("x", 62)}, Env: map[string]any{}}); err != nil {
		t.Errorf("62 characters and 2 quotes fit in 64 bytes: %v", err)
	}
	_, err = p.Run(exec.Call{Input: map[string]any{"s": strings.Repeat("x", 63)}, Env: map[string]any{}})
	if exec.KindOf(err) != exec.KindOutput || !errors.Is(err, ErrTooLarge) || !IsLimit(err) {
		t.Errorf("65-byte output: %v", err)
	}
	p, _ = Compile("env.expr", []byte(`result(1, {a: input.s, b: input.s})`), lim)
	_, err = p.Run(exec.Call{Input: map[string]any{"s": strings.Repeat("x", 31)}, Env: map[string]any{}})
	if exec.KindOf(err) != exec.KindOutput || !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "env[") {
		t.Errorf("env over the limit in total: %v", err)
	}
}

// TestRunConcurrent runs one Program from many goroutines (under -race in CI), each with its
// own input and env, and checks every result.
func TestRunConcurrent(t *testing.T) {
	p := mustCompile(t, `result({id: input.id, n: sum(map(1..input.id, #))}, merge(env, {last: input.id}))`)
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				id := g*100 + i + 1
				res, err := p.Run(exec.Call{Input: map[string]any{"id": id}, Env: map[string]any{"g": g}})
				if err != nil {
					errs <- err
					return
				}
				want := `{"id":` + itoa(id) + `,"n":` + itoa(id*(id+1)/2) + `}`
				if string(res.Output) != want || res.Env["last"] != id || res.Env["g"] != g {
					errs <- errors.New("got " + string(res.Output) + ", want " + want)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestRoundLikePython(t *testing.T) {
	// Values checked against CPython 3.11's round(x, n).
	for _, tc := range []struct {
		x    float64
		n    int
		want float64
	}{
		{2.675, 2, 2.67}, {0.125, 2, 0.12}, {0.375, 2, 0.38}, {1.005, 2, 1.0}, {16.738552, 2, 16.74},
		{-2.5, 0, -2}, {3.5, 0, 4}, {1234.5678, -2, 1200}, {1250, -2, 1200}, {1350, -2, 1400},
		{-0.001, 2, math.Copysign(0, -1)}, {5e-324, 400, 5e-324}, {1e300, -400, 0},
		{123.456, 20, 123.456}, {0.1 + 0.2, 15, 0.3}, {2.5e15 + 0.5, 0, 2.5e15},
	} {
		got := roundDigits(tc.x, tc.n)
		if got != tc.want || math.Signbit(got) != math.Signbit(tc.want) {
			t.Errorf("round(%v, %d) = %v, want %v", tc.x, tc.n, got, tc.want)
		}
	}
	if got := roundDigits(math.Inf(1), 2); !math.IsInf(got, 1) {
		t.Errorf("round(inf, 2) = %v", got)
	}
}

func TestRunStateFromAnyMap(t *testing.T) {
	// The new env may be any map with string keys, such as the one groupBy builds.
	res := run(t, `result(nil, groupBy([1, 2, 3], # % 2 == 0 ? "even" : "odd"))`, `{}`, nil)
	want := map[string]any{"even": []any{2}, "odd": []any{1, 3}}
	if !res.StateSet || !reflect.DeepEqual(res.Env, want) || string(res.EnvFields.Map()["odd"]) != "[1,3]" {
		t.Errorf("Env = %#v, fields %v", res.Env, res.EnvFields)
	}
}

// TestRunEnvOnly checks that Call.EnvOnly changes nothing but EnvFields: the same Env and
// output, the same failures for an env that cannot be stored, and exec.EnvFields(Env) giving the
// fields a run without the hint returns.
func TestRunEnvOnly(t *testing.T) {
	for _, src := range []string{
		`result({seen: env.count ?? 0}, merge(env, {count: (env.count ?? 0) + 1, avg: 2.0, half: 0.5, list: 1..2, nested: {a: [1.0, 2.5]}, pairs: fromPairs([["x", 1.0]]), groups: groupBy([1], "one"), s: "a\"é\u2028"}))`,
		`result(nil, {n: 1})`,
		`result(1, env)`,
		`result(1, fromPairs([["k", [3.0]]]))`,
		// Scalars only: EnvOnly checks them without encoding (scalarEnv).
		`result(1, {a: 2.0, b: 0.5, c: "s\u00e9", d: true, e: nil, f: 3, h: 1e300, i: -1e-300, j: 9.3e18})`,
		`result(1, merge(env, {x: 1.5, count: (env.count ?? 0) + 1}))`,
	} {
		p := mustCompile(t, src)
		env := map[string]any{"keep": "me", "count": 4}
		full, err := p.Run(exec.Call{Env: env})
		if err != nil {
			t.Fatal(err)
		}
		only, err := p.Run(exec.Call{Env: env, EnvOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if only.EnvFields != nil || !only.StateSet || !reflect.DeepEqual(only.Env, full.Env) || string(only.Output) != string(full.Output) {
			t.Errorf("%s: EnvOnly gives %+v, without it %+v", src, only, full)
		}
		fields, err := exec.EnvFields(only.Env)
		if err != nil || !reflect.DeepEqual(fields.Map(), full.EnvFields.Map()) {
			t.Errorf("%s: EnvFields = %q (%v), want %q", src, fields, err, full.EnvFields)
		}
	}
	for _, src := range []string{`result(1, {bad: {x: 0.0 / 0}})`, `result(1, fromPairs([[1, "a"]]))`,
		`result(1, {ok: 1.5, bad: 0.0 / 0})`, `result(1, {bad: -1.0 / 0})`} {
		p := mustCompile(t, src)
		_, err := p.Run(exec.Call{Env: map[string]any{}, EnvOnly: true})
		_, fullErr := p.Run(exec.Call{Env: map[string]any{}})
		if exec.KindOf(err) != exec.KindOutput || fullErr == nil || err.Error() != fullErr.Error() {
			t.Errorf("%s with EnvOnly: error %v, want an output error, the same as without it (%v)", src, err, fullErr)
		}
	}
	lim := DefaultLimits()
	lim.MaxOutputBytes = 64
	p, err := Compile("env.expr", []byte(`result(1, {a: input.s, b: input.s})`), lim)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Run(exec.Call{Input: map[string]any{"s": strings.Repeat("x", 31)}, Env: map[string]any{}, EnvOnly: true})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("env over the limit with EnvOnly: %v", err)
	}
	// Within the limit, though over scalarEnv's bound (6 bytes per string byte): encoded to
	// be sure, and accepted.
	res, err := p.Run(exec.Call{Input: map[string]any{"s": strings.Repeat("x", 20)}, Env: map[string]any{}, EnvOnly: true})
	if err != nil || res.Env["a"] != strings.Repeat("x", 20) {
		t.Errorf("env within the limit with EnvOnly: %v, %v", res.Env, err)
	}
	if _, err := exec.EnvFields(map[string]any{"x": math.NaN()}); exec.KindOf(err) != exec.KindOutput || !strings.Contains(err.Error(), `env["x"]: NaN`) {
		t.Errorf("EnvFields of NaN: %v", err)
	}
}

// TestEnvNormalisedBeyond2To53: an integral float past 2^53 is written as its shortest decimal,
// which may be another integer; the env a run returns holds what decoding that gives, whether
// the run encodes its fields or only checks them (found by FuzzDecodeRun).
func TestEnvNormalisedBeyond2To53(t *testing.T) {
	p := mustCompile(t, `result(nil, {big: input.x, small: input.x / 1e9, neg: -input.x})`)
	for _, envOnly := range []bool{false, true} {
		res, err := p.Run(exec.Call{Input: map[string]any{"x": 18017000000000010.0}, Env: map[string]any{}, EnvOnly: envOnly})
		if err != nil {
			t.Fatal(err)
		}
		fields, err := exec.EnvFields(res.Env)
		if err != nil {
			t.Fatal(err)
		}
		raw := map[string]string{}
		for k, v := range fields.All() {
			raw[k] = string(v)
		}
		decoded, err := exec.DecodeEnv(raw)
		if err != nil || !reflect.DeepEqual(decoded, res.Env) {
			t.Fatalf("envOnly %v: env %#v, its fields %s decode to %#v (%v)", envOnly, res.Env, raw, decoded, err)
		}
		if res.Env["big"] != 18017000000000010 {
			t.Fatalf("envOnly %v: big = %#v", envOnly, res.Env["big"])
		}
	}
}

// TestFields checks the accessors of a run's env fields: one per key, whatever their order.
func TestFields(t *testing.T) {
	res := run(t, `result(nil, {a: 1, b: "x", c: [1.5]})`, `{}`, nil)
	fs := res.EnvFields
	if len(fs) != 3 {
		t.Fatalf("fields %q, want 3", fs)
	}
	if v, ok := fs.Get("b"); !ok || string(v) != `"x"` {
		t.Errorf(`Get("b") = %s, %v`, v, ok)
	}
	if v, ok := fs.Get("z"); ok || v != nil {
		t.Errorf(`Get("z") = %s, %v; want nothing`, v, ok)
	}
	want := map[string]string{"a": "1", "b": `"x"`, "c": "[1.5]"}
	got := map[string]string{}
	for k, v := range fs.All() {
		got[k] = string(v)
		break // All stops when asked
	}
	if len(got) != 1 {
		t.Errorf("All went on after a break: %v", got)
	}
	for k, v := range fs.Map() {
		got[k] = string(v)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Map() = %v, want %v", got, want)
	}
	if s := fs.Strings(); !reflect.DeepEqual(s, want) {
		t.Errorf("Strings() = %v, want %v", s, want)
	}
	if exec.Fields(nil).Map() != nil {
		t.Error("Map of nil fields is not nil")
	}
}
