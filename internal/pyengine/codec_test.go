//go:build linux

package pyengine

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/exec"
)

// legacySeparators are json.dumps' defaults, as the course runtime wrote its outputs.
var legacySeparators = separators{", ", ": "}

// TestDecoderMatchesJSONDumps: marshal from CPython becomes exactly the text json.dumps gives,
// in both separator styles, and the values encoding/json would decode from it; what json.dumps
// refuses is left to the json fallback.
func TestDecoderMatchesJSONDumps(t *testing.T) {
	out := pythonOutput(t, `
import json, marshal, math, random, struct
random.seed(1)
vals = [None, True, False, 0, 1, -1, 2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**60 - 1, 2**60,
        2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**64 + 1, 2**75 - 1, 2**75, -(2**100), 10**30,
        0.0, -0.0, 1.0, 1.5, 0.1, 1e16, 1e15, 9999999999999998.0, 1e-4, 1e-5, 0.0001,
        0.00012345, 123456789.123, 1e22, 1e21, 5e-324, 1.7976931348623157e308, -2.5e-7,
        "", "ascii", 'quote " back \\ slash', "\x00\x01\x1f\x7f\n\r\t\b\f", "é", "\u2028",
        "\U0001F600", "\ud800", "a\udfffb", "日本語", [], (), {}, [1, [2, [3]]], (1, "a"),
        {"a": 1, "b": [1.5, None]}, {1: "int", 2.5: "float", None: "none", -7: "neg"},
        {True: "t", False: "f"}, {10**30: "big"}, {"nested": {"x": {"y": []}}},
        float("nan"), float("inf"), {1, 2}, b"bytes", 1j, {(1, 2): 3}, [float("-inf")],
        frozenset(), {"k": {1}}, {float("nan"): 1}, Ellipsis]
for _ in range(3000):
    f = struct.unpack("<d", struct.pack("<Q", random.getrandbits(64)))[0]
    if math.isfinite(f):
        vals.append(f)
for _ in range(1000):
    vals += [random.uniform(-1e6, 1e6), round(random.uniform(0, 100), 2),
             random.randint(-2**70, 2**70), random.randint(-2**40, 2**40)]
for v in vals:
    try:
        a = json.dumps(v, allow_nan=False)
        b = json.dumps(v, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        a = b = "ERR"
    print(marshal.dumps(v, 2).hex(), a, b, sep="\t")
`, nil)
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		n++
		f := strings.Split(sc.Text(), "\t")
		m, err := hex.DecodeString(f[0])
		if err != nil {
			t.Fatal(err)
		}
		d := decoder{b: m}
		legacy, err := d.json(nil, legacySeparators, 0)
		if f[1] == "ERR" {
			if !errors.Is(err, errNeedJSON) {
				t.Errorf("%s: json.dumps refuses it, the decoder gave %s, %v", f[0], legacy, err)
			}
			continue
		}
		if err != nil || string(legacy) != f[1] || d.pos != len(m) {
			t.Errorf("%s: got %s (%v), want json.dumps' %s", f[0], legacy, err, f[1])
			continue
		}
		d = decoder{b: m}
		if c, err := d.json(nil, compactSeparators, 0); err != nil || string(c) != f[2] {
			t.Errorf("%s compact: got %s (%v), want %s", f[0], c, err, f[2])
		}
		d = decoder{b: m}
		got, err := d.value(0)
		want, jerr := exec.DecodeInput([]byte(f[2])) // the runner's decoding of the same text
		if jerr != nil {
			t.Fatal(jerr)
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: value %#v (%v), want %#v", f[0], got, err, want)
		}
	}
	if n < 7000 {
		t.Fatalf("only %d values compared", n)
	}
}

// TestEncoderMatchesPython: Go values arrive in Python as the values json.loads would have made
// of their encoding/json text, and in canonical form (marshal.dumps gives the same bytes back,
// which the engine's env change detection relies on).
func TestEncoderMatchesPython(t *testing.T) {
	cases := []struct {
		v    any
		want string // Python repr
	}{
		{nil, "None"}, {true, "True"}, {false, "False"},
		{3, "3"}, {3.0, "3.0"}, {3.5, "3.5"}, {math.Copysign(0, -1), "-0.0"}, {1e20, "1e+20"},
		{float64(1 << 62), "4.611686018427388e+18"}, {5e-324, "5e-324"}, {0.1, "0.1"},
		{1 << 62, "4611686018427387904"}, {-95e17, "-9.5e+18"},
		{json.Number("1.0"), "1.0"}, {json.Number("-12"), "-12"},
		{json.Number("123456789012345678901234567890"), "123456789012345678901234567890"},
		{json.Number("-1e3"), "-1000.0"},
		{"bad\xffutf8", "'bad\ufffdutf8'"}, {"日本 \U0001F600", "'日本 \U0001F600'"},
		{map[string]any{"b": 1, "a": []any{2.5, "x"}}, "{'a': [2.5, 'x'], 'b': 1}"},
		{[]any{nil, true, map[string]any{}}, "[None, True, {}]"},
		{map[string]string{"x": "y", "a": "b"}, "{'a': 'b', 'x': 'y'}"},
		{uint64(math.MaxUint64), "18446744073709551615"}, {int64(math.MinInt64), "-9223372036854775808"},
		{int64(math.MaxInt32), "2147483647"}, {int64(math.MaxInt32 + 1), "2147483648"},
		{float32(1.5), "1.5"}, {int8(-3), "-3"}, {uint16(7), "7"},
		{struct {
			A int `json:"a"`
		}{1}, "{'a': 1}"},
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "'2026-01-02T03:04:05Z'"},
		{json.RawMessage(`{"z": 1, "a": [1.0, 2, "\u00e9"]}`), "{'z': 1, 'a': [1.0, 2, 'é']}"},
	}
	var in bytes.Buffer
	for _, c := range cases {
		var e encoder
		if err := e.value(c.v, 0); err != nil {
			t.Fatalf("encode %#v: %v", c.v, err)
		}
		in.WriteString(hex.EncodeToString(e.b) + "\n")
	}
	out := pythonOutput(t, `
import marshal, sys
for line in sys.stdin:
    b = bytes.fromhex(line.strip())
    v = marshal.loads(b)
    print(repr(v) if marshal.dumps(v, 2) == b else "NOT CANONICAL " + repr(v))
`, in.Bytes())
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	for i, c := range cases {
		if got[i] != c.want {
			t.Errorf("%#v arrived as %s, want %s", c.v, got[i], c.want)
		}
	}
	var e encoder
	for _, bad := range []any{math.NaN(), math.Inf(1), map[string]any{"x": []any{math.Inf(-1)}}, make(chan int)} {
		if err := e.value(bad, 0); err == nil {
			t.Errorf("%#v encoded without error", bad)
		}
	}
}

