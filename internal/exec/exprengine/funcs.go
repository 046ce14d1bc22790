package exprengine

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/vm/runtime"
)

// library holds the functions a program may call beyond expr's builtins, and the bounded
// replacements of builtins whose cost can outgrow the memory budget. The limits are fixed at
// compile time, so the functions close over them; the per-run parts (the deadline, the
// string memo) are bound into each pooled run state (vars.bind).
type library struct {
	lim Limits
	// smallInts holds string(i) for small i, boxed, so that building keys from loop indices
	// does not allocate.
	smallInts [256]any
}

func newLibrary(lim Limits) *library {
	l := &library{lim: lim}
	for i := range l.smallInts {
		l.smallInts[i] = strconv.Itoa(i)
	}
	return l
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
					return nil, fmt.Errorf("%s: argument has more than %d elements, or nests deeper than %d: %w", name, l.lim.MemoryBudget, maxValueDepth, ErrMemoryBudget)
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

// asStringMap returns the entries of a map whose keys are all strings: v itself for a
// map[string]any, a copy for other maps (fromPairs' map[any]any, groupBy's map[any][]any).
// isMap is false when v is not a map.
func asStringMap(v any) (m map[string]any, isMap bool, err error) {
	switch x := v.(type) {
	case map[string]any:
		return x, true, nil
	case map[any]any:
		m = make(map[string]any, len(x))
		for k, val := range x {
			s, ok := k.(string)
			if !ok {
				return nil, true, fmt.Errorf("key %s (%T) is not a string", describe(k), k)
			}
			m[s] = val
		}
		return m, true, nil
	}
	r := reflect.ValueOf(v)
	if r.Kind() != reflect.Map {
		return nil, false, nil
	}
	m = make(map[string]any, r.Len())
	for it := r.MapRange(); it.Next(); {
		k := it.Key()
		if k.Kind() == reflect.Interface && !k.IsNil() {
			k = k.Elem()
		}
		if k.Kind() != reflect.String {
			return nil, true, fmt.Errorf("key %s (%s) is not a string", describe(k.Interface()), k.Type())
		}
		m[k.String()] = it.Value().Interface()
	}
	return m, true, nil
}

// merge is merge(a, b, ...): a new map with the entries of every argument, later ones
// winning. An argument is a map with string keys, nil (nothing), or an array of [key, value]
// pairs, which spares building a map with fromPairs just to merge it.
func (l *library) merge(args ...any) (any, error) {
	size := 0
	for i, a := range args {
		n, err := mergeSize(i, a)
		if err != nil {
			return nil, err
		}
		size += n
	}
	if size > int(l.lim.MemoryBudget) {
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
		return "", nil, fmt.Errorf("merge: argument %d element %d has key %s (%T), not a string", i+1, j, describe(k), k)
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
		sm, _, err := asStringMap(a)
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

func (l *library) tooLong(fn string, n int) error {
	return fmt.Errorf("%s: a string of %d bytes exceeds the limit of %d: %w", fn, n, l.lim.MaxStringBytes, ErrStringTooLong)
}

// toString is string(x): fmt's %v, with the size bounded before formatting.
func (l *library) toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return "<nil>"
	}
	if !sizeWithin(v, l.lim.MaxStringBytes) {
		panic(l.tooLong("string", l.lim.MaxStringBytes+1))
	}
	s := fmt.Sprintf("%v", v)
	if len(s) > l.lim.MaxStringBytes {
		panic(l.tooLong("string", len(s)))
	}
	return s
}

func (l *library) repeat(args ...any) (any, error) {
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("repeat: first argument is %s, not a string", typeName(args[0]))
	}
	n := runtime.ToInt(args[1])
	if n < 0 {
		return nil, fmt.Errorf("invalid argument for repeat (expected positive integer, got %d)", n)
	}
	if n > 0 && len(s) > l.lim.MaxStringBytes/n {
		return nil, fmt.Errorf("repeat: %d copies of %d bytes exceed the limit of %d: %w", n, len(s), l.lim.MaxStringBytes, ErrStringTooLong)
	}
	return strings.Repeat(s, n), nil
}

