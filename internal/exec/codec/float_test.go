package codec

import (
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
