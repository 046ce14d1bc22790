package codec

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/eventrt/eventrt/internal/quote"
)

// Decode decodes a JSON document into the value a program sees: objects become
// map[string]any, arrays []any, integers that fit in an int become int (so that they stay
// integers when encoded again, as in Python), other numbers float64. Otherwise it agrees with
// encoding/json (duplicate keys: the last wins; invalid UTF-8 becomes U+FFFD). An error is a
// [*DecodeError] naming line:column of the problem.
func Decode(raw []byte) (any, error) {
	return decodeJSON(raw)
}

// DecodeFields decodes a map of JSON values (the fields of the state hash, one per env key).
// An error is a [*DecodeError] naming the field.
func DecodeFields(fields map[string]string) (map[string]any, error) {
	env := make(map[string]any, len(fields))
	for k, raw := range fields {
		v, err := decodeJSON([]byte(raw))
		if err != nil {
			var de *DecodeError
			if errors.As(err, &de) {
				de.Field = k
			}
			return nil, err
		}
		env[k] = v
	}
	return env, nil
}

// Decoder decodes like [Decode], but remembers the object keys it has seen (up to a
// bound) and hands out the same strings again: decoding a stream of documents of one shape
// then allocates nothing per key. It is safe for concurrent use.
type Decoder struct {
	pool sync.Pool // of *decoder, each with its own key table, so no locking
}

// Bounds of a Decoder's key table, per pooled decoder: a document with many distinct keys
// (ids as keys, say) must not grow it without limit.
const (
	maxInternedKeys   = 4096
	maxInternedKeyLen = 128
)

// NewDecoder returns a Decoder.
func NewDecoder() *Decoder {
	return &Decoder{pool: sync.Pool{New: func() any {
		return &decoder{keys: make(map[string]string)}
	}}}
}

// Decode is [Decode] with key reuse.
func (dec *Decoder) Decode(raw []byte) (any, error) {
	d := dec.pool.Get().(*decoder)
	d.data, d.pos, d.nkey = raw, 0, 0
	v, err := d.document()
	d.release()
	dec.pool.Put(d)
	return v, err
}

func decodeJSON(raw []byte) (any, error) {
	// Room for the members of a flat object of short fields, in one allocation.
	d := decoder{data: raw, pairs: make([]pair, 0, min(len(raw)/16, 1024))}
	return d.document()
}

func (d *decoder) document() (any, error) {
	d.skipSpace()
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return v, nil
}

// end checks that nothing but white space follows the top-level value.
func (d *decoder) end() error {
	d.skipSpace()
	if d.pos < len(d.data) {
		return d.syntaxError("after top-level value")
	}
	return nil
}

// decoder is a recursive-descent JSON decoder. It exists because encoding/json cannot keep
// integers apart from floats without json.Number strings, and because decoding the input is
// a large share of a run's cost; FuzzDecodeAgainstStdlib checks it against encoding/json.
// The grammar (members, elements) and the lexing of strings, numbers and literals are shared
// by its two consumers: value, which builds the values of [Decode], and walkValue, which hands
// tokens to a [Visitor] (walk.go).
type decoder struct {
	data []byte
	pos  int
	// py reads Python's dialect of JSON (see [Python]).
	py bool
	// v, when not nil, receives the tokens of a walk, and maxDepth bounds its nesting.
	v        Visitor
	maxDepth int
	// buf holds the last string with escapes decoded.
	buf []byte
	// pairs is a stack of the members of the objects being decoded, so that each map is
	// allocated once at its final size.
	pairs []pair
	// keys, when not nil, interns object keys (see Decoder).
	keys map[string]string
	// shape is the sequence of interned keys of the previous document, in the order they
	// appeared, and nkey the position in it of the next key: documents of one shape repeat
	// the sequence, and comparing the bytes with the key expected there is much cheaper than
	// hashing them for a lookup in keys.
	shape []string
	nkey  int
}

// maxStringBuf bounds the buffer a reused decoder keeps for strings with escapes.
const maxStringBuf = 64 << 10

// release drops what a reused decoder must not keep: the document, the values of unfinished
// objects an error left behind, a buffer grown large, the visitor.
func (d *decoder) release() {
	d.data, d.v = nil, nil
	clear(d.pairs)
	d.pairs = d.pairs[:0]
	if cap(d.buf) > maxStringBuf {
		d.buf = nil
	}
}

