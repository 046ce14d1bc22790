package codec

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"time"
)

// Encoder writes a value as JSON the way encoding/json does (sorted keys, ES6-style floats,
// no HTML escaping), with three differences that matter here: maps with interface keys are
// accepted when every key is a string, the size is checked while writing (a program can
// build a value whose encoding is exponentially larger than its memory footprint, by
// nesting one array twice per level), and errors name the path of the offending value.
type Encoder struct {
	buf    []byte
	limit  int
	indent bool // MarshalIndent(v, "", "  ") layout, for toJSON
	root   string
	path   []pathElem
	keys   []string // stack of sorted map keys, shared by nested maps
	vals   []any    // stack of their values, when knownShape found them
	// shapes holds the sorted keys of the last maps encoded, one per size: a handler's
	// outputs have the same keys run after run, and checking that a map has them is cheaper
	// than collecting and sorting its keys again.
	shapes [8]Shape
}

// Shape is the sorted keys of an object, and each one quoted, as it is written: what the
// encoder remembers of a map it encoded, and what the objects of one site share.
type Shape struct {
	keys   []string
	quoted []byte
	ends   []int // where each key's quoted form ends in quoted
}

// knownShape returns the shape of x when its keys are those of a map encoded before, pushing
// their values, in the shape's order, onto e.vals. Having as many keys as a remembered map and
// every one of them means having the same keys.
func (e *Encoder) knownShape(x map[string]any) *Shape {
	if len(x) < 2 || len(x) > maxShapeKeys {
		return nil
	}
	sh := &e.shapes[len(x)%len(e.shapes)]
	if len(sh.keys) != len(x) {
		return nil
	}
	vmark := len(e.vals)
	for _, k := range sh.keys {
		v, ok := x[k]
		if !ok {
			clear(e.vals[vmark:])
			e.vals = e.vals[:vmark]
			return nil
		}
		e.vals = append(e.vals, v)
	}
	return sh
}

// maxShapeKeys bounds the maps whose keys are remembered: the pooled encoder keeps them.
const maxShapeKeys = 64

func (e *Encoder) rememberShape(keys []string) {
	sh := &e.shapes[len(keys)%len(e.shapes)]
	sh.keys = append(sh.keys[:0], keys...)
	sh.quoted, sh.ends = sh.quoted[:0], sh.ends[:0]
	for _, k := range keys {
		sh.quoted = AppendString(sh.quoted, k)
		sh.ends = append(sh.ends, len(sh.quoted))
	}
}

type pathElem struct {
	key   string
	index int
	isKey bool
}

// Reset starts a new encoding: root names the value in errors ("output", "env"), limit bounds
// its size in bytes, and indent lays it out as json.MarshalIndent(v, "", "  ") does.
func (e *Encoder) Reset(root string, limit int, indent bool) {
	e.buf = e.buf[:0]
	e.limit = limit
	e.indent = indent
	e.root = root
	e.path = e.path[:0]
	e.keys = e.keys[:0]
	clear(e.vals)
	e.vals = e.vals[:0]
}

func (e *Encoder) pathString() string {
	b := []byte(e.root)
	for i, p := range e.path {
		// A path hundreds of levels deep is no help in a one-line error: keep both ends.
		const keep = 8
		if len(e.path) > 2*keep+1 && i >= keep && i < len(e.path)-keep {
			if i == keep {
				b = append(b, "[...]"...)
			}
			continue
		}
		if p.isKey {
			b = append(b, '[')
			b = strconv.AppendQuote(b, p.key)
			b = append(b, ']')
		} else {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(p.index), 10)
			b = append(b, ']')
		}
	}
	return string(b)
}

func (e *Encoder) fail(cause error, format string, args ...any) error {
	return &OutputError{Path: e.pathString(), Message: fmt.Sprintf(format, args...), Err: cause}
}

func (e *Encoder) checkSize() error {
	if len(e.buf) > e.limit {
		return e.fail(ErrTooLarge, "encoded size exceeds the limit of %d bytes", e.limit)
	}
	return nil
}

// newline starts a line at depth in indented output. Indentation grows with depth, so the
// size is checked here too: deep nesting would otherwise write depth² bytes of spaces.
func (e *Encoder) newline(depth int) error {
	if !e.indent {
		return nil
	}
	e.buf = append(e.buf, '\n')
	for range depth {
		e.buf = append(e.buf, ' ', ' ')
	}
	return e.checkSize()
}

