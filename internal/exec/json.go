package exec

import (
	"encoding/json"
	"iter"
	"math"

	"github.com/eventrt/eventrt/internal/exec/codec"
)

// DecodeInput decodes a JSON document into the value a handler sees as input (see
// [codec.Decode]). An error is an [*Error] of kind decode whose Err is a [*codec.DecodeError]
// naming line:column of the problem.
func DecodeInput(raw []byte) (any, error) {
	v, err := codec.Decode(raw)
	if err != nil {
		return nil, &Error{Kind: KindDecode, Err: err}
	}
	return v, nil
}

// DecodeEnv decodes the fields of the state hash (one JSON value per env key) into the env
// map a handler sees. An error is an [*Error] of kind decode naming the field.
func DecodeEnv(fields map[string]string) (map[string]any, error) {
	env, err := codec.DecodeFields(fields)
	if err != nil {
		return nil, &Error{Kind: KindDecode, Err: err}
	}
	return env, nil
}

// InputFor returns what to pass as Call.Input for the JSON document raw: raw itself, as a
// json.RawMessage, when h takes its input as JSON ([JSONInput]); otherwise raw decoded by dec,
// a failure being an [*Error] of kind decode. raw must stay unchanged until the run returns;
// nothing keeps it after.
func InputFor(h Handler, raw []byte, dec *codec.Decoder) (any, error) {
	if _, ok := h.(JSONInput); ok {
		return json.RawMessage(raw), nil
	}
	v, err := dec.Decode(raw)
	if err != nil {
		return nil, &Error{Kind: KindDecode, Err: err}
	}
	return v, nil
}

// JSONInput is implemented by a handler that decodes a json.RawMessage input itself, into a
// form it reads faster than a map (the expr engine's Program), and, through embedding, by any
// handler that wraps one and hands its Call on unchanged. A malformed document then fails the
// run with an error of kind decode, as DecodeInput's.
type JSONInput interface {
	Handler
	TakesJSONInput()
}

// EnvFields encodes each value of env as the state hash stores it: what Result.EnvFields holds
// for a run that returned env as Result.Env. It is how a caller that passed Call.EnvOnly gets
// the fields of the one env it commits. env must be one a run returned (that run checked that
// it can be encoded, within the size limit); an error is an [*Error] of kind output.
func EnvFields(env map[string]any) (Fields, error) {
	var e codec.Encoder
	e.Reset("env", math.MaxInt, false)
	spans, err := e.AppendFields(env, make([]codec.Span, 0, len(env)))
	if err != nil {
		return nil, &Error{Kind: KindOutput, Err: err}
	}
	return AppendSpans(make(Fields, 0, len(spans)), e.Bytes(), spans), nil
}

// AppendSpans appends to dst the fields that spans locate in buf, each value capped at its
// end and sharing buf.
func AppendSpans(dst Fields, buf []byte, spans []codec.Span) Fields {
	for _, s := range spans {
		dst = append(dst, Field{Key: s.Key, Value: buf[s.Start:s.End:s.End]})
	}
	return dst
}

// TopLevel yields the fields of an output value that is an object (a map with string keys, a
// [*codec.Object], or a json.RawMessage of an object, decoded here), and nothing for any other
// value.
func TopLevel(v any) iter.Seq2[string, any] {
	if raw, ok := v.(json.RawMessage); ok {
		v, _ = codec.Decode(raw) // a handler's output, encoded by eventrt: valid JSON
	}
	switch x := v.(type) {
	case map[string]any:
		return func(yield func(string, any) bool) {
			for k, v := range x {
				if !yield(k, v) {
					return
				}
			}
		}
	case *codec.Object:
		return x.All()
	}
	return func(func(string, any) bool) {}
}