type pair struct {
	key string
	val any
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) (any, error) {
	if d.pos >= len(d.data) {
		return nil, d.errorf(nil, "unexpected end of JSON input")
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		if depth >= MaxDepth {
			return nil, d.errorf(ErrTooDeep, "exceeded max nesting depth %d", MaxDepth)
		}
		return d.object(depth + 1)
	case c == '[':
		if depth >= MaxDepth {
			return nil, d.errorf(ErrTooDeep, "exceeded max nesting depth %d", MaxDepth)
		}
		return d.array(depth + 1)
	case c == '"':
		s, err := d.string()
		if err != nil {
			return nil, err
		}
		return s, nil
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case c == 't':
		return d.literal("true", true)
	case c == 'f':
		return d.literal("false", false)
	case c == 'n':
		return d.literal("null", nil)
	default:
		return nil, d.syntaxError("looking for beginning of value")
	}
}

func (d *decoder) literal(word string, v any) (any, error) {
	for i := 0; i < len(word); i++ {
		if d.pos >= len(d.data) {
			return nil, d.errorf(nil, "unexpected end of JSON input")
		}
		if d.data[d.pos] != word[i] {
			return nil, d.syntaxError("in literal " + word + " (expecting " + quoteChar(word[i]) + ")")
		}
		d.pos++
	}
	return v, nil
}

func (d *decoder) object(depth int) (any, error) {
	mark := len(d.pairs)
	err := d.members(func(k string) error {
		v, err := d.value(depth)
		d.pairs = append(d.pairs, pair{k, v})
		return err
	})
	if err != nil {
		return nil, err
	}
	members := d.pairs[mark:]
	m := make(map[string]any, len(members))
	for _, p := range members {
		m[p.key] = p.val
	}
	clear(members) // drop references held by the shared stack
	d.pairs = d.pairs[:mark]
	return m, nil
}

// members decodes the object at d.pos ('{'): for each member it decodes the key and calls
// member with it, d.pos at the value, which member decodes.
func (d *decoder) members(member func(key string) error) error {
	d.pos++ // {
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return nil
	}
	for {
		if d.pos >= len(d.data) {
			return d.errorf(nil, "unexpected end of JSON input")
		}
		if d.data[d.pos] != '"' {
			return d.syntaxError("looking for beginning of object key string")
		}
		k, err := d.key()
		if err != nil {
			return err
		}
		d.skipSpace()
		if d.pos >= len(d.data) {
			return d.errorf(nil, "unexpected end of JSON input")
		}
		if d.data[d.pos] != ':' {
			return d.syntaxError("after object key")
		}
		d.pos++
		d.skipSpace()
		if err := member(k); err != nil {
			return err
		}
		d.skipSpace()
		if d.pos >= len(d.data) {
			return d.errorf(nil, "unexpected end of JSON input")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
			d.skipSpace()
		case '}':
			d.pos++
			return nil
		default:
			return d.syntaxError("after object key:value pair")
		}
	}
}

