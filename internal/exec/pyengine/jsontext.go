package pyengine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strconv"

	"github.com/eventrt/eventrt/internal/exec/codec"
)

// jsonText appends the marshal form of JSON text src as Python's json.loads reads it: object
// keys in document order (a repeated key keeps its first position and its last value, as the
// dict marshal.loads builds does), integers as int of any size, numbers with a fraction or
// exponent as float, NaN/Infinity accepted. This is what a json.RawMessage input gets: the
// handler sees exactly what the course runtime's json.loads gave it, without a Go decode in
// between. The JSON is read by the codec's parser in its Python dialect.
func (e *encoder) jsonText(src []byte) error {
	e.walker.Dialect, e.walker.MaxDepth = codec.Python, maxDepth
	if err := e.walker.Walk(src, (*marshalWriter)(e)); err != nil {
		var de *codec.DecodeError
		if !errors.As(err, &de) {
			return fmt.Errorf(": %w", err)
		}
		return &jsonTextError{de}
	}
	return nil
}

// jsonTextError is invalid JSON text, located by its byte offset as the encoder's other
// errors continue a path: `input: invalid JSON at offset 10 (1:11): ...`.
type jsonTextError struct{ de *codec.DecodeError }

func (e *jsonTextError) Error() string {
	msg := e.de.Message
	if errors.Is(e.de, codec.ErrTooDeep) {
		msg = fmt.Sprintf("nested too deeply (more than %d levels)", maxDepth)
	}
	return fmt.Sprintf(": invalid JSON at offset %d (%d:%d): %s", e.de.Offset, e.de.Line, e.de.Column, msg)
}

func (e *jsonTextError) Unwrap() error { return e.de }

// marshalWriter is the encoder as a [codec.Visitor]: it appends each token as marshal.
type marshalWriter encoder

func (w *marshalWriter) BeginObject() int {
	w.b = append(w.b, mDict)
	return 0
}

func (w *marshalWriter) Key(k []byte) { w.unicode(k) }

func (w *marshalWriter) EndObject(int, int) { w.b = append(w.b, mNull) }

func (w *marshalWriter) BeginArray() int {
	w.b = append(w.b, mList, 0, 0, 0, 0)
	return len(w.b) - 4
}

func (w *marshalWriter) EndArray(mark, n int) {
	binary.LittleEndian.PutUint32(w.b[mark:], uint32(n))
}

// String writes s as it is: the Python dialect keeps a lone surrogate as marshal carries it.
func (w *marshalWriter) String(s []byte) { w.unicode(s) }

func (w *marshalWriter) unicode(s []byte) {
	w.b = append(w.b, mUnicode)
	w.b = binary.LittleEndian.AppendUint32(w.b, uint32(len(s)))
	w.b = append(w.b, s...)
}

func (w *marshalWriter) Number(lit []byte, n codec.Num, integer bool) {
	e := (*encoder)(w)
	switch {
	case !integer:
		e.float(n.F) // out of range, ±Inf or 0, as Python's float()
	case n.IsInt:
		e.int64(int64(n.I))
	default:
		// Converted to a string here rather than for every number: beyond an int, rare.
		if v, err := strconv.ParseInt(string(lit), 10, 64); err == nil {
			e.int64(v)
			return
		}
		v, _ := new(big.Int).SetString(string(lit), 10) // a valid integer literal
		e.bigInt(v)
	}
}

func (w *marshalWriter) Bool(b bool) {
	if b {
		w.b = append(w.b, mTrue)
	} else {
		w.b = append(w.b, mFalse)
	}
}

func (w *marshalWriter) Null() { w.b = append(w.b, mNone) }