func (e *Encoder) encode(v any, depth int) error {
	if depth > MaxDepth {
		return e.fail(ErrTooDeep, "value nests deeper than %d levels", MaxDepth)
	}
	switch x := v.(type) {
	case nil:
		e.buf = append(e.buf, "null"...)
	case bool:
		e.buf = strconv.AppendBool(e.buf, x)
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case float64:
		return e.float(x, 64)
	case string:
		e.buf = AppendString(e.buf, x)
	case []any:
		e.buf = append(e.buf, '[')
		for i, el := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.path = append(e.path, pathElem{index: i})
			if err := e.newline(depth + 1); err != nil {
				return err
			}
			if err := e.encode(el, depth+1); err != nil {
				return err
			}
			e.path = e.path[:len(e.path)-1]
		}
		if len(x) > 0 {
			if err := e.newline(depth); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
	case map[string]any:
		mark, vmark := len(e.keys), len(e.vals)
		if sh := e.knownShape(x); sh != nil {
			var err error
			if e.indent {
				e.keys = append(e.keys, sh.keys...)
				err = e.object(mark, depth, func(i int, _ string) any { return e.vals[vmark+i] })
			} else {
				err = e.shapedObject(sh, e.vals[vmark:], depth)
			}
			clear(e.vals[vmark:]) // the values may be large; the pooled encoder must not pin them
			e.vals = e.vals[:vmark]
			if err != nil {
				return err
			}
			break
		}
		for k := range x {
			e.keys = append(e.keys, k)
		}
		if len(x) > 1 {
			slices.Sort(e.keys[mark:])
			if len(x) <= maxShapeKeys {
				e.rememberShape(e.keys[mark:])
			}
		}
		if err := e.object(mark, depth, func(_ int, k string) any { return x[k] }); err != nil {
			return err
		}
	case *Object:
		if !e.indent {
			if err := e.shapedObject(x.shape, x.vals, depth); err != nil {
				return err
			}
			break
		}
		mark := len(e.keys)
		e.keys = append(e.keys, x.shape.keys...)
		if err := e.object(mark, depth, func(i int, _ string) any { return x.vals[i] }); err != nil {
			return err
		}
	case map[any]any:
		mark := len(e.keys)
		for k := range x {
			s, ok := k.(string)
			if !ok {
				return e.fail(nil, "map key %s (%T) is not a string", Describe(k), k)
			}
			e.keys = append(e.keys, s)
		}
		slices.Sort(e.keys[mark:])
		if err := e.object(mark, depth, func(_ int, k string) any { return x[k] }); err != nil {
			return err
		}
	case Valuer:
		v, err := x.JSONValue()
		if err != nil {
			return e.fail(nil, "%v", err)
		}
		return e.encode(v, depth)
	case time.Time:
		if y := x.Year(); y < 0 || y >= 10000 {
			return e.fail(nil, "time %v has a year outside [0,9999]", x)
		}
		e.buf = append(e.buf, '"')
		e.buf = x.AppendFormat(e.buf, time.RFC3339Nano)
		e.buf = append(e.buf, '"')
	case time.Duration:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case float32:
		return e.float(float64(x), 32)
	case int8, int16, int32, int64:
		e.buf = strconv.AppendInt(e.buf, reflect.ValueOf(x).Int(), 10)
	case uint, uint8, uint16, uint32, uint64, uintptr:
		e.buf = strconv.AppendUint(e.buf, reflect.ValueOf(x).Uint(), 10)
	default:
		return e.reflectValue(reflect.ValueOf(v), depth)
	}
	return e.checkSize()
}

// shapedObject writes an object of a known shape, vals in its key order, without indenting:
// each key as quoted when the shape was remembered.
func (e *Encoder) shapedObject(sh *Shape, vals []any, depth int) error {
	e.buf = append(e.buf, '{')
	start := 0
	for i, k := range sh.keys {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = append(e.buf, sh.quoted[start:sh.ends[i]]...)
		e.buf = append(e.buf, ':')
		start = sh.ends[i]
		e.path = append(e.path, pathElem{key: k, isKey: true})
		if err := e.encode(vals[i], depth+1); err != nil {
			return err
		}
		e.path = e.path[:len(e.path)-1]
	}
	e.buf = append(e.buf, '}')
	return nil
}