func (d *decoder) array(depth int) (any, error) {
	var out []any
	err := d.elements(func() error {
		v, err := d.value(depth)
		out = append(out, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []any{}
	}
	return out, nil
}

// elements decodes the array at d.pos ('['): for each element it calls element, d.pos at the
// element, which element decodes.
func (d *decoder) elements(element func() error) error {
	d.pos++ // [
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return nil
	}
	for {
		if err := element(); err != nil {
			return err
		}
		d.skipSpace()
		if d.pos >= len(d.data) {
			return d.errorf(nil, "unexpected end of JSON input")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
			d.skipSpace()
		case ']':
			d.pos++
			return nil
		default:
			return d.syntaxError("after array element")
		}
	}
}

// key decodes an object key, through the intern table when there is one; in a walk, it hands
// the key to the visitor instead.
func (d *decoder) key() (string, error) {
	if d.v != nil {
		k, err := d.stringBytes()
		if err == nil {
			d.v.Key(k)
		}
		return "", err
	}
	if d.keys == nil {
		return d.string()
	}
	start := d.pos + 1
	if i := d.nkey; i < len(d.shape) {
		// The key expected here, from the previous document: comparing it whole is cheaper
		// than scanning the key byte by byte first. A match ends at a quote, so the bytes
		// are exactly the key (the interned key has no quote, backslash or control byte).
		k := d.shape[i]
		if end := start + len(k); end < len(d.data) && d.data[end] == '"' && string(d.data[start:end]) == k {
			d.pos = end + 1
			d.nkey++
			return k, nil
		}
	}
	end := start
	for end < len(d.data) && d.data[end] != '"' && d.data[end] != '\\' && d.data[end] >= 0x20 && d.data[end] < utf8.RuneSelf {
		end++
	}
	if end < len(d.data) && d.data[end] == '"' && end-start <= maxInternedKeyLen {
		raw := d.data[start:end]
		d.pos = end + 1
		i := d.nkey
		d.nkey++
		if i < len(d.shape) && d.shape[i] == string(raw) {
			return d.shape[i], nil
		}
		k, ok := d.keys[string(raw)]
		if !ok {
			k = string(raw)
			if len(d.keys) < maxInternedKeys {
				d.keys[k] = k
			}
		}
		switch {
		case i < len(d.shape):
			d.shape[i] = k
		case i == len(d.shape) && i < maxInternedKeys:
			d.shape = append(d.shape, k)
		}
		return k, nil
	}
	return d.string()
}

// string decodes the string literal at d.pos. The common case (no escapes, valid UTF-8) is a
// single copy.
func (d *decoder) string() (string, error) {
	b, err := d.stringBytes()
	return string(b), err
}

// stringBytes reads the string literal at d.pos: its bytes in the input when it has no escape
// and is valid UTF-8, else decoded into d.buf, valid until the next string literal.
func (d *decoder) stringBytes() ([]byte, error) {
	d.pos++ // "
	start := d.pos
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			return d.data[start : d.pos-1], nil
		case c == '\\':
			var err error
			d.buf, err = d.unquote(append(d.buf[:0], d.data[start:d.pos]...))
			return d.buf, err
		case c < 0x20:
			return nil, d.syntaxError("in string literal")
		case c < utf8.RuneSelf:
			d.pos++
		default:
			r, size := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && size == 1 {
				var err error
				d.buf, err = d.unquote(append(d.buf[:0], d.data[start:d.pos]...))
				return d.buf, err
			}
			d.pos += size
		}
	}
	return nil, d.errorf(nil, "unexpected end of JSON input")
}

// unquote appends the rest of the string literal d.pos is in, decoded, to buf, and moves past
// its closing quote. Invalid UTF-8 becomes U+FFFD, as in encoding/json; so does a \u escape of
// a lone surrogate, but in Python's dialect, which keeps it as Python does (see [Python]).
func (d *decoder) unquote(buf []byte) ([]byte, error) {
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			return buf, nil
		case c == '\\':
			d.pos++
			if d.pos >= len(d.data) {
				return buf, d.errorf(nil, "unexpected end of JSON input")
			}
			switch e := d.data[d.pos]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := d.hex4(d.pos + 1)
				if !ok {
					return buf, d.escapeError()
				}
				d.pos += 4
				if utf16.IsSurrogate(r) {
					// A valid pair decodes to one rune; anything else is U+FFFD, as in
					// encoding/json, or the surrogate itself in Python's dialect.
					if r2, ok := d.hex4(d.pos + 3); ok && d.pos+2 < len(d.data) &&
						d.data[d.pos+1] == '\\' && d.data[d.pos+2] == 'u' {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							d.pos += 6
							buf = utf8.AppendRune(buf, dec)
							break
						}
					}
					if d.py {
						buf = appendSurrogate(buf, r)
						break
					}
					r = utf8.RuneError
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return buf, d.escapeError()
			}
			d.pos++
		case c < 0x20:
			return buf, d.syntaxError("in string literal")
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			d.pos++
		default:
			r, size := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && size == 1 {
				buf = append(buf, "\uFFFD"...)
			} else {
				buf = append(buf, d.data[d.pos:d.pos+size]...)
			}
			d.pos += size
		}
	}
	return buf, d.errorf(nil, "unexpected end of JSON input")
}

