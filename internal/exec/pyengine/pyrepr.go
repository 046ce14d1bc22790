package pyengine

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/eventrt/eventrt/internal/exec/codec"
)

// Python's json.dumps spelling of floats (repr) and strings (ensure_ascii), which the
// decoder writes; the few-decimals shortcut is the codec's, shared with the expr engine.

// appendPyFloat appends float64 f (finite) as Python's repr(f), which json.dumps uses: the
// shortest repr, in positional notation when the decimal exponent is in [-4, 16), with ".0" on
// integral values.
func appendPyFloat(dst []byte, f float64) []byte {
	if a := math.Abs(f); a >= 1e-4 && a < 1e16 {
		// The decimal exponent of the shortest repr is in [-4, 16) exactly when f is in this
		// range (10**16 is a double; the shortest repr of a double above 1e-4 is not below
		// 10**-4): positional notation.
		if m, p, ok := codec.ShortDecimal(f); ok {
			return codec.AppendDecimal(dst, m, p, true)
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
