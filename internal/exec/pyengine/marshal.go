package pyengine

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"
	"github.com/eventrt/eventrt/internal/quote"
)

// The values crossing the pipe are encoded in CPython's marshal format, version 2, rather than
// JSON: marshal.loads/dumps cost a fraction of json.loads/dumps in the worker (binary floats, no
// parsing), and the format keeps Python's int/float distinction and dict order. Version 2 has no
// back-references, so the subset below is all that marshal.dumps(x, 2) can produce.
//
// Going to Python, Go values (and JSON text, see jsonText) become marshal. Coming back, marshal
// becomes exactly the JSON text Python's json.dumps would have written. Anything json.dumps would treat specially (NaN, sets,
// bytes-like objects, odd dict keys) makes the decoder return errNeedJSON, and the engine asks
// the worker to encode with json itself, which gives json's own verdict and a precise message.

const (
	mNull     = '0'
	mNone     = 'N'
	mFalse    = 'F'
	mTrue     = 'T'
	mInt      = 'i'
	mLong     = 'l'
	mFloat    = 'g'
	mUnicode  = 'u'
	mTuple    = '('
	mList     = '['
	mDict     = '{'
	maxDepth  = 1000 // deeper values are refused rather than risking the goroutine stack
	longShift = 15   // marshal writes ints beyond int32 as base-2**15 digits
)

// errNeedJSON means the marshal value holds something only json.dumps can judge.
var errNeedJSON = errors.New("value needs the json fallback")

// encoder appends Go values as marshal v2. The engine keeps one for its requests, and with the
// buffer what tends to repeat from one run to the next, so that a run redoes only what changed:
// the sorted keys of the input and env (the same keys every run, as a rule), the encoding of
// the context, and the scratch space of decoding the reply.
type encoder struct {
	b          []byte
	input, env keyOrder // of the last top-level input and env maps
	ctx        ctxFields
	reply      replyScratch
	walker     codec.Walker // reads JSON text (jsonText)
}

// ctxFields is the marshal of the context fields of the last run. All but last_execution
// stay the same from run to run but for trigger and entry_id, which change with the kind of
// event: the encoding is redone only when one of them changes.
type ctxFields struct {
	c          exec.Context // LastExecution cleared: it is encoded on every run
	head, tail []byte       // the fields before and after last_execution
	ok         bool
}

// context writes the run's context fields: host, port, input_key, output_key,
// function_getmtime, last_execution (a POSIX timestamp, or None), trigger, entry_id, function.
func (e *encoder) context(c exec.Context) {
	last := c.LastExecution
	c.LastExecution = nil
	k := &e.ctx
	if !k.ok || k.c != c {
		k.c, k.ok = c, true
		f := encoder{b: k.head[:0]}
		f.str(c.Host)
		f.int64(int64(c.Port))
		f.str(c.InputKey)
		f.str(c.OutputKey)
		f.str(c.FunctionGetmtime)
		k.head = f.b
		f.b = k.tail[:0]
		f.str(c.Trigger)
		f.str(c.EntryID)
		f.str(c.Function)
		k.tail = f.b
	}
	e.b = append(e.b, k.head...)
	if last == nil {
		e.b = append(e.b, mNone)
	} else {
		e.float(float64(last.UnixMicro()) / 1e6)
	}
	e.b = append(e.b, k.tail...)
}

// keyOrder is the sorted key set of a map written before, with the marshal of each key.
type keyOrder struct {
	keys []string
	enc  []byte // the marshal of keys[i] ends at ends[i], and starts where keys[i-1]'s ends
	ends []int
}

func (e *encoder) u32(n int) {
	e.b = binary.LittleEndian.AppendUint32(e.b, uint32(n))
}

func (e *encoder) str(s string) {
	e.b = append(e.b, mUnicode)
	if !utf8.ValidString(s) {
		// marshal.loads refuses invalid UTF-8; encoding/json makes the same substitution.
		s = toValidUTF8(s)
	}
	e.u32(len(s))
	e.b = append(e.b, s...)
}

func toValidUTF8(s string) string {
	out := make([]byte, 0, len(s))
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		out = utf8.AppendRune(out, r) // RuneError for an invalid byte
		s = s[n:]
	}
	return string(out)
}

func (e *encoder) int64(v int64) {
	if v >= math.MinInt32 && v <= math.MaxInt32 {
		e.b = append(e.b, mInt)
		e.u32(int(int32(v)))
		return
	}
	neg := v < 0
	m := uint64(v)
	if neg {
		m = -m
	}
	e.ulong(m, neg)
}

// ulong writes magnitude m (beyond int32) as marshal's TYPE_LONG, canonically as CPython does:
// the digit count, negative for negative numbers, then 15-bit digits, least significant first.
func (e *encoder) ulong(m uint64, neg bool) {
	var digits [5]uint16
	n := 0
	for ; m > 0; m >>= longShift {
		digits[n] = uint16(m & (1<<longShift - 1))
		n++
	}
	e.b = append(e.b, mLong)
	if neg {
		e.u32(-n)
	} else {
		e.u32(n)
	}
	for _, d := range digits[:n] {
		e.b = binary.LittleEndian.AppendUint16(e.b, d)
	}
}