func (l *library) join(args ...any) (any, error) {
	glue := ""
	if len(args) == 2 {
		g, ok := args[1].(string)
		if !ok {
			return nil, fmt.Errorf("join: separator is %s, not a string", typeName(args[1]))
		}
		glue = g
	}
	var parts []string
	switch a := args[0].(type) {
	case []string:
		parts = a
	case []any:
		parts = make([]string, len(a))
		for i, v := range a {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("join: element %d is %s, not a string", i, typeName(v))
			}
			parts[i] = s
		}
	default:
		return nil, fmt.Errorf("invalid argument for join (type %s)", typeName(args[0]))
	}
	n := 0
	for i, p := range parts {
		n += len(p)
		if i > 0 {
			n += len(glue)
		}
		if n > l.lim.MaxStringBytes {
			return nil, l.tooLong("join", n)
		}
	}
	return strings.Join(parts, glue), nil
}

func (l *library) replace(args ...any) (any, error) {
	var str [3]string
	for i := range 3 {
		s, ok := args[i].(string)
		if !ok {
			return nil, fmt.Errorf("replace: argument %d is %s, not a string", i+1, typeName(args[i]))
		}
		str[i] = s
	}
	s, old, repl := str[0], str[1], str[2]
	limit := -1
	if len(args) == 4 {
		limit = runtime.ToInt(args[3])
	}
	if len(repl) > len(old) {
		count := strings.Count(s, old)
		if limit >= 0 {
			count = min(count, limit)
		}
		if grow := count * (len(repl) - len(old)); count > 0 && (grow/count != len(repl)-len(old) || len(s)+grow > l.lim.MaxStringBytes) {
			return nil, l.tooLong("replace", l.lim.MaxStringBytes+1)
		}
	}
	return strings.Replace(s, old, repl, limit), nil
}

func (l *library) toBase64(args ...any) (any, error) {
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("toBase64: argument is %s, not a string", typeName(args[0]))
	}
	if n := base64.StdEncoding.EncodedLen(len(s)); n > l.lim.MaxStringBytes {
		return nil, l.tooLong("toBase64", n)
	}
	return base64.StdEncoding.EncodeToString([]byte(s)), nil
}

// toJSON is expr's toJSON (indented like json.MarshalIndent) through the bounded encoder.
func (l *library) toJSON(args ...any) (any, error) {
	e := encoder{}
	e.reset("toJSON argument", l.lim.MaxStringBytes, true)
	if err := e.encode(args[0], 0); err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, l.tooLong("toJSON", len(e.buf))
		}
		return nil, err
	}
	return string(e.buf), nil
}

// fromJSON decodes like DecodeInput, so integers stay integers.
func fromJSON(args ...any) (any, error) {
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("fromJSON: argument is %s, not a string", typeName(args[0]))
	}
	v, err := decodeJSON([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("fromJSON: %w", err)
	}
	return v, nil
}

// fromPairs returns map[string]any when every key is a string (the builtin always returns
// map[any]any, which encoding and field access handle poorly).
func fromPairs(args ...any) (any, error) {
	pairs, ok := args[0].([]any)
	if !ok {
		v := reflect.ValueOf(args[0])
		if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
			return nil, fmt.Errorf("cannot transform %s from pairs", typeName(args[0]))
		}
		pairs = make([]any, v.Len())
		for i := range pairs {
			pairs[i] = v.Index(i).Interface()
		}
	}
	keys := make([]any, len(pairs))
	vals := make([]any, len(pairs))
	allStrings := true
	for i, p := range pairs {
		switch kv := p.(type) {
		case []any:
			if len(kv) != 2 {
				return nil, fmt.Errorf("invalid pair length %d at index %d", len(kv), i)
			}
			keys[i], vals[i] = kv[0], kv[1]
		case [2]any:
			keys[i], vals[i] = kv[0], kv[1]
		default:
			v := reflect.ValueOf(p)
			if (v.Kind() != reflect.Slice && v.Kind() != reflect.Array) || v.Len() != 2 {
				return nil, fmt.Errorf("invalid pair %s at index %d", typeName(p), i)
			}
			keys[i], vals[i] = v.Index(0).Interface(), v.Index(1).Interface()
		}
		if _, ok := keys[i].(string); !ok {
			allStrings = false
		}
	}
	if allStrings {
		m := make(map[string]any, len(pairs))
		for i, k := range keys {
			m[k.(string)] = vals[i]
		}
		return m, nil
	}
	m := make(map[any]any, len(pairs))
	for i, k := range keys {
		m[k] = vals[i] // an unhashable key panics, which the VM turns into an error
	}
	return m, nil
}