// appendSurrogate appends surrogate code point r encoded as UTF-8 encodes other code points
// (WTF-8), as CPython's marshal carries a lone surrogate ("surrogatepass").
func appendSurrogate(buf []byte, r rune) []byte {
	return append(buf, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
}

func (d *decoder) escapeError() error {
	if d.pos >= len(d.data) {
		return d.errorf(nil, "unexpected end of JSON input")
	}
	// Point at the first bad character of the escape.
	for i := d.pos + 1; i < d.pos+5 && i < len(d.data) && d.data[d.pos] == 'u'; i++ {
		if _, ok := unhex(d.data[i]); !ok {
			d.pos = i
			break
		}
	}
	if d.pos >= len(d.data) {
		return d.errorf(nil, "unexpected end of JSON input")
	}
	return d.syntaxError("in string escape code")
}

func (d *decoder) hex4(at int) (rune, bool) {
	if at+4 > len(d.data) {
		return 0, false
	}
	var r rune
	for _, c := range d.data[at : at+4] {
		n, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(n)
	}
	return r, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number decodes a JSON number: an int when it is an integer literal that fits, else a
// float64.
func (d *decoder) number() (any, error) {
	n, err := d.numberNum()
	if err != nil {
		return nil, err
	}
	return n.Value(), nil
}

// numberNum decodes the number literal at d.pos, unboxed: an int when it is an integer that
// fits, else a float64.
func (d *decoder) numberNum() (Num, error) {
	start := d.pos
	neg := d.data[d.pos] == '-'
	if neg {
		d.pos++
	}
	// The digits are accumulated while they are scanned (the usual number is read in one
	// pass); past 19 of them n may overflow, and the slow paths below take the literal.
	var n uint64
	digits := 0
	switch {
	case d.pos >= len(d.data):
		return Num{}, d.errorf(nil, "unexpected end of JSON input")
	case d.data[d.pos] == '0':
		d.pos++
		digits = 1
	case isDigit(d.data[d.pos]):
		for d.pos < len(d.data) && isDigit(d.data[d.pos]) {
			n = n*10 + uint64(d.data[d.pos]-'0')
			digits++
			d.pos++
		}
	default:
		return Num{}, d.syntaxError("in numeric literal")
	}
	integer, frac := true, 0
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		integer = false
		d.pos++
		if d.pos >= len(d.data) {
			return Num{}, d.errorf(nil, "unexpected end of JSON input")
		}
		if !isDigit(d.data[d.pos]) {
			return Num{}, d.syntaxError("after decimal point in numeric literal")
		}
		for d.pos < len(d.data) && isDigit(d.data[d.pos]) {
			n = n*10 + uint64(d.data[d.pos]-'0')
			digits++
			frac++
			d.pos++
		}
	}
	exponent := false
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		integer, exponent = false, true
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if d.pos >= len(d.data) {
			return Num{}, d.errorf(nil, "unexpected end of JSON input")
		}
		if !isDigit(d.data[d.pos]) {
			return Num{}, d.syntaxError("in exponent of numeric literal")
		}
		for d.pos < len(d.data) && isDigit(d.data[d.pos]) {
			d.pos++
		}
	}
	switch {
	case integer && digits <= 18: // cannot overflow an int64
		i := int64(n)
		if neg {
			i = -i
		}
		if i >= math.MinInt && i <= math.MaxInt {
			return Num{I: int(i), IsInt: true}, nil
		}
	case !exponent && digits <= 15:
		// Most measurements: the digits as an integer and the power of ten are both exact
		// in a float64 (frac < len(pow10)), so one division, which IEEE 754 rounds
		// correctly, gives the float nearest the decimal, as ParseFloat does.
		f := float64(n) / pow10[frac]
		if neg {
			f = -f
		}
		return Num{F: f}, nil
	}
	lit := d.data[start:d.pos]
	if integer {
		if i, err := strconv.ParseInt(string(lit), 10, 64); err == nil && i >= math.MinInt && i <= math.MaxInt {
			return Num{I: int(i), IsInt: true}, nil
		}
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil && d.py {
		// Python's float() of a number out of range is infinite (the literal is valid, so
		// range is the only error); an integer of any size is read from the literal.
		return Num{F: f}, nil
	}
	if err != nil {
		d.pos = start
		return Num{}, d.errorf(nil, "number %s is out of range", quote.Bytes(lit))
	}
	return Num{F: f}, nil
}

func (d *decoder) syntaxError(context string) error {
	return d.errorf(nil, "invalid character %s %s", quoteChar(d.data[d.pos]), context)
}

func (d *decoder) errorf(cause error, format string, args ...any) error {
	line, col := Position(string(d.data), d.pos)
	return &DecodeError{Line: line, Column: col, Offset: d.pos, Message: fmt.Sprintf(format, args...), Err: cause}
}

// quoteChar formats c like encoding/json's syntax errors do.
func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

// Num is a JSON number decoded without boxing it: an int when it is an integer literal that
// fits, else a float64.
type Num struct {
	F     float64
	I     int
	IsInt bool
}

// Value is n boxed, as [Decode] gives it.
func (n Num) Value() any {
	if n.IsInt {
		return n.I
	}
	return n.F
}

// pow10 are the powers of ten exact in a float64.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}
