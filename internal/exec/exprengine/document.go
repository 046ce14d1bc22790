package exprengine

import (
	"encoding/json"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"
)

// A program given its input as JSON (Call.Input a json.RawMessage) decodes it itself. When
// the fast path will run it and the input is an object, the object is not built as a map:
// its keys are those of the previous input of the same shape, shared, and its values sit in
// a slice that the run state reuses, numbers unboxed. The fast path reads input[key],
// key in input and len(input) from it directly, and numbers without boxing them; any other
// use of input (or the VM) gets the map, built once per run on demand. Decoding a stream of
// same-shaped documents then allocates nothing per document but their strings and nested
// values.

// TakesJSONInput marks a Program as a handler that decodes a json.RawMessage input itself
// (see exec.InputFor).
func (p *Program) TakesJSONInput() {}

// document is a top-level JSON object decoded for the fast path.
type document struct {
	shape *docShape
	vals  []docValue
	m     map[string]any // the map, once asked for in this run
}

type docValue struct {
	n num
	v any // when n.k is boxed
}

// docShape is the keys of a document in order, and where each is.
type docShape struct {
	keys  []string
	index map[string]int
}

// at is the value at index i, nil for -1 (a key the document lacks).
func (d *document) at(i int) (num, any) {
	if i >= 0 {
		v := &d.vals[i]
		return v.n, v.v
	}
	return num{}, nil
}

// maxDocKeys bounds the room for values a pooled document keeps across runs.
const maxDocKeys = 4096

// find is k's index in the shape, -1 when the shape lacks it.
func (s *docShape) find(k string) int {
	if at, ok := s.index[k]; ok {
		return at
	}
	return -1
}

// asMap is the document as the map a program sees as input.
func (d *document) asMap() map[string]any {
	if d.m == nil {
		d.m = mapOf(d.shape.keys, d.vals)
	}
	return d.m
}

// mapOf pairs keys with values; of two equal keys the later wins, as in encoding/json.
func mapOf(keys []string, vals []docValue) map[string]any {
	m := make(map[string]any, len(keys))
	for i, k := range keys {
		v := &vals[i]
		m[k] = v.n.box(v.v)
	}
	return m
}

// reset drops what the last run decoded (nested values, the map) so the pooled state does not
// keep them alive, nor the room of an unusually large document.
func (d *document) reset() {
	if cap(d.vals) > maxDocKeys {
		d.vals = nil
	}
	clear(d.vals)
	d.vals, d.m = d.vals[:0], nil
}

// inputDecoder decodes json.RawMessage inputs for one run state: a scanner with its own key
// table, the document it decodes into, and the last shape.
type inputDecoder struct {
	dec   codec.Scanner
	keys  []string
	shape *docShape
	doc   document
}

// decode decodes raw into the program's input: the document, when asDoc and raw is an object
// with distinct keys, else the value DecodeInput would give.
func (in *inputDecoder) decode(raw json.RawMessage, asDoc bool) (any, error) {
	d := &in.dec
	d.Reset(raw)
	defer d.Release()
	if !asDoc || d.Peek() != '{' {
		v, err := d.Document()
		if err != nil {
			return nil, &exec.Error{Kind: exec.KindDecode, Err: err}
		}
		return v, nil
	}
	doc := &in.doc
	doc.reset()
	in.keys = in.keys[:0]
	if err := in.object(doc); err != nil {
		doc.reset()
		return nil, &exec.Error{Kind: exec.KindDecode, Err: err}
	}
	if !in.sameShape() {
		shape := &docShape{keys: append([]string(nil), in.keys...), index: make(map[string]int, len(in.keys))}
		for i, k := range in.keys {
			if _, dup := shape.index[k]; dup {
				// encoding/json's rule, the last one wins, is the map's: give the map.
				m := mapOf(in.keys, doc.vals)
				doc.reset()
				return m, nil
			}
			shape.index[k] = i
		}
		in.shape = shape
	}
	doc.shape = in.shape
	return doc, nil
}

func (in *inputDecoder) sameShape() bool {
	if in.shape == nil || len(in.shape.keys) != len(in.keys) {
		return false
	}
	for i, k := range in.shape.keys {
		if in.keys[i] != k {
			return false
		}
	}
	return true
}

// object decodes the top-level object into doc and in.keys, numbers unboxed, and checks that
// nothing follows it.
func (in *inputDecoder) object(doc *document) error {
	d := &in.dec
	err := d.Members(func(k string) error {
		var val docValue
		var err error
		if d.AtNumber() {
			var n codec.Num
			n, err = d.Number()
			switch {
			case err != nil:
			case n.IsInt:
				val.n = num{i: n.I, k: intNum}
			default:
				val.n = num{f: n.F, k: floatNum}
			}
		} else {
			val.v, err = d.Value()
		}
		in.keys = append(in.keys, k)
		doc.vals = append(doc.vals, val)
		return err
	})
	if err != nil {
		return err
	}
	return d.End()
}
