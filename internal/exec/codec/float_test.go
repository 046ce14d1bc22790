package codec

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestShortDecimalLikeStrconv checks the few-decimals shortcut against strconv's shortest
// formatting: on values it takes (hundredths across magnitudes, both signs) and on values it
// must leave (other fractions, tiny and huge numbers, non-floats of the grid).
func TestShortDecimalLikeStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var vals []float64
	for range 50000 {
		scale := math.Pow(10, float64(rng.IntN(14)))
		k := math.Round(rng.Float64() * scale * 100)
		vals = append(vals, k/100, -k/100, rng.Float64()*scale, math.Nextafter(k/100, math.Inf(1)))
	}
	vals = append(vals, 0.01, 0.005, 0.015, 1e13-0.01, 1e13, 9999999999999.99, 0.1, 0.2, 0.3,
		16.74, 27.05, 32.4, 7, 1e-7, 1e21, math.MaxFloat64, math.SmallestNonzeroFloat64)
	took := 0
	for _, f := range vals {
		want := string(strconv.AppendFloat(nil, f, 'f', -1, 64))
		m, p, ok := ShortDecimal(f)
		if !ok {
			continue
		}
		got := AppendDecimal(nil, m, p, false)
		took++
		if string(got) != want {
			t.Fatalf("ShortDecimal(%v) gives %s, strconv gives %s", f, got, want)
		}
	}
	if took < len(vals)/3 {
		t.Errorf("the shortcut took only %d of %d values", took, len(vals))
	}
}

// TestShortDecimalFloats: the fast path for floats with few decimals writes what the general
// formatting does, around its limits (1e-4, 1e15, 1e16, powers of ten) and on random values.
func TestShortDecimalFloats(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fast := 0
	check := func(f float64) {
		t.Helper()
		if f == 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			return
		}
		got, want := AppendPyFloat(nil, f), appendPyFloatGeneric(nil, f)
		if !bytes.Equal(got, want) {
			t.Fatalf("%b: %s, want %s", f, got, want)
		}
		if a := math.Abs(f); a >= 1e-4 && a < 1e16 {
			if _, _, ok := ShortDecimal(f); ok {
				fast++
			}
		}
	}
	var edges []float64
	for k := -6; k <= 17; k++ {
		p := math.Pow10(k)
		edges = append(edges, p, 9*p, 9.5*p, 0.5*p, 1.5*p, 99.99*p, 0.1*p+0.2*p)
	}
	edges = append(edges, 999999999999999.9, 99999999999999.99, 9999999999999.999, 0.00099995,
		1e15-1, 1e15+1, 1e15-0.5, 1<<53, 1<<53+2, 9007199254740993, 0.30000000000000004, 9.995, 2.675)
	for _, f := range edges {
		for _, g := range []float64{f, math.Nextafter(f, 0), math.Nextafter(f, math.Inf(1))} {
			check(g)
			check(-g)
		}
	}
	for range 200000 {
		m := float64(r.Int64N(1 << 53)) // scaled down to 0..17 digits
		m = math.Trunc(m / math.Pow10(r.IntN(17)))
		f := m / math.Pow10(r.IntN(8))
		if r.IntN(2) == 0 {
			f = -f
		}
		check(f)
		check(math.Nextafter(f, math.Inf(1)))
		check(math.Float64frombits(r.Uint64()))
	}
	if fast < 100000 {
		t.Errorf("only %d values took the fast path", fast)
	}
}