// uniq keeps the first of equal elements (equal as ==). Scalars go through a map; arrays and
// maps are compared pairwise within the memory budget, where the builtin is quadratic and
// unbounded.
func (l *library) uniq(args ...any) (any, error) {
	v := reflect.ValueOf(args[0])
	if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
		return nil, fmt.Errorf("cannot uniq %s", typeName(args[0]))
	}
	budget := int(l.lim.MemoryBudget)
	seen := make(map[any]struct{})
	var composites []any
	out := []any{}
	for i := range v.Len() {
		el := v.Index(i).Interface()
		if key, ok := scalarKey(el); ok {
			if _, dup := seen[key]; !dup {
				seen[key] = struct{}{}
				out = append(out, el)
			}
			continue
		}
		dup := false
		for _, c := range composites {
			if budget--; budget < 0 {
				return nil, fmt.Errorf("uniq: too many comparisons: %w", ErrMemoryBudget)
			}
			eq, err := equal(el, c, &budget, 0)
			if err != nil {
				return nil, fmt.Errorf("uniq: %w", err)
			}
			if eq {
				dup = true
				break
			}
		}
		if !dup {
			composites = append(composites, el)
			out = append(out, el)
		}
	}
	return out, nil
}

// scalarKey maps a scalar to a key under which == -equal scalars collide (1 == 1.0).
func scalarKey(v any) (any, bool) {
	switch x := v.(type) {
	case nil:
		return nil, true
	case bool, string:
		return x, true
	case int:
		if x >= -(1<<53) && x <= 1<<53 {
			return float64(x), true
		}
		return x, true
	case float64:
		if x == 0 {
			return 0.0, true // -0 == 0
		}
		return x, true
	}
	return nil, false
}

func (l *library) flatten(args ...any) (any, error) {
	v := reflect.ValueOf(args[0])
	if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
		return nil, fmt.Errorf("cannot flatten %s", typeName(args[0]))
	}
	n := int(l.lim.MemoryBudget)
	if !countElements(args[0], &n, 0) {
		return nil, fmt.Errorf("flatten: more than %d elements, or nesting deeper than %d: %w", l.lim.MemoryBudget, maxValueDepth, ErrMemoryBudget)
	}
	out := make([]any, 0, int(l.lim.MemoryBudget)-n)
	return flattenInto(out, v), nil
}

func flattenInto(out []any, v reflect.Value) []any {
	for i := range v.Len() {
		el := v.Index(i)
		for el.Kind() == reflect.Interface || el.Kind() == reflect.Pointer {
			if el.IsNil() {
				break
			}
			el = el.Elem()
		}
		if el.Kind() == reflect.Slice || el.Kind() == reflect.Array {
			out = flattenInto(out, el)
		} else {
			out = append(out, el.Interface())
		}
	}
	return out
}

// countElements subtracts from *left the number of array elements reachable from v,
// counting shared arrays once per reference, and reports false as soon as it drops below
// zero: the walk costs at most the budget, however v was built.
func countElements(v any, left *int, depth int) bool {
	if depth > maxValueDepth {
		return false
	}
	switch x := v.(type) {
	case []any:
		*left -= len(x)
		if *left < 0 {
			return false
		}
		for _, el := range x {
			switch el.(type) {
			case nil, bool, int, float64, string:
				continue
			}
			if !countElements(el, left, depth+1) {
				return false
			}
		}
		return true
	case nil, bool, int, float64, string, []int, []float64, []string:
		if a := reflect.ValueOf(v); a.Kind() == reflect.Slice {
			*left -= a.Len()
		}
		return *left >= 0
	}
	r := reflect.ValueOf(v)
	if r.Kind() == reflect.Slice || r.Kind() == reflect.Array {
		*left -= r.Len()
		if *left < 0 {
			return false
		}
		for i := range r.Len() {
			if !countElements(r.Index(i).Interface(), left, depth+1) {
				return false
			}
		}
	}
	return *left >= 0
}

