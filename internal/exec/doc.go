// Package exec owns the execution of handlers: the contract every engine implements and every
// caller (the runner, the stream consumer, the CLI) codes against, independent of the language
// a handler is written in.
//
// A [Handler] runs one [Call] (the input, the persistent env, the [Context]) and gives a
// [Result] (the output and the new env as JSON bytes, held in caller-lent [Buffers]) or an
// [*Error] whose [Kind] is one of a closed set, usable as a metric label. The engines live
// below this package and import it; of them, this package imports only the codec:
//
//   - exec/exprengine compiles and runs expr programs (a fast path of Go closures, expr's VM
//     behind it);
//   - exec/pyengine runs Python handlers in a supervised worker process;
//   - exec/codec is the one JSON codec both use, which this package wraps for callers
//     (DecodeInput, DecodeEnv, EnvFields, TopLevel, InputFor).
package exec
