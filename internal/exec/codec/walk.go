package codec

import "math"

// Dialect is the JSON a [Walker] reads.
type Dialect uint8

const (
	// Standard is JSON as [Decode] reads it (and encoding/json): a number out of float64's
	// range is an error, a \u escape of a lone surrogate becomes U+FFFD.
	Standard Dialect = iota
	// Python is JSON as Python's json.loads reads it: NaN, Infinity and -Infinity are numbers
	// (NaN with the bits of CPython's float("nan")), a number out of float64's range is
	// infinite (or zero), and a \u escape of a lone surrogate stays that surrogate, encoded
	// as UTF-8 encodes other code points (WTF-8, as CPython's marshal carries it). Integers of
	// any size are the consumer's to read from the literal [Visitor.Number] is given.
	Python
)

// Visitor receives the tokens of a document from [Walker.Walk], in document order. The byte
// slices it is given are valid only during the call.
type Visitor interface {
	// BeginObject starts an object; the mark it returns is handed back to EndObject.
	BeginObject() (mark int)
	// Key is the next member's key, decoded; its value follows.
	Key(k []byte)
	// EndObject ends the object begun with mark, which had n members (a repeated key counted
	// each time).
	EndObject(mark, n int)
	// BeginArray starts an array; the mark it returns is handed back to EndArray.
	BeginArray() (mark int)
	// EndArray ends the array begun with mark, which had n elements.
	EndArray(mark, n int)
	// String is a string value, decoded.
	String(s []byte)
	// Number is a number: lit is its literal, n its value as [Decode] gives it (an int when
	// the literal is an integer that fits, else the nearest float64), and integer whether
	// the literal is an integer (no fraction, no exponent), of whatever size.
	Number(lit []byte, n Num, integer bool)
	// Bool is true or false.
	Bool(b bool)
	// Null is null.
	Null()
}

// Walker reads JSON documents token by token, for a consumer that builds a form of its own
// (the Python engine writes marshal) with the grammar, lexing and error messages of
// [Decode]. The zero value reads [Standard] JSON nested up to [MaxDepth] levels. It keeps a
// buffer between documents; it is not safe for concurrent use.
type Walker struct {
	Dialect Dialect
	// MaxDepth bounds the nesting of arrays and objects; 0 means [MaxDepth].
	MaxDepth int
	d        decoder
}

// Walk reads the document raw, handing its tokens to v. An error is a [*DecodeError] naming
// line:column and offset of the problem; v has then been given the tokens before it.
func (w *Walker) Walk(raw []byte, v Visitor) error {
	d := &w.d
	d.data, d.pos, d.v, d.py = raw, 0, v, w.Dialect == Python
	d.maxDepth = w.MaxDepth
	if d.maxDepth <= 0 {
		d.maxDepth = MaxDepth
	}
	d.skipSpace()
	err := d.walkValue(0)
	if err == nil {
		err = d.end()
	}
	d.release()
	return err
}

// pythonNaN is the bits of CPython's float("nan"); Go's math.NaN has others.
const pythonNaN = 0x7ff8000000000000

// walkValue hands the value at d.pos to d.v: value's grammar, with tokens instead of values.
func (d *decoder) walkValue(depth int) error {
	if d.pos >= len(d.data) {
		return d.errorf(nil, "unexpected end of JSON input")
	}
	v := d.v
	switch c := d.data[d.pos]; {
	case c == '{' || c == '[':
		if depth >= d.maxDepth {
			return d.errorf(ErrTooDeep, "exceeded max nesting depth %d", d.maxDepth)
		}
		n := 0
		next := func() error {
			n++
			return d.walkValue(depth + 1)
		}
		if c == '[' {
			mark := v.BeginArray()
			if err := d.elements(next); err != nil {
				return err
			}
			v.EndArray(mark, n)
			break
		}
		mark := v.BeginObject()
		if err := d.members(func(string) error { return next() }); err != nil {
			return err
		}
		v.EndObject(mark, n)
	case c == '"':
		s, err := d.stringBytes()
		if err != nil {
			return err
		}
		v.String(s)
	case c == '-' && d.py && d.pos+1 < len(d.data) && d.data[d.pos+1] == 'I':
		return d.walkNonFinite("-Infinity", math.Inf(-1))
	case c == '-' || isDigit(c):
		start := d.pos
		n, err := d.numberNum()
		if err != nil {
			return err
		}
		lit := d.data[start:d.pos]
		v.Number(lit, n, n.IsInt || isIntegerLiteral(lit))
	case c == 't':
		if _, err := d.literal("true", nil); err != nil {
			return err
		}
		v.Bool(true)
	case c == 'f':
		if _, err := d.literal("false", nil); err != nil {
			return err
		}
		v.Bool(false)
	case c == 'n':
		if _, err := d.literal("null", nil); err != nil {
			return err
		}
		v.Null()
	case c == 'N' && d.py:
		return d.walkNonFinite("NaN", math.Float64frombits(pythonNaN))
	case c == 'I' && d.py:
		return d.walkNonFinite("Infinity", math.Inf(1))
	default:
		return d.syntaxError("looking for beginning of value")
	}
	return nil
}

// walkNonFinite hands Python's literal word for f to d.v as a number.
func (d *decoder) walkNonFinite(word string, f float64) error {
	start := d.pos
	if _, err := d.literal(word, nil); err != nil {
		return err
	}
	d.v.Number(d.data[start:d.pos], Num{F: f}, false)
	return nil
}

// isIntegerLiteral reports whether the number literal lit has neither fraction nor exponent.
func isIntegerLiteral(lit []byte) bool {
	for _, c := range lit {
		if c == '.' || c == 'e' || c == 'E' {
			return false
		}
	}
	return true
}
