package exprengine

import (
	"testing"

	"github.com/eventrt/eventrt/internal/exec"

	"github.com/expr-lang/expr"
)

// TestRewritePreservesSemantics evaluates programs both through Compile (rewritten: bounded
// +, ==, in, member access, ticks in closures, helpers bound to variables) and with expr as
// it comes, and requires the same value or both failing.
func TestRewritePreservesSemantics(t *testing.T) {
	input := `{"a": 2, "b": 3.5, "s": "str", "t": "ing", "xs": [1, 2, 3, [4, 5]], "m": {"k": "v", "n": null},
		"nested": {"deep": {"x": [10, 20]}}, "flag": true, "empty": [], "nums": [3, 1, 2]}`
	for _, src := range []string{
		`input.a + input.b`, `input.s + input.t`, `input.s + "-" + string(input.a)`, `input.a + 1`,
		`input.xs[0] + input.xs[-1][1]`, `input.xs[3][0]`, `input["m"]["k"]`, `input.m.n ?? "none"`,
		`input.nested.deep.x[1]`, `input?.nested?.missing?.x`, `input.missing`, `input.m?.k`,
		`input.xs == [1, 2, 3, [4, 5]]`, `input.xs != input.xs`, `input.m == {"k": "v", "n": nil}`,
		`input.a == 2`, `input.s == "str"`, `nil == input.missing`, `[input.a] == [2.0]`,
		`"k" in input.m`, `"z" in input.m`, `2 in input.xs`, `[4, 5] in input.xs`, `"a" in input`,
		`input.a not in input.xs`, `map(input.xs, type(#))`, `filter(input.nums, # > 1)`,
		`sum(input.nums, # * input.a)`, `reduce(input.nums, #acc + #, 0)`, `sortBy(input.nums, -#)`,
		`count(input.nums, # % 2 == 1)`, `all(input.nums, # > 0)`, `any(input.nums, # > 2)`, `one(input.nums, # == 2)`,
		`none(input.nums, # > 5)`, `find(input.nums, # < 3)`, `findIndex(input.nums, # == 2)`, `findLast(input.nums, # > 1)`,
		`groupBy(input.nums, # > 1)[true]`, `map(input.nums, {let v = # * 2; v + #index})`, `filter(input.nums, # > 1)[0]`,
		`len(filter(input.nums, # > 1))`, `map(filter(input.nums, # > 1), # * 10)`, `first(input.nums)`, `last(input.xs)`,
		`upper(input.s) + lower("X")`, `input.s[1:3]`, `input.xs[1:]`, `len(input.m)`, `keys(input.m) | sort()`,
		`input.flag ? "yes" : "no"`, `if input.a > 1 { "big" } else { "small" }`, `input.b > input.a && input.flag`,
		`input.a ** 2`, `input.b / 0.5`, `-input.a`, `input.a % 2`, `1..input.a`, `input.s contains "tr"`,
		`input.s startsWith "st"`, `input.s matches "^s"`, `abs(-input.b)`, `int(input.b)`, `float(input.a)`,
		`max(input.nums)`, `min(input.xs[0], 5)`, `mean(input.nums)`, `median(input.nums)`, `round(input.b)`,
		`toJSON(input.m)`, `fromJSON("[1, 2]")`, `string(input.a)`, `string(input.xs)`, `join(["a", input.s], ",")`,
		`split("a,b", ",")`, `trim(" x ")`, `repeat(input.s, 2)`, `replace(input.s, "t", "T")`, `indexOf(input.s, "r")`,
		`uniq([1, 1, 2])`, `flatten(input.xs)`, `concat(input.nums, [9])`, `reverse(input.nums)`, `take(input.nums, 2)`,
		`toPairs({a: 1})`, `get(input, "a")`, `get(input.xs, 10)`, `type(input.m)`, `let x = input.a; let y = x * 2; y + x`,
		`input.xs | map(# != nil)`, `{(input.s): input.a}`, `[input.a, input.b, input.s]`, `date("2024-01-02").Year()`,
	} {
		res, err := mustCompile(t, src).Run(exec.Call{Input: mustDecode(t, input), Env: map[string]any{}})
		plainEnv := map[string]any{"input": mustDecode(t, input), "env": map[string]any{}}
		prog, perr := expr.Compile(src, expr.Env(plainEnv))
		if perr != nil {
			t.Errorf("%s: plain expr does not compile it: %v", src, perr)
			continue
		}
		want, werr := expr.Run(prog, plainEnv)
		if (err != nil) != (werr != nil) {
			t.Errorf("%s: error %v, plain expr error %v", src, err, werr)
			continue
		}
		if err != nil {
			continue
		}
		wantJSON, err := encodeValue(want, false)
		if err != nil {
			t.Errorf("%s: plain value %#v does not encode: %v", src, want, err)
			continue
		}
		if want == nil {
			wantJSON = ""
		}
		if string(res.Output) != wantJSON {
			t.Errorf("%s:\n got %s\nwant %s (plain expr)", src, res.Output, wantJSON)
		}
	}
}
