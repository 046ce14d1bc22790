package exprengine

import (
	"slices"
	"strings"

	"github.com/eventrt/eventrt/internal/exec/codec"
)

// A merge or a map literal that is the program's output (or result's) would otherwise build a
// map only to have it encoded: the fast path makes a codec.Object of it instead, whose keys
// the encoder writes as quoted once for the site. A run on expr's VM gives the same output as
// a map.

// objectSite is what one merge site of the fast path remembers from its last object: the keys
// it brought, in the order they came (arguments, then entries), the shape they made, and for
// each of the shape's keys where its value came (the last of equal keys: later ones win).
type objectSite struct {
	arrival []string
	shape   *codec.Shape
	from    []int
}

// object makes the object of keys and vals (in the order they came), which the site learns
// when they are not the keys of its last object.
func (s *objectSite) object(keys []string, vals []any) *codec.Object {
	if s.shape == nil || !slices.Equal(keys, s.arrival) {
		s.learn(keys)
	}
	ovals := make([]any, len(s.from))
	for j, i := range s.from {
		ovals[j] = vals[i]
	}
	return codec.NewObject(s.shape, ovals)
}

func (s *objectSite) learn(keys []string) {
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	// By key, and of equal keys by arrival: the last of each run of equal keys wins.
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
	var sorted []string
	from := make([]int, 0, len(order))
	for j, i := range order {
		if j+1 < len(order) && keys[order[j+1]] == keys[i] {
			continue
		}
		sorted = append(sorted, keys[i])
		from = append(from, i)
	}
	// A new shape, not the old one changed: objects made before keep theirs.
	s.arrival, s.shape, s.from = slices.Clone(keys), codec.NewShape(sorted), from
}
