package exprengine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/eventrt/eventrt/internal/exec/codec"
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
	// ErrTooLarge: the encoded output or env exceeds Limits.MaxOutputBytes (kind output);
	// the codec's sentinel.
	ErrTooLarge = codec.ErrTooLarge
	// ErrTooDeep: a value nests deeper than JSON allows here; the codec's sentinel.
	ErrTooDeep = codec.ErrTooDeep
	// ErrHandlerMemory: the run would allocate more bytes than Limits.MaxRunBytes (kind
	// memory).
	ErrHandlerMemory = errors.New("handler memory budget exceeded")
	// ErrRegexCost: a pattern that is too large, or a match that cannot finish before the
	// run's deadline, refused before it starts (kind timeout).
	ErrRegexCost = errors.New("regex too costly")
)

// IsLimit reports whether err is a run stopped by one of its [Limits].
func IsLimit(err error) bool {
	return errors.Is(err, ErrDeadline) || errors.Is(err, ErrStringTooLong) ||
		errors.Is(err, ErrMemoryBudget) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrTooDeep) ||
		errors.Is(err, ErrHandlerMemory) || errors.Is(err, ErrRegexCost)
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
