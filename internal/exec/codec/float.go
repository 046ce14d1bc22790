package codec

import "math"

// ShortDecimal returns f as m / 10**p with p in 0..4 and |m| < 10**15, the fewest decimals
// first, for 1e-4 <= |f| < 1e15: most measurements, counts and round(x, n) results. That
// decimal is then f's shortest representation, the digits strconv's shortest formatting gives,
// found without its general algorithm: m and 10**p are exact doubles, so m / 10**p is the
// correctly rounded quotient, what reading the decimal gives; a decimal with fewer digits would
// have fewer decimals and been found first; and below 10**15 / 10**p a double's spacing is
// under 10**-p, so no other decimal with p decimals reads back as f. ok is false for other
// values. Both engines' float formatting (JSON here, Python's repr in pyengine) start here.
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
