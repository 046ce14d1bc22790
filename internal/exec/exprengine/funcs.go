package exprengine

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"reflect"
	"strconv"

	"github.com/eventrt/eventrt/internal/exec/codec"
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/vm/runtime"
)

// library holds the functions a program may call beyond expr's builtins, and the bounded
// replacements of builtins whose cost can outgrow the memory budget. The limits are fixed at
// compile time, so the functions close over them; the per-run parts (the deadline, the
// key cache) are bound into each pooled run state (vars.bind).
type library struct {
	lim Limits
	// regex holds the constant patterns of matches, compiled with the program (regex.go);
	// read-only once Compile returns.
	regex map[string]*compiledRegex
}

func newLibrary(lim Limits) *library {
	return &library{lim: lim, regex: map[string]*compiledRegex{}}
}

var (
	anyType    = reflect.TypeOf((*any)(nil)).Elem()
	stringType = reflect.TypeOf("")
	floatType  = reflect.TypeOf(0.0)
	boolType   = reflect.TypeOf(true)
	intType    = reflect.TypeOf(0)
	mapType    = reflect.TypeOf(map[string]any{})
	sliceType  = reflect.TypeOf([]any{})
)

// register adds f to the program's functions, overriding a builtin of the same name.
func register(f *builtin.Function) expr.Option {
	return func(c *conf.Config) { c.Functions[f.Name] = f }
}

// bounded replaces builtin name by f, keeping the builtin's compile-time validation unless f
// brings its own.
func bounded(name string, f *builtin.Function) expr.Option {
	return func(c *conf.Config) {
		orig, ok := c.Builtins[name]
		if !ok {
			return
		}
		f.Name = name
		if f.Validate == nil && len(f.Types) == 0 {
			f.Validate = orig.Validate
			f.Types = orig.Types
		}
		c.Functions[name] = f
	}
}

func funcTypes(fns ...any) []reflect.Type {
	ts := make([]reflect.Type, len(fns))
	for i, fn := range fns {
		t := reflect.TypeOf(fn)
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		ts[i] = t
	}
	return ts
}

func (l *library) options() []expr.Option {
	opts := []expr.Option{
		register(&builtin.Function{Name: "merge", Func: l.merge, Types: funcTypes(new(func(...any) map[string]any))}),
		register(&builtin.Function{Name: "now", Func: func(...any) (any, error) { return nil, errNow },
			Validate: func([]reflect.Type) (reflect.Type, error) { return anyType, errNow }}),
		// Calls are rewritten: round(x) to the builtin, round(x, n) to roundTo. This entry
		// only makes the checker accept the second argument.
		bounded("round", &builtin.Function{Func: roundFunc, Validate: validateRound}),
		bounded("repeat", &builtin.Function{Func: l.repeat}),
		bounded("join", &builtin.Function{Func: l.join}),
		bounded("replace", &builtin.Function{Func: l.replace}),
		bounded("toBase64", &builtin.Function{Func: l.toBase64}),
		bounded("toJSON", &builtin.Function{Func: l.toJSON}),
		bounded("fromJSON", &builtin.Function{Func: fromJSON}),
		bounded("fromPairs", &builtin.Function{Func: fromPairs,
			Validate: func(args []reflect.Type) (reflect.Type, error) {
				// The builtin's validation, but the result may be map[string]any.
				if _, err := builtin.Builtins[builtin.Index["fromPairs"]].Validate(args); err != nil {
					return anyType, err
				}
				return anyType, nil
			}}),
		bounded("uniq", &builtin.Function{Func: l.uniq}),
		bounded("flatten", &builtin.Function{Func: l.flatten}),
	}
	// These walk nested arrays recursively; a program can nest one array twice per level,
	// making the walk exponential in the memory it used, so the walk is bounded first.
	for _, name := range []string{"min", "max", "mean", "median"} {
		orig := builtin.Builtins[builtin.Index[name]]
		opts = append(opts, bounded(name, &builtin.Function{Func: func(args ...any) (any, error) {
			n := int(l.lim.MemoryBudget)
			for _, a := range args {
				if !countElements(a, &n, 0) {
					return nil, fmt.Errorf("%s: argument has more than %d elements, or nests deeper than %d: %w", name, l.lim.MemoryBudget, codec.MaxDepth, ErrMemoryBudget)
				}
			}
			return orig.Func(args...)
		}}))
	}
	return opts
}

