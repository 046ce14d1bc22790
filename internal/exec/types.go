package exec

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"
)

// Context is what a handler sees as `context`: the course runtime's fields plus eventrt's.
// The runner fills it for every execution; Env is supplied separately in Call.
type Context struct {
	Host      string
	Port      int
	InputKey  string
	OutputKey string
	// FunctionGetmtime is the handler file's modification time, formatted like the course
	// runtime did ("2006-01-02 15:04:05", local time).
	FunctionGetmtime string
	// LastExecution is the time of the previous successful run; nil on the first.
	LastExecution *time.Time
	// Trigger is what started the run: keyspace, pubsub, poll, catchup or stream.
	Trigger string
	// EntryID is the stream entry id in stream mode, empty otherwise.
	EntryID string
	// Function is the module.function name being run.
	Function string
}

// Call is one execution's input.
type Call struct {
	// Input is the decoded input value (see DecodeInput), or, for a [Program], the input as
	// JSON in a json.RawMessage, which the program then decodes itself (see InputFor).
	Input any
	// Env is the persistent state as loaded; never nil. Handlers must not see it mutated by
	// another call, and Run does not mutate it unless EnvOwned.
	Env map[string]any
	// EnvOwned hands Env over to the run: a handler that updates its state with
	// merge(env, ...) may then write into Env and return it as Result.Env instead of a copy.
	// Whatever the outcome, the caller must not use Env again; after a failed run it decodes
	// the state afresh from the fields it stored. A handler may ignore it.
	EnvOwned bool
	// Buffers, when not nil, is where the run puts the bytes of Result.Output and
	// Result.EnvFields (see Buffers).
	Buffers *Buffers
	Context Context
	// Deadline bounds the execution; zero means the program's configured timeout from now.
	Deadline time.Time
	// EnvOnly says the caller needs Result.Env but not Result.EnvFields (a stream batch
	// commits only the state its last entry leaves): a handler may then leave EnvFields nil
	// and save encoding it, and the caller gets it from [EnvFields] when it needs it. The env
	// is still checked: one that cannot be encoded fails the run either way. A handler may
	// ignore the hint (the Python engine does) and fill EnvFields anyway.
	EnvOnly bool
}

// Result is one successful execution's outcome.
type Result struct {
	// Output is the JSON encoding of the handler's output; nil when the output was nil
	// (nothing is written).
	Output []byte
	// Value is the normalised output value that Output encodes (nil when Output is nil): a
	// map, or for a map the fast path built only to encode it, an [*Object]; from an engine
	// whose output is JSON only (Python), Output itself as a json.RawMessage. The runner
	// exports its numeric top-level fields ([TopLevel]) as metrics.
	Value any
	// StateSet reports that the handler returned result(output, env): Env then replaces the
	// persistent state. When false, Env and EnvFields are nil and the state is unchanged.
	StateSet bool
	// Env is the new state, normalised (JSON-compatible values, string keys).
	Env map[string]any
	// EnvFields holds the JSON encoding of each Env value, one per key of Env: what the
	// state hash stores.
	EnvFields Fields
}

// Buffers is memory a caller lends its runs for the bytes of their results, so that running
// one function again and again does not allocate them every time: a run given Buffers
// (Call.Buffers) copies Result.Output and Result.EnvFields into it. Each result stays valid
// until the caller calls Reset; the runs after that reuse the memory. The zero value is ready
// to use; like a Result, it belongs to one goroutine at a time.
type Buffers struct {
	bytes  []byte
	fields Fields
}

// Reset lets the next runs reuse the memory of every result put in b so far.
func (b *Buffers) Reset() {
	b.bytes = b.bytes[:0]
	if cap(b.bytes) > maxKeptBuffer {
		b.bytes = nil // one large result should not pin its memory for good
	}
	clear(b.fields)
	b.fields = b.fields[:0]
	if cap(b.fields) > maxKeptBuffer/64 {
		b.fields = nil
	}
}

// maxKeptBuffer is the most memory of its bytes a Buffers keeps across a Reset.
const maxKeptBuffer = 1 << 16

// Keep returns a copy of p, in b when b is not nil. An engine keeps Result.Output with it.
func (b *Buffers) Keep(p []byte) []byte {
	if b == nil {
		return bytes.Clone(p)
	}
	start := len(b.bytes)
	b.bytes = append(b.bytes, p...)
	// Capped, so that no holder of a result can append into the next one.
	return b.bytes[start:len(b.bytes):len(b.bytes)]
}

