package codec

import (
	"bytes"
	"math"
	"strconv"
)

// ShortDecimal returns f as m / 10**p with p in 0..4 and |m| < 10**15, the fewest decimals
// first, for 1e-4 <= |f| < 1e15: most measurements, counts and round(x, n) results. That
// decimal is then f's shortest representation, the digits strconv's shortest formatting gives,
// found without its general algorithm: m and 10**p are exact doubles, so m / 10**p is the
// correctly rounded quotient, what reading the decimal gives; a decimal with fewer digits would
// have fewer decimals and been found first; and below 10**15 / 10**p a double's spacing is
// under 10**-p, so no other decimal with p decimals reads back as f. ok is false for other
// values. Both float formats, [AppendFloat] and [AppendPyFloat], start here.
func ShortDecimal(f float64) (m int64, p int, ok bool) {
	if a := math.Abs(f); !(a >= 1e-4 && a < 1e15) {
		return 0, 0, false
	}
	// Most values have at most two decimals: one multiplication finds those, and the integer
	// m * 100 then tells how many of the two are needed (a decimal of fewer decimals is also
	// one of two, and only one of two decimals reads back as f).
	if c := math.Round(f * 100); math.Abs(c) < 1e15 && c/100 == f {
		n := int64(c)
		switch {
		case n%100 == 0:
			return n / 100, 0, true
		case n%10 == 0:
			return n / 10, 1, true
		}
		return n, 2, true
	}
	for p, scale := range [...]float64{1, 1e1, 1e2, 1e3, 1e4} {
		r := math.Round(f * scale)
		if math.Abs(r) >= 1e15 {
			return 0, 0, false
		}
		if r/scale == f {
			return int64(r), p, true
		}
	}
	return 0, 0, false
}

// AppendDecimal appends m / 10**p in positional notation, with p decimals (at least one digit
// before the point). pointZero writes an integral value (p = 0) with ".0", as Python's repr
// does; JSON has none.
func AppendDecimal(dst []byte, m int64, p int, pointZero bool) []byte {
	var buf [24]byte
	u, i := uint64(m), len(buf)
	if m < 0 {
		u = uint64(-m)
	}
	switch {
	case p > 0:
		for range p {
			i--
			buf[i] = byte('0' + u%10)
			u /= 10
		}
		i--
		buf[i] = '.'
	case pointZero:
		i -= 2
		buf[i], buf[i+1] = '.', '0'
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
	return append(dst, buf[i:]...)
}

// AppendFloat appends f as encoding/json writes a float of that many bits (32 or 64).
func AppendFloat(b []byte, f float64, bits int) []byte {
	if bits == 64 {
		if m, p, ok := ShortDecimal(f); ok {
			return AppendDecimal(b, m, p, false)
		}
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// AppendPyFloat appends f (finite) as Python's repr(f) writes it, which json.dumps uses: the
// shortest digits, in positional notation when the decimal exponent is in [-4, 16), with ".0"
// on integral values.
func AppendPyFloat(dst []byte, f float64) []byte {
	if a := math.Abs(f); a >= 1e-4 && a < 1e16 {
		// The decimal exponent of the shortest repr is in [-4, 16) exactly when f is in this
		// range (10**16 is a double; the shortest repr of a double above 1e-4 is not below
		// 10**-4): positional notation.
		if m, p, ok := ShortDecimal(f); ok {
			return AppendDecimal(dst, m, p, true)
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

// appendPyFloatGeneric is AppendPyFloat for any finite f, from Go's shortest 'e' formatting.
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
