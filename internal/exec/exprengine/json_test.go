package exprengine

import (
	"encoding/json"
	"testing"

	"github.com/eventrt/eventrt/internal/exec/codec"
)

// stdEncode is encoding/json's encoding, the reference the codec's encoder follows (which
// also leaves HTML characters unescaped: none occur in this package's tests).
func stdEncode(t testing.TB, v any, indent bool) string {
	t.Helper()
	b, err := json.Marshal(v)
	if indent {
		b, err = json.MarshalIndent(v, "", "  ")
	}
	if err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return string(b)
}

// encodeValue is v encoded as a run encodes its output.
func encodeValue(v any, indent bool) (string, error) {
	var e codec.Encoder
	e.Reset("output", 1<<30, indent)
	err := e.Encode(v)
	return string(e.Bytes()), err
}