// sizeWithin reports whether fmt's %v of v stays within about limit bytes, walking at most
// that much of v.
func sizeWithin(v any, limit int) bool {
	left := limit
	return sizeWalk(v, &left, 0)
}

func sizeWalk(v any, left *int, depth int) bool {
	if depth > maxValueDepth {
		return false
	}
	switch x := v.(type) {
	case string:
		*left -= len(x) + 1
	case nil, bool, int, float64:
		*left -= 24
	case []any:
		*left -= 2 + len(x)
		for _, el := range x {
			if *left < 0 || !sizeWalk(el, left, depth+1) {
				return false
			}
		}
	case map[string]any:
		*left -= 5 + len(x)
		for k, el := range x {
			*left -= len(k) + 1
			if *left < 0 || !sizeWalk(el, left, depth+1) {
				return false
			}
		}
	default:
		r := reflect.ValueOf(v)
		switch r.Kind() {
		case reflect.Slice, reflect.Array:
			*left -= 2 + r.Len()
			for i := range r.Len() {
				if *left < 0 || !sizeWalk(r.Index(i).Interface(), left, depth+1) {
					return false
				}
			}
		case reflect.Map:
			*left -= 5 + r.Len()
			it := r.MapRange()
			for it.Next() {
				if *left < 0 || !sizeWalk(it.Key().Interface(), left, depth+1) || !sizeWalk(it.Value().Interface(), left, depth+1) {
					return false
				}
			}
		default:
			*left -= 64
		}
	}
	return *left >= 0
}

// checkString bounds the strings returned by method calls (time formatting and the like).
func (l *library) checkString(s string) string {
	if len(s) > l.lim.MaxStringBytes {
		panic(l.tooLong("method call", len(s)))
	}
	return s
}

func (l *library) checkAny(v any) any {
	if s, ok := v.(string); ok {
		l.checkString(s)
	}
	return v
}

// eq is == between values that may be arrays.
func (l *library) eq(a, b any) bool {
	budget := int(l.lim.MemoryBudget)
	eq, err := equal(a, b, &budget, 0)
	if err != nil {
		panic(err)
	}
	return eq
}

// in is the in operator where the collection may be an array of arrays, or a map.
func (l *library) in(needle, coll any) bool {
	switch c := coll.(type) {
	case map[string]any:
		if k, ok := needle.(string); ok {
			_, found := c[k]
			return found
		}
	case []any:
		budget := int(l.lim.MemoryBudget)
		for _, el := range c {
			eq, err := equal(needle, el, &budget, 0)
			if err != nil {
				panic(err)
			}
			if eq {
				return true
			}
		}
		return false
	}
	return runtime.In(needle, coll)
}

// get is a[b] (and a.b) on a value of unknown type: maps with string keys and arrays without
// reflection, anything else as expr does it.
func get(from, key any) any {
	switch x := from.(type) {
	case map[string]any:
		if k, ok := key.(string); ok {
			return x[k]
		}
	case []any:
		if i, ok := key.(int); ok {
			if i < 0 {
				i += len(x)
			}
			if i < 0 || i >= len(x) {
				panic(fmt.Sprintf("index out of range: %v (array length is %v)", key, len(x)))
			}
			return x[i]
		}
	}
	return runtime.Fetch(from, key)
}

// equal is expr's == (runtime.Equal), except that comparing two []any costs budget for every
// element: runtime.Equal recurses into shared nested arrays once per reference, which a
// program can make exponential.
func equal(a, b any, budget *int, depth int) (bool, error) {
	x, ok1 := a.([]any)
	y, ok2 := b.([]any)
	if !ok1 || !ok2 {
		return runtime.Equal(a, b), nil
	}
	if len(x) != len(y) {
		return false, nil
	}
	if depth > maxValueDepth {
		return false, ErrTooDeep
	}
	*budget -= len(x)
	if *budget < 0 {
		return false, fmt.Errorf("comparison of arrays with too many elements: %w", ErrMemoryBudget)
	}
	for i := range x {
		eq, err := equal(x[i], y[i], budget, depth+1)
		if err != nil || !eq {
			return false, err
		}
	}
	return true, nil
}
