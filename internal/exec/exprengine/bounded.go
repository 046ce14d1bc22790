package exprengine

import (
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/eventrt/eventrt/internal/exec/codec"
	"github.com/expr-lang/expr/vm/runtime"
)

// The bounded builtins: expr's string building, JSON, uniq, flatten, equality and membership
// replaced by versions whose cost the limits bound (see library.options).

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
	var e codec.Encoder
	e.Reset("toJSON argument", l.lim.MaxStringBytes, true)
	if err := e.Encode(args[0]); err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, l.tooLong("toJSON", len(e.Bytes()))
		}
		return nil, err
	}
	return string(e.Bytes()), nil
}

// fromJSON decodes like DecodeInput, so integers stay integers.
func fromJSON(args ...any) (any, error) {
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("fromJSON: argument is %s, not a string", typeName(args[0]))
	}
	v, err := codec.Decode([]byte(s))
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
		return nil, fmt.Errorf("flatten: more than %d elements, or nesting deeper than %d: %w", l.lim.MemoryBudget, codec.MaxDepth, ErrMemoryBudget)
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
	if depth > codec.MaxDepth {
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
	if depth > codec.MaxDepth {
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
	if depth > codec.MaxDepth {
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
