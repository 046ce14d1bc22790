package codec

import (
	"testing"

	"github.com/eventrt/eventrt/internal/cputime"
)

// The codec's benchmarks on the metrics document the examples read: decoding it (as the
// runner does for an input, with and without reused keys) and encoding it back.

func BenchmarkDecode(b *testing.B) {
	raw := sampleInput(b)
	b.ReportAllocs()
	cputime.ReportPerOp(b)
	for b.Loop() {
		if _, err := Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecoder(b *testing.B) {
	raw := sampleInput(b)
	dec := NewDecoder()
	b.ReportAllocs()
	cputime.ReportPerOp(b)
	for b.Loop() {
		if _, err := dec.Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	v, err := Decode(sampleInput(b))
	if err != nil {
		b.Fatal(err)
	}
	m := v.(map[string]any)
	m["host"], m["note"] = "web-01.example", "température \"moyenne\"\n"
	var e Encoder
	b.ReportAllocs()
	cputime.ReportPerOp(b)
	for b.Loop() {
		e.Reset("output", 1<<20, false)
		if err := e.Encode(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendString(b *testing.B) {
	strs := []string{"cpu_percent-12", "net_io_counters_eth0-bytes_sent", "température moyenne", "a \"quoted\"\tline\n"}
	var buf []byte
	b.ReportAllocs()
	cputime.ReportPerOp(b)
	for b.Loop() {
		buf = buf[:0]
		for _, s := range strs {
			buf = AppendString(buf, s)
		}
	}
}
