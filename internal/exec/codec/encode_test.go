package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// stdEncode is encoding/json's encoding without HTML escaping, the reference the encoder
// follows.
func stdEncode(t testing.TB, v any, indent bool) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func encodeValue(v any, indent bool) (string, error) {
	var e Encoder
	e.Reset("output", 1<<30, indent)
	err := e.encode(v, 0)
	return string(e.Bytes()), err
}

func TestEncodeLikeEncodingJSON(t *testing.T) {
	values := []any{
		nil, true, 0, -7, math.MaxInt64, 1.5, math.Copysign(0, -1), 1e20, 1e21, 1e-6, 1e-7, 123456789.125, 5e-324,
		math.MaxFloat64, float32(0.1), int8(-3), uint64(math.MaxUint64),
		"", "plain", "quote\" back\\slash", "ctl\x00\x01\b\f\n\r\t\x1f\x7f", "<html>&", "\u2028\u2029", "bad\xffutf8", "é😀",
		[]any{}, map[string]any{},
		[]any{1, "a", []any{nil, 2.5}, map[string]any{"z": 1, "a": []any{}}},
		map[string]any{"b": 1, "a": map[string]any{"y": []any{1}, "x": "s"}, "": nil, "é": 2},
		[]int{1, 2}, []float64{0.5}, []string{"x"}, [2]any{"k", 1},
		time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), 90 * time.Second,
	}
	for _, v := range values {
		for _, indent := range []bool{false, true} {
			got, err := encodeValue(v, indent)
			if err != nil {
				t.Errorf("%#v: %v", v, err)
				continue
			}
			if want := stdEncode(t, v, indent); got != want {
				t.Errorf("%#v (indent %v):\n got %s\nwant %s", v, indent, got, want)
			}
		}
	}
	// Maps with interface keys are accepted when every key is a string.
	got, err := encodeValue(map[any]any{"b": 1, "a": 2}, false)
	if err != nil || got != `{"a":2,"b":1}` {
		t.Errorf("map[any]any: %s %v", got, err)
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{math.NaN(), `output: NaN is not representable in JSON`},
		{map[string]any{"a": []any{1, math.Inf(-1)}}, `output["a"][1]: -Inf is not representable in JSON`},
		{map[any]any{"ok": 1, 2: "x"}, `output: map key "2" (int) is not a string`},
		{[]any{make(chan int)}, `output[0]: cannot encode a value of type chan int as JSON`},
		{map[int]any{1: 1}, `output: cannot encode a map with int keys`},
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), `output: time 10000-01-01 00:00:00 +0000 UTC has a year outside [0,9999]`},
	} {
		_, err := encodeValue(tc.v, false)
		var oe *OutputError
		if !errors.As(err, &oe) || err.Error() != tc.want {
			t.Errorf("%#v: %v, want %s", tc.v, err, tc.want)
		}
	}
	var e Encoder
	e.Reset("output", 10, false)
	if err := e.encode("0123456789", 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("12 bytes over a limit of 10: %v", err)
	}
}

// TestCanonical checks the property Result.Env relies on: Canonical(v) holds exactly when
// decoding v's encoding gives v back.
func TestCanonical(t *testing.T) {
	for _, v := range []any{
		nil, true, 1, -1, "s", 1.5, 2.0, math.Copysign(0, -1), 1e20, 1e21, math.MaxInt64, 9.3e18, 0.1,
		[]any{1, 2.5}, []any{1, 2.0}, map[string]any{"a": 1.0}, map[string]any{"a": 1.25},
		[]int{1}, map[any]any{"a": 1}, int64(3), float32(1.5),
	} {
		enc, err := encodeValue(v, false)
		if err != nil {
			t.Fatalf("%#v: %v", v, err)
		}
		back, err := decodeJSON([]byte(enc))
		if err != nil {
			t.Fatalf("%#v: %v", v, err)
		}
		if same := reflect.DeepEqual(back, v); same != Canonical(v) {
			t.Errorf("%#v: canonical = %v, but decode(encode) equal = %v (%#v)", v, Canonical(v), same, back)
		}
	}
}

// TestEncodeRemembersShapes: one encoder, reused as a run state reuses it, encodes maps that
// share a size, their keys or neither, nested or not, like encoding/json every time.
func TestEncodeRemembersShapes(t *testing.T) {
	for _, indent := range []bool{false, true} {
		encodeShapes(t, indent)
	}
	// A value that cannot be encoded, in a map of a known shape: the error names its key.
	var e Encoder
	for range 2 {
		e.Reset("output", 1<<20, false)
		err := e.encode(map[string]any{"a": 1, "b\"": math.NaN()}, 0)
		if err == nil || !strings.Contains(err.Error(), `output["b\""]`) {
			t.Errorf("error %v, want one naming output[\"b\\\"\"]", err)
		}
	}
}

func encodeShapes(t *testing.T, indent bool) {
	var e Encoder
	for i, v := range []any{
		map[string]any{"b": 1, "a": 2, "c": 3},
		map[string]any{"a": 4, "b": 5, "c": 6},                      // same keys
		map[string]any{"a": 4, "b": 5, "d": 6},                      // same size, one key differs
		map[string]any{"x": map[string]any{"b": 1, "a": 2, "c": 3}}, // nested, known shape
		map[string]any{"c": map[string]any{"z": 1, "y": 2}, "a": []any{map[string]any{"y": 3, "z": 4}}, "b": nil},
		map[string]any{"c": map[string]any{"z": 1, "y": 2}, "a": []any{map[string]any{"q": 3, "z": 4}}, "b": nil},
		map[string]any{"k1": 1, "k2": 2, "k3": 3, "k4": 4, "k5": 5, "k6": 6, "k7": 7, "k8": 8, "k9": 9, "k10": 10, "k11": 11},
		map[string]any{"b": 1, "a": 2, "d": 3}, // size 3 again, after a size 11 (same slot)
		map[string]any{"a": "x"},
		map[string]any{},
		// Keys written escaped, twice: the second time as the shape remembered them.
		map[string]any{"a\"b": 1, "\u00e9\u2028": 2, "x\xffy": 3, "<&>": 4, "t\tn\n": 5},
		map[string]any{"a\"b": 6, "\u00e9\u2028": 7, "x\xffy": 8, "<&>": 9, "t\tn\n": 10},
	} {
		e.Reset("output", 1<<20, indent)
		if err := e.encode(v, 0); err != nil {
			t.Fatal(err)
		}
		if want := stdEncode(t, v, indent); string(e.Bytes()) != want {
			t.Errorf("indent %v, value %d: got %s, want %s", indent, i, e.Bytes(), want)
		}
		if len(e.vals) != 0 || len(e.keys) != 0 {
			t.Errorf("value %d: the stacks were left with %d keys and %d values", i, len(e.keys), len(e.vals))
		}
	}
}
