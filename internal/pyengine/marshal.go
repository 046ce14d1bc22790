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

// encoder appends Go values as marshal v2.
type encoder struct{ b []byte }

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
				return fmt.Errorf(": number %q: %w", s, err)
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
		return fmt.Errorf(": number %q is not an integer", s)
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
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		e.b = append(e.b, mDict)
		for _, k := range keys {
			e.str(k)
			if err := e.value(x[k], depth+1); err != nil {
				return fmt.Errorf("[%q]%w", k, err)
			}
		}
		e.b = append(e.b, mNull)
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

// value decodes the next marshal value into what exec.DecodeInput would produce for its JSON
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

// decodeEnv reads the env dict the worker returned: each value as Go value and as compact
// JSON, in one buffer. Keys must be str (the state hash has string fields). hint is the
// expected number of keys.
func decodeEnv(b []byte, hint int) (map[string]any, map[string][]byte, int, error) {
	d := decoder{b: b}
	if c, err := d.byte(); err != nil || c != mDict {
		return nil, nil, 0, errNeedJSON
	}
	env := make(map[string]any, hint)
	type span struct {
		key        string
		start, end int
	}
	spans := make([]span, 0, hint)
	buf := make([]byte, 0, 2*len(b))
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
		key := goString(k)
		start := d.pos
		from := len(buf)
		if buf, err = d.json(buf, compactSeparators, 1); err != nil {
			return nil, nil, 0, err
		}
		spans = append(spans, span{key, from, len(buf)})
		d.pos = start
		if env[key], err = d.value(1); err != nil {
			return nil, nil, 0, err
		}
	}
	fields := make(map[string][]byte, len(spans))
	size := 2 // the braces of the whole object, to compare with MaxOutputBytes
	for _, s := range spans {
		fields[s.key] = buf[s.start:s.end:s.end]
		size += len(s.key) + 4 + s.end - s.start
	}
	return env, fields, size, nil
}

// appendPyFloat appends float64 f (finite) as Python's repr(f), which json.dumps uses: the
// shortest repr, in positional notation when the decimal exponent is in [-4, 16), with ".0" on
// integral values.
func appendPyFloat(dst []byte, f float64) []byte {
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
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			j := i + 1
			for j < len(s) && s[j] >= 0x20 && s[j] < 0x7f && s[j] != '"' && s[j] != '\\' {
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
