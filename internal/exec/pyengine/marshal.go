package pyengine

// The values crossing the pipe are encoded in CPython's marshal format, version 2, rather than
// JSON: marshal.loads/dumps cost a fraction of json.loads/dumps in the worker (binary floats, no
// parsing), and the format keeps Python's int/float distinction and dict order. Version 2 has no
// back-references, so the subset below is all that marshal.dumps(x, 2) can produce.
//
// Going to Python, Go values (and JSON text, see jsonText) become marshal. Coming back, marshal
// becomes exactly the JSON text Python's json.dumps would have written. Anything json.dumps would treat specially (NaN, sets,
// bytes-like objects, odd dict keys) makes the decoder return errNeedJSON, and the engine asks
// the worker to encode with json itself, which gives json's own verdict and a precise message.

import (
	"bytes"
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
	"github.com/eventrt/eventrt/internal/quote"
)

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

// number writes a float64 as a Python float. Integers travel as Go ints (exprengine.DecodeInput and
// exprengine.DecodeEnv decode them so), so a float64 is a float even when integral: 45.0 stays 45.0.
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

// decoder reads marshal v2 produced by the worker.
type decoder struct {
	b   []byte
	pos int
}

var errTruncated = errors.New("truncated marshal data")

func (d *decoder) byte() (byte, error) {
	if d.pos >= len(d.b) {
		return 0, errTruncated
	}
	c := d.b[d.pos]
	d.pos++
	return c, nil
}

func (d *decoder) i32() (int, error) {
	if len(d.b)-d.pos < 4 {
		return 0, errTruncated
	}
	n := int(int32(binary.LittleEndian.Uint32(d.b[d.pos:])))
	d.pos += 4
	return n, nil
}

func (d *decoder) bytes(n int) ([]byte, error) {
	if n < 0 || len(d.b)-d.pos < n {
		return nil, errTruncated
	}
	s := d.b[d.pos : d.pos+n]
	d.pos += n
	return s, nil
}

func (d *decoder) float() (float64, error) {
	s, err := d.bytes(8)
	if err != nil {
		return 0, err
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(s)), nil
}

