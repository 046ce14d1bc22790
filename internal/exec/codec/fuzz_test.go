package codec

import (
	"encoding/json"
	"math"
	"os"
	"reflect"
	"testing"
)

var jsonSeeds = []string{
	`{}`, `[]`, `0`, `-0.0`, `1e400`, `"\ud800"`, `{"a":[1,2,{"b":null}]}`, `[1, 2.5, "x", true]`,
	`[NaN, Infinity, -Infinity, 1e400]`, `{"\ud800": "\udfff\ud800\udc00"}`, `-Inf`,
	`{"cpu_percent-0": 1, "cpu_percent-1": "x"}`, `{"net_io_counters_eth0-bytes_sent": 1, "net_io_counters_eth0-bytes_recv": -1}`,
	"\"\xff\"", `[[[[[]]]]]`, `{"a":1,"a":2}`, `12345678901234567890`, ` {"k" : [ ] } `,
}

// FuzzDecodeAgainstStdlib checks the decoder against encoding/json: both accept or both
// refuse, and accepted documents give the same values (ints compared as floats); and the
// walker against the decoder, in both dialects (checkDialects).
func FuzzDecodeAgainstStdlib(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	if raw, err := os.ReadFile("../exprengine/testdata/metrics-sample.json"); err == nil {
		f.Add(raw)
	}
	dec := NewDecoder()
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Decode(data)
		var want any
		stdErr := json.Unmarshal(data, &want)
		checkDialects(t, data, got, err)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("%q: Decode error %v, encoding/json error %v", data, err, stdErr)
		}
		if err != nil {
			return
		}
		if !sameJSONValue(got, want) {
			t.Fatalf("%q: got %#v, encoding/json %#v", data, got, want)
		}
		if again, err := dec.Decode(data); err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("%q: Decoder gives %#v, %v", data, again, err)
		}
		// Encoding a decoded value and decoding it again gives it back exactly when it is
		// canonical (7.0 decodes as a float but is written 7, which decodes as an int), and
		// the second round trip is always the identity.
		enc, err := encodeValue(got, false)
		if err != nil {
			t.Fatalf("%q: encode: %v", data, err)
		}
		back, err := Decode([]byte(enc))
		if err != nil || reflect.DeepEqual(back, got) != Canonical(got) || !Canonical(back) {
			t.Fatalf("%q: round trip via %s gives %#v, %v (canonical %v)", data, enc, back, err, Canonical(got))
		}
	})
}

func sameJSONValue(got, want any) bool {
	switch g := got.(type) {
	case int:
		w, ok := want.(float64)
		return ok && float64(g) == w
	case float64:
		w, ok := want.(float64)
		return ok && (g == w || math.IsNaN(g) && math.IsNaN(w))
	case []any:
		w, ok := want.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range g {
			if !sameJSONValue(g[i], w[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		w, ok := want.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, v := range g {
			if !sameJSONValue(v, w[k]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(got, want)
}