// Fields returns empty, non-nil Fields with room for n fields, in b when b is not nil: an
// engine appends at most n fields to it for Result.EnvFields, their values typically in
// memory it got from [Buffers.Keep].
func (b *Buffers) Fields(n int) Fields {
	if b == nil || n == 0 {
		return make(Fields, 0, n)
	}
	start := len(b.fields)
	b.fields = slices.Grow(b.fields, n)[:start+n]
	return b.fields[start : start : start+n]
}

// Field is one env key and the JSON encoding of its value: one field of the state hash.
type Field struct {
	Key   string
	Value []byte
}

// Fields are an env's fields, one per key, in no particular order. A slice rather than a map:
// callers walk it once (to diff it against the stored state, to write it), and a run would
// otherwise build a map of every key only for that.
type Fields []Field

// Get returns the encoding of key's value, and whether there is one.
func (fs Fields) Get(key string) ([]byte, bool) {
	for _, f := range fs {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

// All yields each key with its encoding.
func (fs Fields) All() iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		for _, f := range fs {
			if !yield(f.Key, f.Value) {
				return
			}
		}
	}
}

// Strings returns the fields as the state hash holds them (what state.Snapshot.Fields and
// state.Diff take), a copy of each value.
func (fs Fields) Strings() map[string]string {
	m := make(map[string]string, len(fs))
	for _, f := range fs {
		m[f.Key] = string(f.Value)
	}
	return m
}

// Map returns the fields as a map, nil for nil fields.
func (fs Fields) Map() map[string][]byte {
	if fs == nil {
		return nil
	}
	m := make(map[string][]byte, len(fs))
	for _, f := range fs {
		m[f.Key] = f.Value
	}
	return m
}

// Kind classifies an execution failure; it is used as a metric label, so its set is closed.
type Kind string

const (
	KindDecode  Kind = "decode"  // the input is not valid JSON / not decodable
	KindHandler Kind = "handler" // the program failed: type error, missing field, panic
	KindTimeout Kind = "timeout" // the deadline passed
	KindOutput  Kind = "output"  // the output or env cannot be encoded or is too large
	KindMemory  Kind = "memory"  // the run would pass its memory budget (HANDLER_MEMORY)
	// KindInternal is a bug in eventrt met while running the handler: a panic in an engine's
	// own code, not the handler's failure. Its Err is a [*PanicError].
	KindInternal Kind = "internal"
)

// Error is an execution failure with its kind. Err carries the detail (for a handler error,
// the expr message with line:column).
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("%s error: %v", e.Kind, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// PanicError is a panic in an engine's own code. Stack is where it happened, for the caller to
// log: it is not part of the message, which stays on one line.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// PanicStack returns the stack of the panic err carries, nil when it carries none.
func PanicStack(err error) []byte {
	var pe *PanicError
	if errors.As(err, &pe) {
		return pe.Stack
	}
	return nil
}

// KindOf returns the Kind of err, or "" when err is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// IsTimeout reports whether err is an execution that ran past its deadline.
func IsTimeout(err error) bool { return KindOf(err) == KindTimeout }

// IsMemory reports whether err is an execution stopped by its memory budget.
func IsMemory(err error) bool { return KindOf(err) == KindMemory }

// IsDecode reports whether err is an input that could not be decoded.
func IsDecode(err error) bool { return KindOf(err) == KindDecode }

// Version is one loaded handler and what describes it: what a runner or a stream consumer
// runs, and swaps for the next version when the source changes.
type Version struct {
	Handler Handler
	// File is the handler's source file, ModTime its modification time
	// (context.function_getmtime).
	File    string
	ModTime time.Time
	Runtime string // "expr" or "python"
}

// Handler is what the runner executes: an expr Program, or another engine (a Python worker)
// that honours the same contract. Implementations are safe for concurrent use unless they
// say otherwise.
type Handler interface {
	Run(call Call) (Result, error)
	// Hash identifies the handler's source (hex SHA-256 prefix), for metrics and logs.
	Hash() string
	// UsesState reports whether the handler may read env or return result(...); a handler
	// that does not can run in parallel.
	UsesState() bool
}
