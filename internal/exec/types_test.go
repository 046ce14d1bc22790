package exec

import (
	"testing"
	"unsafe"
)

// TestBuffersReset: the results after a Reset reuse the memory of those before it, except
// that of one large result, and Fields is empty but not nil for no fields.
func TestBuffersReset(t *testing.T) {
	var b Buffers
	out := b.Keep([]byte("hello"))
	fs := append(b.Fields(1), Field{Key: "k", Value: b.Keep([]byte("1"))})
	if string(out) != "hello" || len(fs) != 1 || string(fs[0].Value) != "1" {
		t.Fatalf("kept %q and %v", out, fs)
	}
	if cap(out) != len(out) {
		t.Fatalf("a kept result has room to append into the next: cap %d, len %d", cap(out), len(out))
	}
	array := unsafe.SliceData(b.bytes)
	b.Reset()
	if again := b.Keep([]byte("world")); unsafe.SliceData(again) != array {
		t.Fatal("the result after Reset did not reuse the buffers")
	}
	if f := b.Fields(0); f == nil {
		t.Fatal("Fields(0) is nil: nil says the fields were not made (Call.EnvOnly)")
	}
	var none *Buffers
	if f := none.Fields(0); f == nil || string(none.Keep([]byte("x"))) != "x" {
		t.Fatal("a nil Buffers must still give non-nil fields and copies")
	}
	b.Keep(make([]byte, 100000))
	b.Reset()
	if cap(b.bytes) > maxKeptBuffer {
		t.Fatalf("Reset kept %d bytes", cap(b.bytes))
	}
}