var errNow = errors.New("now() is not available in a handler: its result must depend only on input, env and context (use context.last_execution or a timestamp in the input)")

func typeName(v any) string {
	if v == nil {
		return "nil"
	}
	switch v.(type) {
	case map[string]any, map[any]any:
		return "map"
	case []any:
		return "array"
	}
	return reflect.TypeOf(v).String()
}

// merge is merge(a, b, ...): a new map with the entries of every argument, later ones
// winning. An argument is a map with string keys, nil (nothing), or an array of [key, value]
// pairs, which spares building a map with fromPairs just to merge it.
func (l *library) merge(args ...any) (any, error) {
	size, err := mergeTotal(args)
	if err != nil {
		return nil, err
	}
	if size > int(vmMemoryBudget(l.lim)) {
		return nil, mergeTooLarge(size)
	}
	var first any
	if len(args) > 0 {
		first = args[0]
	}
	out, start := mergeMap(first, size)
	for i := start; i < len(args); i++ {
		if err := mergeInto(out, i, args[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func mergeTooLarge(size int) error {
	return fmt.Errorf("merge: %d keys: %w", size, ErrMemoryBudget)
}

// mergeTotal is the number of entries merge's arguments bring, duplicates included.
func mergeTotal(args []any) (int, error) {
	size := 0
	for i, a := range args {
		n, err := mergeSize(i, a)
		if err != nil {
			return 0, err
		}
		size += n
	}
	return size, nil
}

// mergeSize is the number of entries merge's argument i (from 0) brings, duplicates included.
func mergeSize(i int, a any) (int, error) {
	switch m := a.(type) {
	case nil:
		return 0, nil
	case map[string]any:
		return len(m), nil
	case []any:
		return len(m), nil
	}
	r := reflect.ValueOf(a)
	if r.Kind() != reflect.Map {
		return 0, fmt.Errorf("merge: argument %d is %s, not a map or an array of pairs", i+1, typeName(a))
	}
	return r.Len(), nil
}

// mergeMap makes the map of a merge of size entries whose first argument is first (nil for
// none): the usual merge(env, updates) mostly overwrites keys the first map has, and cloning
// copies its table wholesale, far cheaper than inserting each key again. start is the index of
// the first argument left to copy: 1 when the map is that clone.
func mergeMap(first any, size int) (out map[string]any, start int) {
	if m, ok := first.(map[string]any); ok && len(m) > 0 && 2*len(m) >= size {
		return maps.Clone(m), 1
	}
	return make(map[string]any, size), 0
}

// mergePair is element j of merge's argument i (from 0), an array: a [key, value] pair.
func mergePair(i, j int, p any) (string, any, error) {
	var k, v any
	switch kv := p.(type) {
	case []any:
		if len(kv) != 2 {
			return "", nil, fmt.Errorf("merge: argument %d element %d is not a [key, value] pair", i+1, j)
		}
		k, v = kv[0], kv[1]
	case [2]any:
		k, v = kv[0], kv[1]
	default:
		return "", nil, fmt.Errorf("merge: argument %d element %d is %s, not a [key, value] pair", i+1, j, typeName(p))
	}
	s, ok := k.(string)
	if !ok {
		return "", nil, fmt.Errorf("merge: argument %d element %d has key %s (%T), not a string", i+1, j, codec.Describe(k), k)
	}
	return s, v, nil
}

// mergeInto copies merge's argument i (from 0), which mergeSize accepted, into out.
func mergeInto(out map[string]any, i int, a any) error {
	switch m := a.(type) {
	case nil:
	case map[string]any:
		maps.Copy(out, m)
	case []any:
		for j, p := range m {
			k, v, err := mergePair(i, j, p)
			if err != nil {
				return err
			}
			out[k] = v
		}
	default:
		sm, _, err := codec.StringMap(a)
		if err != nil {
			return fmt.Errorf("merge: argument %d: %w", i+1, err)
		}
		maps.Copy(out, sm)
	}
	return nil
}

// result is result(output, env).
func result(output, env any) any {
	if env != nil && reflect.TypeOf(env).Kind() == reflect.Map {
		return &resultValue{output: output, env: env}
	}
	panic(fmt.Errorf("result: the new env must be a map with string keys, got %s", typeName(env)))
}

func validateRound(args []reflect.Type) (reflect.Type, error) {
	orig := builtin.Builtins[builtin.Index["round"]]
	switch len(args) {
	case 1:
		return orig.Validate(args)
	case 2:
		if _, err := orig.Validate(args[:1]); err != nil {
			return anyType, err
		}
		switch args[1].Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Interface:
			return anyType, nil
		}
		return anyType, fmt.Errorf("invalid argument for round: digits must be an integer (type %s)", args[1])
	}
	return anyType, fmt.Errorf("invalid number of arguments for round (expected 1 or 2, got %d)", len(args))
}

func roundFunc(args ...any) (any, error) {
	if len(args) == 1 {
		return builtin.Round(args[0]), nil
	}
	return roundTo(args[0], args[1]), nil
}

// roundTo is round(x, n) (the rewriter sends two-argument calls here; round(x) stays expr's):
// x rounded to n decimal places exactly as Python's round(x, n) does, ties to even on x's
// exact binary value, so that handlers ported from Python give the same outputs to the last
// bit.
func roundTo(xv, nv any) any {
	var x float64
	switch v := xv.(type) {
	case float64:
		x = v
	case int:
		x = float64(v)
	default:
		x = runtime.ToFloat64(v)
	}
	n, ok := nv.(int)
	if !ok {
		panic(fmt.Errorf("round: digits must be an integer, got %s", typeName(nv)))
	}
	return roundDigits(x, n)
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

func roundDigits(x float64, n int) float64 {
	// CPython's bounds: beyond them x rounds to itself, or to zero.
	const ndigitsMax, ndigitsMin = 323, -308
	switch {
	case math.IsInf(x, 0) || math.IsNaN(x) || n > ndigitsMax:
		return x
	case n < ndigitsMin:
		return 0 * x
	}
	if n >= 0 && n < len(pow10) {
		p := pow10[n]
		y := x * p
		if a := math.Abs(y); a < 1<<52 {
			// y differs from the exact product by at most half an ulp; away from a tie,
			// rounding y rounds the exact product the same way, and r/p (both exact) is the
			// correctly rounded quotient, as Python's strtod of the rounded decimal is.
			frac := a - math.Floor(a)
			ulp := math.Nextafter(a, math.Inf(1)) - a
			if math.Abs(frac-0.5) > 2*ulp {
				return math.Round(y) / p
			}
		}
		s := strconv.FormatFloat(x, 'f', n, 64) // exact decimal rounding, ties to even
		f, _ := strconv.ParseFloat(s, 64)
		return f
	}
	if n >= 0 { // no fractional digits are lost at this precision
		return x
	}
	// Negative n: round to a multiple of 10^-n exactly.
	r := new(big.Rat).SetFloat64(x)
	unit := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(-n)), nil))
	q := new(big.Rat).Quo(r, unit)
	num, den := q.Num(), q.Denom()
	quo, rem := new(big.Int).QuoRem(num, den, new(big.Int))
	twice := new(big.Int).Mul(new(big.Int).Abs(rem), big.NewInt(2))
	switch c := twice.Cmp(den); {
	case c > 0 || c == 0 && quo.Bit(0) == 1:
		if num.Sign() < 0 {
			quo.Sub(quo, big.NewInt(1))
		} else {
			quo.Add(quo, big.NewInt(1))
		}
	}
	f, _ := new(big.Rat).Mul(new(big.Rat).SetInt(quo), unit).Float64()
	if f == 0 {
		return 0 * x // keep the sign of zero, as Python does
	}
	return f
}