// object writes the map whose sorted keys are e.keys[mark:], then pops them.
func (e *Encoder) object(mark, depth int, get func(i int, key string) any) error {
	n := len(e.keys) - mark
	e.buf = append(e.buf, '{')
	for i := range n {
		k := e.keys[mark+i]
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.path = append(e.path, pathElem{key: k, isKey: true})
		if err := e.newline(depth + 1); err != nil {
			return err
		}
		e.buf = AppendString(e.buf, k)
		e.buf = append(e.buf, ':')
		if e.indent {
			e.buf = append(e.buf, ' ')
		}
		if err := e.encode(get(i, k), depth+1); err != nil {
			return err
		}
		e.path = e.path[:len(e.path)-1]
	}
	if n > 0 {
		if err := e.newline(depth); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	// Not cleared: the strings stay reachable only until the next encoding overwrites
	// them, and clearing costs write barriers while the GC runs.
	e.keys = e.keys[:mark]
	return nil
}

// reflectValue covers the typed slices and arrays builtins return ([]int from ranges, [2]any
// pairs from toPairs...) and maps with string keys of other value types.
func (e *Encoder) reflectValue(v reflect.Value, depth int) error {
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		e.buf = append(e.buf, '[')
		for i := range v.Len() {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.path = append(e.path, pathElem{index: i})
			if err := e.newline(depth + 1); err != nil {
				return err
			}
			if err := e.encode(v.Index(i).Interface(), depth+1); err != nil {
				return err
			}
			e.path = e.path[:len(e.path)-1]
		}
		if v.Len() > 0 {
			if err := e.newline(depth); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
		return e.checkSize()
	case reflect.Map:
		if k := v.Type().Key().Kind(); k != reflect.String && k != reflect.Interface {
			return e.fail(nil, "cannot encode a map with %s keys", v.Type().Key())
		}
		m, _, err := StringMap(v.Interface()) // groupBy's map[any][]any, say
		if err != nil {
			return e.fail(nil, "map %s", err)
		}
		return e.encode(m, depth)
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
	}
	return e.fail(nil, "cannot encode a value of type %s as JSON", v.Type())
}

// float writes f as encoding/json does; NaN and infinities have no JSON form.
func (e *Encoder) float(f float64, bits int) error {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return e.fail(nil, "%v is not representable in JSON", f)
	}
	e.buf = AppendFloat(e.buf, f, bits)
	return e.checkSize()
}

// Describe renders a map key for an error message, briefly.
func Describe(v any) string {
	s := fmt.Sprintf("%v", v)
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.Quote(s)
}

// Canonical reports whether v is already exactly what decoding its JSON encoding gives, so
// that the env a run returns can be kept without a copy. v must have been encoded
// successfully (which bounds its size and depth).
func Canonical(v any) bool {
	switch x := v.(type) {
	case nil, bool, int, string:
		return true
	case float64:
		// An integral float is encoded without a fraction and decodes as an int.
		return !(x == math.Trunc(x) && x >= -(1<<63) && x < 1<<63)
	case []any:
		for _, el := range x {
			if !Canonical(el) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, el := range x {
			if !Canonical(el) {
				return false
			}
		}
		return true
	}
	return false
}

// Encode appends v's encoding to what the encoder holds since Reset.
func (e *Encoder) Encode(v any) error { return e.encode(v, 0) }

// Bytes is the encoding so far; it stays valid until the next Reset.
func (e *Encoder) Bytes() []byte { return e.buf }

// Trim drops the encoder's buffer when it grew past keep bytes, so that one large value does
// not pin its memory in a pooled encoder.
func (e *Encoder) Trim(keep int) {
	if cap(e.buf) > keep {
		e.buf = nil
	}
}

// Span locates one field's encoding in an encoder's bytes.
type Span struct {
	Key        string
	Start, End int
	// Canonical: the value is exactly what decoding its encoding gives (see [Canonical]).
	Canonical bool
}

// AppendFields encodes each value of m one after another, appending to spans where each one's
// JSON lies in Bytes.
func (e *Encoder) AppendFields(m map[string]any, spans []Span) ([]Span, error) {
	for k, val := range m {
		start := len(e.buf)
		e.path = append(e.path[:0], pathElem{key: k, isKey: true})
		if err := e.encode(val, 1); err != nil {
			return spans, err
		}
		spans = append(spans, Span{Key: k, Start: start, End: len(e.buf), Canonical: Canonical(val)})
	}
	return spans, nil
}

// Valuer is a value that encodes as another value, or cannot be encoded at all (the error
// then says why, and the encoder adds where).
type Valuer interface {
	JSONValue() (any, error)
}
