package exprengine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/eventrt/eventrt/internal/quote"
)

// Sentinel errors wrapped by run failures, so callers can tell a limit from a bug in the
// handler with errors.Is; [IsLimit] groups them.
var (
	// ErrDeadline: the run was still looping when its deadline passed (kind timeout).
	ErrDeadline = errors.New("deadline exceeded")
	// ErrStringTooLong: the run built a string longer than Limits.MaxStringBytes.
	ErrStringTooLong = errors.New("string length limit exceeded")
	// ErrMemoryBudget: the run allocated or walked more elements than Limits.MemoryBudget.
	ErrMemoryBudget = errors.New("memory budget exceeded")
	// ErrTooLarge: the encoded output or env exceeds Limits.MaxOutputBytes (kind output).
	ErrTooLarge = errors.New("encoded size limit exceeded")
	// ErrTooDeep: a value nests deeper than JSON allows here.
	ErrTooDeep = errors.New("nesting too deep")
)

// IsLimit reports whether err is a run stopped by one of its [Limits].
func IsLimit(err error) bool {
	return errors.Is(err, ErrDeadline) || errors.Is(err, ErrStringTooLong) ||
		errors.Is(err, ErrMemoryBudget) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrTooDeep)
}

// CompileError is a program that cannot be compiled, located in its source.
type CompileError struct {
	File string
	// Line and Column are 1-based; Column counts characters (runes). Both are 0 when the
	// error concerns the whole source (its size, say).
	Line, Column int
	Message      string
	// Snippet shows the offending line with a caret under Column, on two lines prefixed
	// with " | "; empty when there is no position.
	Snippet string
}

// Error returns "file:line:column: message" followed, on the next lines, by the snippet.
func (e *CompileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	if e.Snippet != "" {
		b.WriteByte('\n')
		b.WriteString(e.Snippet)
	}
	return b.String()
}

// IsCompile reports whether err is a [*CompileError].
func IsCompile(err error) bool {
	var ce *CompileError
	return errors.As(err, &ce)
}

// RuntimeError is a run that failed inside the program, located in its source. It is the Err
// of an [*exec.Error] of kind handler or timeout.
type RuntimeError struct {
	File         string
	Line, Column int // 1-based; Column counts characters
	Message      string
	// Err is the cause when it is one of this package's sentinels (ErrDeadline...), or an
	// error a builtin returned.
	Err error
}

func (e *RuntimeError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Message)
}

func (e *RuntimeError) Unwrap() error { return e.Err }

// DecodeError is JSON that cannot be decoded. It is the Err of an [*exec.Error] of kind decode.
type DecodeError struct {
	// Field names the env field being decoded (DecodeEnv); empty for an input.
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

// OutputError is an output or env value that cannot be stored: not encodable as JSON, or too
// large. It is the Err of an [*exec.Error] of kind output.
type OutputError struct {
	// Path locates the value, e.g. output["cpu"][3] or env["avg"].
	Path    string
	Message string
	Err     error
}

func (e *OutputError) Error() string { return e.Path + ": " + e.Message }

func (e *OutputError) Unwrap() error { return e.Err }

// position converts a byte offset in src into a 1-based line and a 1-based column counted in
// runes.
func position(src string, offset int) (line, col int) {
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

// snippet renders the line holding byte offset with a caret under it. Long lines are cut
// around the caret so that an error on a minified program stays readable.
func snippet(src string, offset int) string {
	if offset > len(src) {
		offset = len(src)
	}
	start := strings.LastIndexByte(src[:offset], '\n') + 1
	end := strings.IndexByte(src[offset:], '\n')
	if end < 0 {
		end = len(src)
	} else {
		end += offset
	}
	line := []rune(strings.ReplaceAll(src[start:end], "\t", " "))
	caret := len([]rune(src[start:offset]))
	const width = 100
	prefix, suffix := "", ""
	if len(line) > width {
		from := max(0, caret-width/2)
		to := min(len(line), from+width)
		from = max(0, to-width)
		if from > 0 {
			prefix = "..."
		}
		if to < len(line) {
			suffix = "..."
		}
		line = line[from:to]
		caret -= from
	}
	if strings.TrimSpace(string(line)) == "" {
		return ""
	}
	return " | " + prefix + string(line) + suffix + "\n | " + strings.Repeat(".", len(prefix)+caret) + "^"
}
