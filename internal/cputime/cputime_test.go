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
