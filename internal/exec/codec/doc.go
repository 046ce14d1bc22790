// Package codec is the one JSON codec of eventrt's engines: the decoder that turns inputs and
// stored env fields into the values a handler sees (integers stay int, other numbers float64),
// the encoder that writes outputs and env fields as encoding/json would (sorted keys, shortest
// floats, no HTML escaping) within a size limit and with errors that name the path of the
// offending value, and the float and string formatting both use. Its parser serves two
// consumers: [Decode] builds Go values; a [Walker] hands the tokens to a [Visitor] that
// builds a form of its own (the Python engine writes marshal), in the [Standard] dialect or
// in [Python]'s (json.loads': NaN, Infinity, integers of any size, lone surrogates kept).
// The writers come in both spellings too: [AppendString] and [AppendFloat] as encoding/json
// writes, [AppendPyString] and [AppendPyFloat] as Python's json.dumps does. It knows nothing
// of handlers: package exec wraps its errors into the contract's error kinds.
package codec