func (e *encoder) bigInt(v *big.Int) {
	if v.IsInt64() {
		e.int64(v.Int64())
		return
	}
	if v.IsUint64() {
		e.ulong(v.Uint64(), false)
		return
	}
	var m big.Int
	m.Abs(v)
	words := (m.BitLen() + longShift - 1) / longShift
	e.b = append(e.b, mLong)
	if v.Sign() < 0 {
		e.u32(-words)
	} else {
		e.u32(words)
	}
	mask := big.NewInt(1<<longShift - 1)
	var d big.Int
	for range words {
		d.And(&m, mask)
		e.b = binary.LittleEndian.AppendUint16(e.b, uint16(d.Uint64()))
		m.Rsh(&m, longShift)
	}
}

func (e *encoder) float(f float64) {
	e.b = append(e.b, mFloat)
	e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(f))
}

// number writes a float64 as a Python float. Integers travel as Go ints (exec.DecodeInput and
// exec.DecodeEnv decode them so), so a float64 is a float even when integral: 45.0 stays 45.0.
func (e *encoder) number(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf(": %v is not a JSON number", f)
	}
	e.float(f)
	return nil
}

func (e *encoder) jsonNumber(n json.Number) error {
	s := string(n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '.' || c == 'e' || c == 'E' {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return fmt.Errorf(": number %s: %w", quote.Value(s), err)
			}
			e.float(f)
			return nil
		}
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		e.int64(v)
		return nil
	}
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return fmt.Errorf(": number %s is not an integer", quote.Value(s))
	}
	e.bigInt(v)
	return nil
}

// value writes v, one of the types encoding/json decodes into (and a few common others). Map
// keys are sorted so that the dict order Python sees, and the bytes, are deterministic. An
// error's text continues the path of v: `["key"][2]: problem`.
func (e *encoder) value(v any, depth int) error {
	if depth > maxDepth {
		return errors.New(": nested too deeply")
	}
	switch x := v.(type) {
	case nil:
		e.b = append(e.b, mNone)
	case bool:
		if x {
			e.b = append(e.b, mTrue)
		} else {
			e.b = append(e.b, mFalse)
		}
	case string:
		e.str(x)
	case float64:
		return e.number(x)
	case float32:
		return e.number(float64(x))
	case int:
		e.int64(int64(x))
	case int64:
		e.int64(x)
	case int32:
		e.int64(int64(x))
	case uint64:
		if x > math.MaxInt64 {
			e.ulong(x, false)
		} else {
			e.int64(int64(x))
		}
	case json.Number:
		return e.jsonNumber(x)
	case json.RawMessage:
		return e.jsonText(x)
	case map[string]any:
		return e.dict(x, depth, nil)
	case []any:
		e.b = append(e.b, mList)
		e.u32(len(x))
		for i, item := range x {
			if err := e.value(item, depth+1); err != nil {
				return fmt.Errorf("[%d]%w", i, err)
			}
		}
	case map[string]string:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		e.b = append(e.b, mDict)
		for _, k := range keys {
			e.str(k)
			e.str(x[k])
		}
		e.b = append(e.b, mNull)
	default:
		return e.reflectValue(v, depth)
	}
	return nil
}

// dict writes x with its keys sorted. order, when not nil, holds the sorted keys of the
// previous map written through it: a map with the same key set (as many keys, each remembered
// one present) is written in that order without collecting, sorting and encoding its keys
// again; a map with other keys replaces them.
func (e *encoder) dict(x map[string]any, depth int, order *keyOrder) error {
	start := len(e.b)
	e.b = append(e.b, mDict)
	if order != nil && len(order.keys) == len(x) && e.dictInOrder(x, order, depth) {
		return nil
	}
	e.b = e.b[:start+1] // undo a partial write in the remembered order
	var sorted []string
	if order != nil {
		sorted = order.keys[:0]
	} else {
		sorted = make([]string, 0, len(x))
	}
	for k := range x {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	if order != nil {
		order.keys = sorted
		keys := encoder{b: order.enc[:0]}
		order.ends = order.ends[:0]
		for _, k := range sorted {
			keys.str(k)
			order.ends = append(order.ends, len(keys.b))
		}
		order.enc = keys.b
	}
	for _, k := range sorted {
		e.str(k)
		if err := e.value(x[k], depth+1); err != nil {
			return fmt.Errorf("[%s]%w", quote.Value(k), err)
		}
	}
	e.b = append(e.b, mNull)
	return nil
}

// dictInOrder writes the items of x in the order of o.keys, which has len(x) distinct entries,
// and its end mark. It returns false, leaving a partial write, when a key is missing (x has
// other keys) or a value fails: the caller then sorts x's own keys, and reports the error in
// their order.
func (e *encoder) dictInOrder(x map[string]any, o *keyOrder, depth int) bool {
	from := 0
	for i, k := range o.keys {
		v, ok := x[k]
		if !ok {
			return false
		}
		to := o.ends[i]
		e.b = append(e.b, o.enc[from:to]...)
		from = to
		switch x := v.(type) { // the usual values first, without value's longer type switch
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return false
			}
			e.float(x)
		case int:
			e.int64(int64(x))
		default:
			if e.value(v, depth+1) != nil {
				return false
			}
		}
	}
	e.b = append(e.b, mNull)
	return true
}

// reflectValue handles the remaining types the way encoding/json sees them.
func (e *encoder) reflectValue(v any, depth int) error {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.int64(rv.Int())
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return e.value(rv.Uint(), depth)
	case reflect.Float32, reflect.Float64:
		return e.number(rv.Float())
	case reflect.String:
		e.str(rv.String())
		return nil
	case reflect.Bool:
		return e.value(rv.Bool(), depth)
	}
	// Structs, typed maps and slices, time.Time...: whatever encoding/json makes of them.
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf(": %w", err)
	}
	return e.jsonText(raw)
}
