// Package exprengine is the expr engine of [exec]: compiling an expr program once, running
// it on an input, the persistent state (env) and a context within hard limits, and turning what
// it returns into the JSON bytes the runner writes. It is pure: no Redis, no I/O, no clock other
// than the timer that enforces the deadline, no global state. The runner owns everything else.
//
// # Handler contract
//
// A program sees three variables:
//
//   - input: the decoded JSON of the input (see [DecodeInput]); integers are int, other numbers
//     float64, objects map[string]any, arrays []any.
//   - env: the persistent state, a map with string keys ({} on the first run).
//   - context: host, port, input_key, output_key, function_getmtime, last_execution (nil on the
//     first run, else a time), env, trigger, entry_id and function.
//
// It returns either a plain value, the output (the state stays as it was), or
// result(output, newEnv), which also replaces the state with newEnv. A nil output writes
// nothing. Besides expr's builtins a program may call:
//
//   - merge(m1, m2, ...): a new map with the keys of all arguments, later ones winning. An
//     argument may also be nil, or an array of [key, value] pairs (what map() builds), which
//     spares a fromPairs.
//   - result(output, newEnv): see above; only meaningful as the program's final value.
//   - round(x, n): x rounded to n decimal places, exactly like Python's round(x, n)
//     (round(x) keeps expr's meaning).
//
// fromPairs returns a map[string]any when all keys are strings, and string(x) formats like
// expr's but bounded. now() is not available: a handler's output depends only on its input,
// env and context, so `eventrt eval` and `eventrt test` reproduce a production run exactly.
//
// # Values and encoding
//
// Outputs and env values are encoded as JSON like encoding/json does (map keys sorted, floats
// in the shortest form, integers without a fraction, no HTML escaping). Maps built by
// fromPairs are accepted when all their keys are strings; NaN and ±Inf are errors naming the
// path of the value. The env a run returns is normalised to exactly what decoding its stored
// JSON gives, so a handler sees the same env whether or not eventrt restarted in between.
//
// # Limits
//
// [Limits] bound what a hostile or buggy program can do: the source size and nesting (before
// the parser, which would overflow its stack), the node count, the bytes a run allocates
// (MaxRunBytes, a budget every string and collection the program makes is charged to before
// it is allocated: budget.go), expr's element budget for the collections the VM builds (capped
// by the byte budget), the length of strings a run builds, regular expressions (the pattern's
// size, its memory, and its work against the time left: regex.go), the size of the encoded
// output and env, and the run time. expr has no cancellation, so Compile rewrites every
// closure body (the only place a program loops) to check a per-run deadline flag on every
// call, and replaces the builtins whose cost can grow faster than the budgets (string
// building, deep comparison and flattening of shared nested arrays) with bounded versions.
// Panics inside a run become errors of kind [exec.KindHandler]; a budget stops a run with kind
// [exec.KindMemory]. A single builtin call is not interrupted; its cost is bounded by the
// budgets (sorting a million elements is the worst case), so a run stops at most that long
// after its deadline. docs/limits.md has the figures.
//
// # Fast path
//
// Compile also turns the checked, rewritten tree into Go closures (fastcompile.go), which run
// the program without expr's VM dispatch and keep intermediate numbers unboxed. They call the
// same helpers and runtime functions as the VM, and only need to be right when they succeed:
// on anything unusual (an error, a pointer, the budget or the deadline) they give up and the
// run is done again on the VM, which gives the value or the error, with its position, as
// before. A program with a construct they do not cover runs on the VM only ([Program.FastPath]
// says which). This package's tests compare every value the fast path produces with the VM's.
//
// A program may be given its input as JSON ([InputFor]), which is how the runner and the stream
// consumer call it: it then decodes a top-level object into a document (document.go) whose
// keys are shared with the previous input of the same shape and whose numbers stay unboxed; the
// fast path reads input[key], key in input and len(input) from it, and builds the map only
// for other uses (and for the VM).
//
// # Keys
//
// Handlers build the same short keys on every run ("cpu_percent-" + string(i)) and look them
// up in their input. One cache per run state remembers them from run to run, with where each
// is in the input document's shape (keys.go): the VM's + and string(x) and the fast path's
// key sites use it alike. It is bounded in entries and string length, keeps copies rather
// than slices of the input, compares keys by value, and charges a hit to the run's budget as
// if the string were made, so both paths charge a run the same bytes.
package exprengine
