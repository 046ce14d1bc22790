package codec

import (
	"errors"
	"fmt"

	"github.com/eventrt/eventrt/internal/quote"
)

// MaxDepth bounds nesting in decoded JSON and in encoded values (as encoding/json does when
// decoding), keeping every recursive walk far from the stack limit.
const MaxDepth = 10000

// Sentinel errors wrapped by [*DecodeError] and [*OutputError].
var (
	// ErrTooLarge: the encoding exceeds the encoder's limit.
	ErrTooLarge = errors.New("encoded size limit exceeded")
	// ErrTooDeep: a value nests deeper than [MaxDepth].
	ErrTooDeep = errors.New("nesting too deep")
)

// DecodeError is JSON that cannot be decoded.
type DecodeError struct {
	// Field names the field being decoded (DecodeFields); empty for a single document.
	Field string
	// Line and Column (1-based, Column in characters) and Offset (bytes) locate the problem.
	Line, Column, Offset int
	Message              string
	Err                  error
}

func (e *DecodeError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("env field %s: invalid JSON at %d:%d: %s", quote.Value(e.Field), e.Line, e.Column, e.Message)
	}
	return fmt.Sprintf("invalid JSON at %d:%d: %s", e.Line, e.Column, e.Message)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// OutputError is a value that cannot be encoded: not representable in JSON, or too large.
type OutputError struct {
	// Path locates the value, e.g. output["cpu"][3] or env["avg"].
	Path    string
	Message string
	Err     error
}

func (e *OutputError) Error() string { return e.Path + ": " + e.Message }

func (e *OutputError) Unwrap() error { return e.Err }

// Position converts a byte offset in src into a 1-based line and a 1-based column counted in
// runes.
func Position(src string, offset int) (line, col int) {
	line, col = 1, 1
	if offset > len(src) {
		offset = len(src)
	}
	for _, r := range src[:offset] {
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}
