//go:build unix

package cputime

import "testing"

func TestSelfAdvances(t *testing.T) {
	before, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	x := 1
	for after := before; after == before; {
		for i := range 1 << 20 {
			x = x*31 + i
		}
		if after, err = Self(); err != nil {
			t.Fatal(err)
		}
		if after < before {
			t.Fatalf("CPU time went back: %v -> %v", before, after)
		}
	}
	_ = x
}

// TestReportPerOp: a benchmark that burns CPU reports cpu-ns/op, and not more per iteration
// than the whole run took.
func TestReportPerOp(t *testing.T) {
	x := 1
	r := testing.Benchmark(func(b *testing.B) {
		ReportPerOp(b)
		for b.Loop() {
			for i := range 1 << 16 {
				x = x*31 + i
			}
		}
	})
	got, ok := r.Extra["cpu-ns/op"]
	if !ok || got <= 0 || got > float64(r.T.Nanoseconds())*2 {
		t.Errorf("cpu-ns/op %v (reported %v) over %d iterations in %v", got, ok, r.N, r.T)
	}
	_ = x
}
