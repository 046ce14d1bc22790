package codec

import (
	"fmt"
	"iter"
	"reflect"
)

// Object is a JSON object held as its keys, in the order they are encoded (sorted, each once),
// and their values. An engine makes one for a value it builds only to have it encoded (the
// expr engine's fast path does, for a merge or a map literal that is the output): the encoder
// then writes the keys as quoted once for the [Shape], instead of looking each one up.
type Object struct {
	shape *Shape // shared by the objects of one site, never changed
	vals  []any
}

// NewShape returns the shape of an object with keys, which must be sorted and distinct.
func NewShape(keys []string) *Shape {
	sh := &Shape{}
	for _, k := range keys {
		sh.keys = append(sh.keys, k)
		sh.quoted = AppendString(sh.quoted, k)
		sh.ends = append(sh.ends, len(sh.quoted))
	}
	return sh
}

// Len is the number of keys.
func (sh *Shape) Len() int { return len(sh.keys) }

// NewObject returns the object of shape sh with vals, one per key in the shape's order; it
// keeps vals.
func NewObject(sh *Shape, vals []any) *Object { return &Object{shape: sh, vals: vals} }

// Len is the number of keys.
func (o *Object) Len() int { return len(o.vals) }

// All yields each key with its value, in key order.
func (o *Object) All() iter.Seq2[string, any] {
	return func(yield func(string, any) bool) {
		for i, k := range o.shape.keys {
			if !yield(k, o.vals[i]) {
				return
			}
		}
	}
}

// Map returns the object as a map.
func (o *Object) Map() map[string]any {
	m := make(map[string]any, len(o.vals))
	for i, k := range o.shape.keys {
		m[k] = o.vals[i]
	}
	return m
}

// StringMap returns the entries of a map whose keys are all strings: v itself for a
// map[string]any, a copy for other maps (fromPairs' map[any]any, groupBy's map[any][]any).
// isMap is false when v is not a map.
func StringMap(v any) (m map[string]any, isMap bool, err error) {
	switch x := v.(type) {
	case map[string]any:
		return x, true, nil
	case map[any]any:
		m = make(map[string]any, len(x))
		for k, val := range x {
			s, ok := k.(string)
			if !ok {
				return nil, true, fmt.Errorf("key %s (%T) is not a string", Describe(k), k)
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
			return nil, true, fmt.Errorf("key %s (%s) is not a string", Describe(k.Interface()), k.Type())
		}
		m[k.String()] = it.Value().Interface()
	}
	return m, true, nil
}
