package exprengine

import (
	"encoding/json"
	"iter"
	"slices"
	"strings"
)

// Object is a JSON object held as its keys, in the order they are encoded (sorted, each once),
// and their values. The fast path makes one of a merge or a map literal that is the program's
// output (or result's), which would otherwise build a map only to have it encoded: the encoder
// then writes the keys as quoted once for the site, instead of looking each one up. A run on
// expr's VM gives the same output as a map.
type Object struct {
	shape *shape // shared by the objects of one site, never changed
	vals  []any
}

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

// TopLevel yields the fields of an output value that is an object (a map with string keys,
// an *Object, or a json.RawMessage of an object, decoded here), and nothing for any other
// value.
func TopLevel(v any) iter.Seq2[string, any] {
	if raw, ok := v.(json.RawMessage); ok {
		v, _ = DecodeInput(raw) // a handler's output, encoded by eventrt: valid JSON
	}
	switch x := v.(type) {
	case map[string]any:
		return func(yield func(string, any) bool) {
			for k, v := range x {
				if !yield(k, v) {
					return
				}
			}
		}
	case *Object:
		return x.All()
	}
	return func(func(string, any) bool) {}
}

// objectSite is what one merge site of the fast path remembers from its last object: the keys
// it brought, in the order they came (arguments, then entries), the shape they made, and for
// each of the shape's keys where its value came (the last of equal keys: later ones win).
type objectSite struct {
	arrival []string
	shape   *shape
	from    []int
}

// object makes the object of keys and vals (in the order they came), which the site learns
// when they are not the keys of its last object.
func (s *objectSite) object(keys []string, vals []any) *Object {
	if s.shape == nil || !slices.Equal(keys, s.arrival) {
		s.learn(keys)
	}
	o := &Object{shape: s.shape, vals: make([]any, len(s.from))}
	for j, i := range s.from {
		o.vals[j] = vals[i]
	}
	return o
}

func (s *objectSite) learn(keys []string) {
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	// By key, and of equal keys by arrival: the last of each run of equal keys wins.
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
	sh := &shape{}
	from := make([]int, 0, len(order))
	for j, i := range order {
		if j+1 < len(order) && keys[order[j+1]] == keys[i] {
			continue
		}
		sh.keys = append(sh.keys, keys[i])
		sh.quoted = appendString(sh.quoted, keys[i])
		sh.ends = append(sh.ends, len(sh.quoted))
		from = append(from, i)
	}
	// A new shape, not the old one changed: objects made before keep theirs.
	s.arrival, s.shape, s.from = slices.Clone(keys), sh, from
}