// long reads a TYPE_LONG body as (magnitude, negative). It returns a big.Int only when the
// magnitude does not fit in a uint64.
func (d *decoder) long() (uint64, *big.Int, bool, error) {
	n, err := d.i32()
	if err != nil {
		return 0, nil, false, err
	}
	neg := n < 0
	if neg {
		n = -n
	}
	raw, err := d.bytes(2 * n)
	if err != nil {
		return 0, nil, false, err
	}
	// Four digits are 60 bits; a fifth fits in a uint64 while it is below 2**4.
	if n <= 4 || (n == 5 && binary.LittleEndian.Uint16(raw[8:]) < 1<<4) {
		var m uint64
		for i := n - 1; i >= 0; i-- {
			m = m<<longShift | uint64(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return m, nil, neg, nil
	}
	m := new(big.Int)
	var digit big.Int
	for i := n - 1; i >= 0; i-- {
		m.Lsh(m, longShift)
		m.Or(m, digit.SetUint64(uint64(binary.LittleEndian.Uint16(raw[2*i:]))))
	}
	return 0, m, neg, nil
}

// separators are json.dumps' item and key separators.
type separators struct{ item, key string }

var compactSeparators = separators{",", ":"} // what the engine writes; the worker matches it

// json appends the JSON text of the next marshal value, as json.dumps(allow_nan=False) with
// sep would write it.
func (d *decoder) json(dst []byte, sep separators, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, errNeedJSON
	}
	c, err := d.byte()
	if err != nil {
		return dst, err
	}
	switch c {
	case mNone:
		return append(dst, "null"...), nil
	case mTrue:
		return append(dst, "true"...), nil
	case mFalse:
		return append(dst, "false"...), nil
	case mInt:
		n, err := d.i32()
		return strconv.AppendInt(dst, int64(n), 10), err
	case mLong:
		m, b, neg, err := d.long()
		if err != nil {
			return dst, err
		}
		if neg {
			dst = append(dst, '-')
		}
		if b != nil {
			return b.Append(dst, 10), nil
		}
		return strconv.AppendUint(dst, m, 10), nil
	case mFloat:
		f, err := d.float()
		if err != nil {
			return dst, err
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return dst, errNeedJSON
		}
		return appendPyFloat(dst, f), nil
	case mUnicode:
		n, err := d.i32()
		if err != nil {
			return dst, err
		}
		s, err := d.bytes(n)
		return appendPyString(dst, s), err
	case mList, mTuple:
		n, err := d.i32()
		if err != nil {
			return dst, err
		}
		if n < 0 || n > len(d.b)-d.pos {
			return dst, errTruncated
		}
		dst = append(dst, '[')
		for i := range n {
			if i > 0 {
				dst = append(dst, sep.item...)
			}
			if dst, err = d.json(dst, sep, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case mDict:
		dst = append(dst, '{')
		for first := true; ; first = false {
			if d.pos < len(d.b) && d.b[d.pos] == mNull {
				d.pos++
				return append(dst, '}'), nil
			}
			if !first {
				dst = append(dst, sep.item...)
			}
			if dst, err = d.key(dst); err != nil {
				return dst, err
			}
			dst = append(dst, sep.key...)
			if dst, err = d.json(dst, sep, depth+1); err != nil {
				return dst, err
			}
		}
	}
	// Sets, bytes (and anything with the buffer protocol), complex, code, Ellipsis...
	return dst, errNeedJSON
}

// key appends a dict key as json.dumps converts it: str as is; int, float, bool and None as
// their JSON text, quoted.
func (d *decoder) key(dst []byte) ([]byte, error) {
	c, err := d.byte()
	if err != nil {
		return dst, err
	}
	if c == mUnicode {
		n, err := d.i32()
		if err != nil {
			return dst, err
		}
		s, err := d.bytes(n)
		return appendPyString(dst, s), err
	}
	switch c {
	case mInt, mLong, mFloat, mNone, mTrue, mFalse:
		d.pos--
		var text []byte
		if text, err = d.json(nil, compactSeparators, 0); err != nil {
			return dst, err
		}
		dst = append(dst, '"')
		dst = append(dst, text...)
		return append(dst, '"'), nil
	}
	return dst, errNeedJSON
}

// keyString reads a dict key as the string json.dumps would turn it into.
func (d *decoder) keyString() (string, error) {
	if d.pos < len(d.b) && d.b[d.pos] == mUnicode {
		d.pos++
		n, err := d.i32()
		if err != nil {
			return "", err
		}
		s, err := d.bytes(n)
		return goString(s), err
	}
	text, err := d.key(nil)
	if err != nil {
		return "", err
	}
	return string(text[1 : len(text)-1]), nil // a number, true, false or null: no escapes
}

// value decodes the next marshal value into what exprengine.DecodeInput would produce for its JSON
// text: int for an integer that fits, float64 for other numbers, map[string]any, []any.
func (d *decoder) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errNeedJSON
	}
	c, err := d.byte()
	if err != nil {
		return nil, err
	}
	switch c {
	case mNone:
		return nil, nil
	case mTrue:
		return true, nil
	case mFalse:
		return false, nil
	case mInt:
		n, err := d.i32()
		return n, err
	case mLong:
		m, b, neg, err := d.long()
		if err != nil {
			return nil, err
		}
		if b == nil && m <= math.MaxInt {
			if neg {
				return -int(m), nil
			}
			return int(m), nil
		}
		if b == nil && neg && m == math.MaxInt+1 {
			return math.MinInt, nil
		}
		f := float64(m)
		if b != nil {
			f, _ = new(big.Float).SetInt(b).Float64()
		}
		if neg {
			f = -f
		}
		return f, nil
	case mFloat:
		return d.float()
	case mUnicode:
		n, err := d.i32()
		if err != nil {
			return nil, err
		}
		s, err := d.bytes(n)
		return goString(s), err
	case mList, mTuple:
		n, err := d.i32()
		if err != nil {
			return nil, err
		}
		if n < 0 || n > len(d.b)-d.pos {
			return nil, errTruncated
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = d.value(depth + 1); err != nil {
				return nil, err
			}
		}
		return out, nil
	case mDict:
		out := map[string]any{}
		for {
			if d.pos < len(d.b) && d.b[d.pos] == mNull {
				d.pos++
				return out, nil
			}
			key, err := d.keyString()
			if err != nil {
				return nil, err
			}
			if out[key], err = d.value(depth + 1); err != nil {
				return nil, err
			}
		}
	}
	return nil, errNeedJSON
}

// goString converts marshal's UTF-8 (where lone surrogates may appear, "surrogatepass") to a
// valid Go string.
func goString(s []byte) string {
	if utf8.Valid(s) {
		return string(s)
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		if s[i] == 0xed && i+2 < len(s) && s[i+1]&0xe0 == 0xa0 && s[i+2]&0xc0 == 0x80 {
			out = utf8.AppendRune(out, utf8.RuneError) // one lone surrogate, as encoding/json sees \udXXX
			i += 3
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		out = utf8.AppendRune(out, r)
		i += n
	}
	return string(out)
}

// replyScratch is what decoding a reply reuses from run to run: JSON is built in buf and copied
// out at its exact size, which keeps the garbage of a run (and so the GC's work) small.
type replyScratch struct {
	buf []byte
}

// envSpan is where the JSON of an env field lies in the buffer.
type envSpan struct {
	key        string
	start, end int
}

// maxScratch bounds the scratch buffer kept between runs: one huge output must not pin its
// size for the engine's life.
const maxScratch = 64 << 10

// release drops a buffer grown past maxScratch.
func (s *replyScratch) release() {
	if cap(s.buf) > maxScratch {
		s.buf = nil
	}
}

// json turns the marshal of a value into its compact JSON text, in the scratch buffer: the
// text is valid until the next use of s.
func (s *replyScratch) json(m []byte) ([]byte, error) {
	d := decoder{b: m}
	js, err := d.json(s.buf[:0], compactSeparators, 0)
	s.buf = js
	s.release()
	return js, err
}

// decodeEnv reads the env dict the worker returned: each value as Go value and as compact
// JSON, in one buffer. Keys must be str (the state hash has string fields). hint is the
// expected number of keys. known are the keys the env was sent with, in the order sent: the
// worker returns them in that order (a dict keeps its insertion order), and a returned key
// equal to the next known one is that string rather than a new copy.
func (s *replyScratch) decodeEnv(b []byte, hint int, known []string) (map[string]any, exec.Fields, int, error) {
	d := decoder{b: b}
	if c, err := d.byte(); err != nil || c != mDict {
		return nil, nil, 0, errNeedJSON
	}
	defer s.release()
	env := make(map[string]any, hint)
	var stack [32]envSpan // on the goroutine's stack, for a usual env
	buf, spans := s.buf[:0], stack[:0]
	next := 0 // index in known of the key expected next
	for {
		if d.pos < len(d.b) && d.b[d.pos] == mNull {
			break
		}
		c, err := d.byte()
		if err != nil {
			return nil, nil, 0, err
		}
		if c != mUnicode {
			return nil, nil, 0, errNeedJSON
		}
		n, err := d.i32()
		if err != nil {
			return nil, nil, 0, err
		}
		k, err := d.bytes(n)
		if err != nil {
			return nil, nil, 0, err
		}
		var key string
		switch {
		case next < len(known) && known[next] == string(k):
			key = known[next]
			next++
		case next+1 < len(known) && known[next+1] == string(k): // the handler deleted one
			key = known[next+1]
			next += 2
		default:
			key = goString(k)
		}
		from := len(buf)
		var v any
		if buf, v, err = d.jsonValue(buf, 1); err != nil {
			return nil, nil, 0, err
		}
		env[key] = v
		spans = append(spans, envSpan{key, from, len(buf)})
	}
	s.buf = buf
	all := bytes.Clone(buf)
	if len(env) < len(spans) {
		spans = lastSpans(spans)
	}
	fields := make(exec.Fields, len(spans))
	size := 2 // the braces of the whole object, to compare with MaxOutputBytes
	for i, sp := range spans {
		fields[i] = exec.Field{Key: sp.key, Value: all[sp.start:sp.end:sp.end]}
		size += len(sp.key) + 4 + sp.end - sp.start
	}
	return env, fields, size, nil
}

// lastSpans keeps, of spans with the same key, the last one, as the env map does. A dict's
// keys are distinct; only a crafted reply repeats one.
func lastSpans(spans []envSpan) []envSpan {
	last := make(map[string]int, len(spans))
	for i, sp := range spans {
		last[sp.key] = i
	}
	kept := spans[:0]
	for i, sp := range spans {
		if last[sp.key] == i {
			kept = append(kept, sp)
		}
	}
	return kept
}

// jsonValue appends the JSON text of the next value, as d.json does, and returns the value
// d.value gives for it. A scalar is read once for both; a container is read twice.
func (d *decoder) jsonValue(dst []byte, depth int) ([]byte, any, error) {
	if rest := d.b[d.pos:]; len(rest) > 0 {
		switch rest[0] {
		case mFloat:
			if len(rest) >= 9 {
				f := math.Float64frombits(binary.LittleEndian.Uint64(rest[1:]))
				if !math.IsNaN(f) && !math.IsInf(f, 0) {
					d.pos += 9
					return appendPyFloat(dst, f), f, nil
				}
			}
		case mInt:
			if len(rest) >= 5 {
				n := int(int32(binary.LittleEndian.Uint32(rest[1:])))
				d.pos += 5
				return strconv.AppendInt(dst, int64(n), 10), n, nil
			}
		case mUnicode:
			if len(rest) >= 5 {
				n := int(int32(binary.LittleEndian.Uint32(rest[1:])))
				if n >= 0 && n <= len(rest)-5 {
					s := rest[5 : 5+n]
					d.pos += 5 + n
					return appendPyString(dst, s), goString(s), nil
				}
			}
		}
	}
	start := d.pos
	dst, err := d.json(dst, compactSeparators, depth)
	if err != nil {
		return dst, nil, err
	}
	d.pos = start
	v, err := d.value(depth)
	return dst, v, err
}

// appendPyFloat appends float64 f (finite) as Python's repr(f), which json.dumps uses: the
// shortest repr, in positional notation when the decimal exponent is in [-4, 16), with ".0" on
// integral values.
func appendPyFloat(dst []byte, f float64) []byte {
	if a := math.Abs(f); a >= 1e-4 && a < 1e16 {
		// The decimal exponent of the shortest repr is in [-4, 16) exactly when f is in this
		// range (10**16 is a double; the shortest repr of a double above 1e-4 is not below
		// 10**-4): positional notation.
		if out, ok := appendShortDecimal(dst, f); ok {
			return out
		}
		start := len(dst)
		dst = strconv.AppendFloat(dst, f, 'f', -1, 64) // the same shortest digits as 'e'
		if bytes.IndexByte(dst[start:], '.') < 0 {
			dst = append(dst, ".0"...)
		}
		return dst
	}
	return appendPyFloatGeneric(dst, f)
}

// appendShortDecimal is the fast path of appendPyFloat for values with few decimals (a
// round(x, 2), a count): the first p in 0..4 for which some m/10**p (m an integer below 10**15)
// reads back as f gives the repr, m with p decimals. That decimal is the shortest (one with
// fewer decimals would have been found first) and the only one with p decimals to read back as
// f (below 10**15, a double's spacing is under 10**-p), as repr requires. m and 10**p are
// exact doubles, so m / 10**p is the correctly rounded quotient: what reading the decimal gives.
// ok is false for other values; f must be finite, nonzero, and below 1e16 in magnitude.
func appendShortDecimal(dst []byte, f float64) ([]byte, bool) {
	for p, scale := range [...]float64{1, 1e1, 1e2, 1e3, 1e4} {
		m := math.Round(f * scale)
		if math.Abs(m) >= 1e15 {
			return dst, false
		}
		if m/scale != f {
			continue
		}
		// Digits from the right: p decimals, the point, then the integer part (0 at least).
		var buf [24]byte
		u, i := uint64(math.Abs(m)), len(buf)
		if p == 0 {
			i -= 2
			buf[i], buf[i+1] = '.', '0'
		} else {
			for range p {
				i--
				buf[i] = byte('0' + u%10)
				u /= 10
			}
			i--
			buf[i] = '.'
		}
		for {
			i--
			buf[i] = byte('0' + u%10)
			if u /= 10; u == 0 {
				break
			}
		}
		if m < 0 {
			i--
			buf[i] = '-'
		}
		return append(dst, buf[i:]...), true
	}
	return dst, false
}

// appendPyFloatGeneric is appendPyFloat for any finite f, from Go's shortest 'e' formatting.
func appendPyFloatGeneric(dst []byte, f float64) []byte {
	if f == 0 {
		if math.Signbit(f) {
			return append(dst, "-0.0"...)
		}
		return append(dst, "0.0"...)
	}
	var tmp [32]byte
	e := strconv.AppendFloat(tmp[:0], f, 'e', -1, 64) // [-]d[.ddd]e±XX
	if e[0] == '-' {
		dst = append(dst, '-')
		e = e[1:]
	}
	i := 0
	for e[i] != 'e' {
		i++
	}
	mant := e[:i]
	exp, _ := strconv.Atoi(string(e[i+1:]))
	if exp < -4 || exp >= 16 {
		return append(dst, e...) // Go's 'e' form is Python's: 1e+16, 1.5e-05
	}
	var digits [24]byte
	nd := copy(digits[:], mant[:1])
	if len(mant) > 2 {
		nd += copy(digits[nd:], mant[2:])
	}
	ds := digits[:nd]
	if exp < 0 {
		dst = append(dst, "0."...)
		for range -exp - 1 {
			dst = append(dst, '0')
		}
		return append(dst, ds...)
	}
	if nd <= exp+1 {
		dst = append(dst, ds...)
		for range exp + 1 - nd {
			dst = append(dst, '0')
		}
		return append(dst, ".0"...)
	}
	dst = append(dst, ds[:exp+1]...)
	dst = append(dst, '.')
	return append(dst, ds[exp+1:]...)
}

const hexDigits = "0123456789abcdef"

// appendPyString appends s (UTF-8, possibly with surrogates as marshal writes them) quoted as
// json.dumps does with ensure_ascii: printable ASCII as is, the rest as \uXXXX escapes.
func appendPyString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c-0x20 < 0x7f-0x20 && c != '"' && c != '\\' { // printable ASCII but " and \
			j := i + 1
			for j < len(s) && s[j]-0x20 < 0x7f-0x20 && s[j] != '"' && s[j] != '\\' {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		var r rune
		size := 1
		switch {
		case c < 0x80:
			r = rune(c)
		case c == 0xed && i+2 < len(s) && s[i+1]&0xe0 == 0xa0 && s[i+2]&0xc0 == 0x80:
			r = rune(c&0x0f)<<12 | rune(s[i+1]&0x3f)<<6 | rune(s[i+2]&0x3f) // a lone surrogate
			size = 3
		default:
			r, size = utf8.DecodeRune(s[i:])
		}
		i += size
		switch r {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			if r > 0xffff {
				r -= 0x10000
				dst = appendU4(dst, 0xd800|(r>>10)&0x3ff)
				r = 0xdc00 | r&0x3ff
			}
			dst = appendU4(dst, r)
		}
	}
	return append(dst, '"')
}

func appendU4(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}