// TestJSONTextMatchesJSONLoads: JSON text becomes, byte for byte, the marshal of what Python's
// json.loads reads from it (order, int/float, surrogates, NaN). A repeated key is the exception:
// the dict Python builds is the same (first position, last value), the bytes are not.
func TestJSONTextMatchesJSONLoads(t *testing.T) {
	sample, err := os.ReadFile("testdata/metrics-sample.json")
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{
		string(sample), `1`, `-0`, `0`, `1.0`, `1e5`, `1E+2`, `-1.5e-3`, `1e400`, `-1e400`, `1e-400`,
		`123456789012345678901234567890`, `-123456789012345678901234567890`, `9223372036854775808`,
		`"\u00e9\ud83d\ude00\n\"\\\/\b\f\r\t"`, `"\udc00"`, `"\ud800x"`, `"\ud800\u0041"`, `"\uD83D\uDE00"`,
		`{"a":1,"a":2,"b":3}`, `[NaN, Infinity, -Infinity]`, `[]`, `{}`, ` { "x" : [ 1 , 2 ] } `,
		`"日本"`, `true`, `false`, `null`, `[{"": ""}]`, "\"raw\x7f\"", "\"bad\xffbyte\"",
		strings.Repeat("[", 500) + strings.Repeat("]", 500),
	}
	var in bytes.Buffer
	for _, text := range texts {
		var e encoder
		if err := e.jsonText([]byte(text)); err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		in.WriteString(hex.EncodeToString([]byte(text)) + "\t" + hex.EncodeToString(e.b) + "\n")
	}
	out := pythonOutput(t, `
import json, marshal, sys
for line in sys.stdin:
    text, m = (bytes.fromhex(x) for x in line.split("\t"))
    v = json.loads(text.decode("utf-8", "replace"))
    got = marshal.loads(m)
    if repr(got) != repr(v):
        print("DIFFERENT %r, want %r" % (got, v))
    else:
        print("ok" if marshal.dumps(v, 2) == m else "ok, not canonical")
`, in.Bytes())
	for i, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line != "ok" && !(line == "ok, not canonical" && texts[i] == `{"a":1,"a":2,"b":3}`) {
			t.Errorf("%.80q: %s", texts[i], line)
		}
	}
	for _, bad := range []string{"", " ", "{", "[1,]", `{"a"}`, `{"a":1,}`, "01", "1.", ".5", "-", "1e",
		"\"\x01\"", `"abc`, "tru", `{"a":1}x`, `"\u12"`, `"\x"`, "[1 2]", `{1:2}`, "nan",
		strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2)} {
		var e encoder
		if err := e.jsonText([]byte(bad)); err == nil {
			t.Errorf("%.40q accepted", bad)
		}
	}
}

// FuzzDecoder: whatever the worker sends, the decoder returns an error rather than panicking.
func FuzzDecoder(f *testing.F) {
	var e encoder
	_ = e.value(map[string]any{"a": []any{1, "x", nil, 1e300, json.Number("1e3")}, "b": map[string]any{"c": true}}, 0)
	f.Add(e.b)
	f.Add([]byte("{u\x01\x00\x00\x00ai\x01\x00\x00\x000"))
	f.Add([]byte("l\x05\x00\x00\x00\xff\x7f\xff\x7f\xff\x7f\xff\x7f\x0f\x00"))
	f.Add([]byte("[\xff\xff\xff\x7f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := decoder{b: b}
		_, _ = d.json(nil, legacySeparators, 0)
		d = decoder{b: b}
		_, _ = d.value(0)
		_, _, _, _ = decodeEnv(b, 0)
	})
}

// FuzzJSONText: every text encoding/json accepts is accepted, and nothing panics.
func FuzzJSONText(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x\u00e9"]}`, `[NaN]`, `"\ud800"`, `-0.0e+1`, `{"a":{"b":{}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e encoder
		err := e.jsonText(b)
		if err != nil && json.Valid(b) && !strings.Contains(err.Error(), "nested too deeply") {
			t.Fatalf("%q is valid JSON but was refused: %v", b, err)
		}
	})
}
