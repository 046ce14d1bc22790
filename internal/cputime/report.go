package cputime

import "testing"

// ReportPerOp adds cpu-ns/op to b: the CPU time the process uses from this call to the end of
// b, per iteration, GC included. Call it right before the loop.
func ReportPerOp(b *testing.B) {
	b.Helper()
	start, err := Self()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if end, err := Self(); err == nil && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	})
}
