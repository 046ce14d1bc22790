package stream

import (
	"strings"
	"testing"
	"unsafe"
)

// TestBytesOfSharesTheString checks what bytesOf assumes: the slice it makes is the string's
// own bytes, of its length, so an entry's field reaches the decoder without a copy, and
// nothing is left to write past the string (capacity = length).
func TestBytesOfSharesTheString(t *testing.T) {
	s := strings.Repeat(`{"n":1}`, 3)
	b := bytesOf(s)
	if string(b) != s || len(b) != len(s) || cap(b) != len(s) {
		t.Fatalf("bytesOf gave %q (len %d, cap %d) for %q", b, len(b), cap(b), s)
	}
	if unsafe.SliceData(b) != unsafe.StringData(s) {
		t.Fatal("bytesOf copied the string")
	}
	if b := bytesOf(""); len(b) != 0 {
		t.Fatalf("bytesOf of the empty string: %q", b)
	}
}
