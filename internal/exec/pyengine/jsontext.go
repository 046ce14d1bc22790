package pyengine

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonText appends the marshal form of JSON text src as Python's json.loads reads it: object
// keys in document order (a repeated key keeps its first position and its last value), integers
// as int of any size, numbers with a fraction or exponent as float, NaN/Infinity accepted. This
// is what a json.RawMessage input gets: the handler sees exactly what the course runtime's
// json.loads gave it, without a Go decode in between.
func (e *encoder) jsonText(src []byte) error {
	p := jsonParser{s: src, e: e}
	p.ws()
	if err := p.value(0); err != nil {
		return err
	}
	p.ws()
	if p.i != len(p.s) {
		return p.fail("extra data after the value")
	}
	return nil
}

type jsonParser struct {
	s []byte
	i int
	e *encoder
}

func (p *jsonParser) fail(msg string) error {
	return fmt.Errorf(": invalid JSON at offset %d: %s", p.i, msg)
}

func (p *jsonParser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) literal(word string) bool {
	if len(p.s)-p.i >= len(word) && string(p.s[p.i:p.i+len(word)]) == word {
		p.i += len(word)
		return true
	}
	return false
}

func (p *jsonParser) value(depth int) error {
	if depth > maxDepth {
		return p.fail("nested too deeply")
	}
	if p.i >= len(p.s) {
		return p.fail("unexpected end")
	}
	e := p.e
	switch c := p.s[p.i]; {
	case c == '{':
		p.i++
		e.b = append(e.b, mDict)
		p.ws()
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			e.b = append(e.b, mNull)
			return nil
		}
		for {
			p.ws()
			if p.i >= len(p.s) || p.s[p.i] != '"' {
				return p.fail("expected a string key")
			}
			if err := p.str(); err != nil {
				return err
			}
			p.ws()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return p.fail("expected ':'")
			}
			p.i++
			p.ws()
			if err := p.value(depth + 1); err != nil {
				return err
			}
			p.ws()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				continue
			}
			if p.i < len(p.s) && p.s[p.i] == '}' {
				p.i++
				e.b = append(e.b, mNull)
				return nil
			}
			return p.fail("expected ',' or '}'")
		}
	case c == '[':
		p.i++
		e.b = append(e.b, mList, 0, 0, 0, 0)
		at := len(e.b) - 4
		n := 0
		p.ws()
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			return nil
		}
		for {
			p.ws()
			if err := p.value(depth + 1); err != nil {
				return err
			}
			n++
			p.ws()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				continue
			}
			if p.i < len(p.s) && p.s[p.i] == ']' {
				p.i++
				binary.LittleEndian.PutUint32(e.b[at:], uint32(n))
				return nil
			}
			return p.fail("expected ',' or ']'")
		}
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case p.literal("null"):
		e.b = append(e.b, mNone)
	case p.literal("true"):
		e.b = append(e.b, mTrue)
	case p.literal("false"):
		e.b = append(e.b, mFalse)
	case p.literal("NaN"):
		e.float(math.Float64frombits(0x7ff8000000000000)) // CPython's NaN, bit for bit
	case p.literal("Infinity"):
		e.float(math.Inf(1))
	default:
		return p.fail(fmt.Sprintf("unexpected %q", c))
	}
	return nil
}

func (p *jsonParser) number() error {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
		if p.literal("Infinity") {
			p.e.float(math.Inf(-1))
			return nil
		}
	}
	digits := func() int {
		n := 0
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	intStart := p.i
	if n := digits(); n == 0 || (n > 1 && p.s[intStart] == '0') {
		p.i = intStart
		return p.fail("invalid number")
	}
	isFloat := false
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return p.fail("invalid number")
		}
		isFloat = true
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return p.fail("invalid number")
		}
		isFloat = true
	}
	// Converted to a string at each use rather than once: a string kept for the big.Int case
	// would be allocated for every number.
	text := p.s[start:p.i]
	if isFloat {
		f, err := strconv.ParseFloat(string(text), 64)
		if err != nil && !isRangeErr(err) { // out of range gives ±Inf or 0, as Python's float()
			return p.fail(err.Error())
		}
		p.e.float(f)
		return nil
	}
	if v, err := strconv.ParseInt(string(text), 10, 64); err == nil {
		p.e.int64(v)
		return nil
	}
	v, _ := new(big.Int).SetString(string(text), 10)
	p.e.bigInt(v)
	return nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// str appends the JSON string at p.i as a marshal str. \u escapes of lone surrogates are kept
// the way Python keeps them (marshal carries them as "surrogatepass" UTF-8).
func (p *jsonParser) str() error {
	p.i++ // the opening quote
	e := p.e
	e.b = append(e.b, mUnicode, 0, 0, 0, 0)
	at := len(e.b)
	for {
		j := p.i
		for j < len(p.s) && p.s[j] != '"' && p.s[j] != '\\' && p.s[j] >= 0x20 && p.s[j] < 0x80 {
			j++
		}
		e.b = append(e.b, p.s[p.i:j]...)
		p.i = j
		if p.i >= len(p.s) {
			return p.fail("unterminated string")
		}
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			binary.LittleEndian.PutUint32(e.b[at-4:], uint32(len(e.b)-at))
			return nil
		case c < 0x20:
			return p.fail("control character in a string")
		case c >= 0x80:
			r, size := utf8.DecodeRune(p.s[p.i:])
			e.b = utf8.AppendRune(e.b, r) // an invalid byte becomes U+FFFD, as in encoding/json
			p.i += size
		default: // a backslash
			if p.i+1 >= len(p.s) {
				return p.fail("unterminated string")
			}
			esc := p.s[p.i+1]
			p.i += 2
			switch esc {
			case '"', '\\', '/':
				e.b = append(e.b, esc)
			case 'b':
				e.b = append(e.b, '\b')
			case 'f':
				e.b = append(e.b, '\f')
			case 'n':
				e.b = append(e.b, '\n')
			case 'r':
				e.b = append(e.b, '\r')
			case 't':
				e.b = append(e.b, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return p.fail("invalid \\u escape")
				}
				if utf16.IsSurrogate(r) && r < 0xdc00 && p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					if lo, ok := p.hex4(); ok && lo >= 0xdc00 && lo <= 0xdfff {
						r = utf16.DecodeRune(r, lo)
					} else {
						p.i = save
					}
				}
				if utf16.IsSurrogate(r) {
					e.b = append(e.b, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
				} else {
					e.b = utf8.AppendRune(e.b, r)
				}
			default:
				return p.fail("invalid escape")
			}
		}
	}
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.s)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.s[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}
