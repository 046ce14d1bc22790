// Package codec is the one JSON codec of eventrt's engines: the decoder that turns inputs and
// stored env fields into the values a handler sees (integers stay int, other numbers float64),
// the encoder that writes outputs and env fields as encoding/json would (sorted keys, shortest
// floats, no HTML escaping) within a size limit and with errors that name the path of the
// offending value, and the float and string formatting both use. It knows nothing of handlers:
// package exec wraps its errors into the contract's error kinds.
package codec
