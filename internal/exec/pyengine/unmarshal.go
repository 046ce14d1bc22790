package pyengine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"
)

// Decoding the worker's replies: marshal to the JSON text json.dumps would write, and the env
// to values and fields (see marshal.go for the format).

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
		return codec.AppendPyFloat(dst, f), nil
	case mUnicode:
		n, err := d.i32()
		if err != nil {
			return dst, err
		}
		s, err := d.bytes(n)
		return codec.AppendPyString(dst, s), err
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
		return codec.AppendPyString(dst, s), err
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
					return codec.AppendPyFloat(dst, f), f, nil
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
					return codec.AppendPyString(dst, s), goString(s), nil
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
