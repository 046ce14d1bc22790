package exprengine

import "unsafe"

// Boxing without an allocation per value. Putting a float64, an int beyond 255 or a slice in
// an interface makes Go allocate a copy of it; a handler like the classic one boxes some 70
// such values per run (its [key, value] pairs, their averages), and each allocation costs
// about as much as the arithmetic around it. The fast path instead copies them into chunks it
// allocates 128 at a time and makes interfaces that point into them, as Go's own boxing
// points into its copy: an interface is a type word and a pointer to the value, which nothing
// writes through. A chunk's places are never written again once handed out, so values that
// outlive the run (outputs, env) stay as they are; the chunk lives as long as any of them.
//
// This file holds the engine's every use of unsafe, each kept for what it measured against
// the plain version on the handler benchmark (the commits that kept them have the figures):
// boxing into chunks (71 fewer allocations per run of the classic handler, 5-10% of its
// time). TestBoxLayout checks what it assumes.

// eface is the layout of an interface{} value (runtime.eface).
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

// The type words of the boxes made here, taken from interfaces Go made.
var (
	floatWord = typeWord(float64(0))
	intWord   = typeWord(int(0))
	arrayWord = typeWord([]any(nil))
)

func typeWord(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

// pack is the interface of type word typ pointing at data.
func pack(typ, data unsafe.Pointer) (v any) {
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = typ, data
	return v
}

// boxes is a frame's room for boxed values.
type boxes struct {
	floats []float64
	ints   []int
	arrays [][]any
}

const boxChunk = 128

// boxNum is n as an interface (v when n is not a number held unboxed).
func (f *frame) boxNum(n num, v any) any {
	switch n.k {
	case floatNum:
		if len(f.boxes.floats) == 0 {
			f.boxes.floats = make([]float64, boxChunk)
		}
		p := &f.boxes.floats[0]
		*p = n.f
		f.boxes.floats = f.boxes.floats[1:]
		return pack(floatWord, unsafe.Pointer(p))
	case intNum:
		if uint(n.i) < 256 {
			return n.i // Go boxes these without allocating
		}
		if len(f.boxes.ints) == 0 {
			f.boxes.ints = make([]int, boxChunk)
		}
		p := &f.boxes.ints[0]
		*p = n.i
		f.boxes.ints = f.boxes.ints[1:]
		return pack(intWord, unsafe.Pointer(p))
	}
	return v
}

// boxArray is a as an interface.
func (f *frame) boxArray(a []any) any {
	if len(f.boxes.arrays) == 0 {
		f.boxes.arrays = make([][]any, boxChunk)
	}
	p := &f.boxes.arrays[0]
	*p = a
	f.boxes.arrays = f.boxes.arrays[1:]
	return pack(arrayWord, unsafe.Pointer(p))
}
