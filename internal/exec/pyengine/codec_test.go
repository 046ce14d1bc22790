//go:build linux

package pyengine

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/cputime"
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
             random.randint(-2**70, 2**70), random.randint(-2**40, 2**40),
             round(random.uniform(-1e12, 1e12), random.randint(0, 4)),
             random.randint(-10**9, 10**9) / 10**random.randint(0, 6),
             float(random.randint(-2**53, 2**53)) / 10**random.randint(0, 17)]
for k in range(-6, 18):
    vals += [10.0**k, -(10.0**k), math.nextafter(10.0**k, 0), math.nextafter(10.0**k, math.inf)]
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
		d = decoder{b: m}
		text, both, err := d.jsonValue(nil, 0)
		if err != nil || string(text) != f[2] || !reflect.DeepEqual(both, want) || d.pos != len(m) {
			t.Errorf("%s: jsonValue %s %#v (%v), want %s %#v", f[0], text, both, err, f[2], want)
		}
	}
	if n < 10000 {
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
		var s replyScratch
		_, _, _, _ = s.decodeEnv(b, 0, nil)
		// Reading a value once for both its JSON and its Go value gives what the two readings do.
		d = decoder{b: b}
		text, v, err := d.jsonValue(nil, 0)
		d = decoder{b: b}
		wantText, wantErr := d.json(nil, compactSeparators, 0)
		if (err == nil) != (wantErr == nil) || err == nil && !bytes.Equal(text, wantText) {
			t.Fatalf("jsonValue %s (%v), json %s (%v)", text, err, wantText, wantErr)
		}
		if err == nil {
			d = decoder{b: b}
			if want, _ := d.value(0); !reflect.DeepEqual(v, want) && !(isNaN(v) && isNaN(want)) {
				t.Fatalf("jsonValue %#v, value %#v", v, want)
			}
		}
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

func isNaN(v any) bool {
	f, ok := v.(float64)
	return ok && math.IsNaN(f)
}

// TestDictKeyOrder: a map written in the remembered order of the previous one gives the bytes
// and errors of a fresh encoder, whatever keys it has.
func TestDictKeyOrder(t *testing.T) {
	nan := math.NaN()
	values := []map[string]any{
		{"b": 1, "a": 2.5}, {"a": 3.5, "b": "x"}, {"b": nil, "a": []any{1.0}},
		{"a": 1, "c": 2}, {"a": 1, "b": 2, "c": 3}, {}, nil, {"a": 1.0},
		{"a": 1.0, "b": nan},                       // an error in the remembered order
		{"a": 1.0, "c": 2.0}, {"a": 1.0, "b": nan}, // a missing key before the failing one
		{"a": nan, "c": 1.0}, {"a": map[string]any{"y": 1, "x": 2}, "c": 1e300},
		{"é": "x", "日本": 1}, {"é": 1.5, "日本": 2.5}, {"bad\xff": 1},
	}
	var cached encoder
	for i, m := range values {
		for range 2 {
			cached.b = cached.b[:0]
			err := cached.dict(m, 0, &cached.env)
			var fresh encoder
			want := fresh.value(m, 0)
			if fmt.Sprint(err) != fmt.Sprint(want) || err == nil && !bytes.Equal(cached.b, fresh.b) {
				t.Errorf("map %d %v: %x (%v), fresh encoder %x (%v)", i, m, cached.b, err, fresh.b, want)
			}
			keys := slices.Sorted(maps.Keys(m))
			if err == nil && !slices.Equal(cached.env.keys, keys) {
				t.Errorf("map %d: remembered keys %q, want %q", i, cached.env.keys, keys)
			}
		}
	}
}

// TestContextEncoding: the context fields are encoded as they were before they were
// remembered, whichever of them changes between runs.
func TestContextEncoding(t *testing.T) {
	t1 := time.Date(2026, 1, 2, 3, 4, 5, 678900000, time.UTC)
	t2 := t1.Add(time.Second)
	base := exec.Context{Host: "redis", Port: 6380, InputKey: "in", OutputKey: "out",
		FunctionGetmtime: "2026-01-01 00:00:00", Trigger: "keyspace", Function: "usermodule.handler"}
	ctxs := []exec.Context{base, base, base, base, base, base, {}, base}
	ctxs[1].LastExecution = &t1
	ctxs[2].LastExecution = &t2
	ctxs[3].Trigger, ctxs[3].EntryID = "stream", "1-1"
	ctxs[4].Port = 1 << 40
	ctxs[5].Host = "h\xffst"
	var cached encoder
	for i, c := range ctxs {
		cached.b = cached.b[:0]
		cached.context(c)
		var want encoder
		want.str(c.Host)
		want.int64(int64(c.Port))
		want.str(c.InputKey)
		want.str(c.OutputKey)
		want.str(c.FunctionGetmtime)
		if c.LastExecution == nil {
			want.b = append(want.b, mNone)
		} else {
			want.float(float64(c.LastExecution.UnixMicro()) / 1e6)
		}
		want.str(c.Trigger)
		want.str(c.EntryID)
		want.str(c.Function)
		if !bytes.Equal(cached.b, want.b) {
			t.Errorf("context %d: %x, want %x", i, cached.b, want.b)
		}
	}
}

// marshalDict is the marshal of a dict with the given keys and values, in that order.
func marshalDict(t *testing.T, kv ...any) []byte {
	t.Helper()
	e := encoder{b: []byte{mDict}}
	for i := 0; i < len(kv); i += 2 {
		if k, ok := kv[i].([]byte); ok { // raw bytes: a key marshal carries but Go would not
			e.b = append(e.b, mUnicode)
			e.u32(len(k))
			e.b = append(e.b, k...)
		} else {
			e.str(kv[i].(string))
		}
		if err := e.value(kv[i+1], 0); err != nil {
			t.Fatal(err)
		}
	}
	return append(e.b, mNull)
}

// TestDecodeEnvKnownKeys: the keys the env was sent with change nothing in what decodeEnv
// returns, whatever the handler did to the env; they only save copies. A scratch buffer
// reused by the next decoding leaves the previous result intact.
func TestDecodeEnvKnownKeys(t *testing.T) {
	known := []string{"a", "b", "c"}
	envs := [][]byte{
		marshalDict(t, "a", 1.5, "b", 2, "c", "x"),
		marshalDict(t, "a", 1.5, "c", 3.25),                  // b deleted
		marshalDict(t, "b", 1.5, "c", 3.25),                  // a deleted
		marshalDict(t, "c", 1.0),                             // a and b deleted
		marshalDict(t, "a", 1.5, "b", 2, "c", "x", "d", nil), // d added
		marshalDict(t, "c", 1.5, "a", 2, "b", []any{1, "y"}), // reordered
		marshalDict(t, "x", map[string]any{"k": 1e300}, "é", true),
		marshalDict(t, "a", 1, []byte("b\xed\xa0\x80"), 2, "c", 3), // a lone surrogate
		marshalDict(t, "a", 1, "a", 2),                             // a repeated key: the last wins
		marshalDict(t),
	}
	var s, ref replyScratch
	var prev exec.Fields
	var prevCopy map[string]string
	for i, b := range envs {
		env, fields, size, err := s.decodeEnv(b, len(known), known)
		wantEnv, wantFields, wantSize, wantErr := ref.decodeEnv(b, 0, nil)
		if err != nil || wantErr != nil {
			t.Fatalf("env %d: %v, %v", i, err, wantErr)
		}
		if !reflect.DeepEqual(env, wantEnv) || !reflect.DeepEqual(fields.Map(), wantFields.Map()) || len(fields) != len(env) || size != wantSize {
			t.Errorf("env %d: %v %q %d, want %v %q %d", i, env, fields, size, wantEnv, wantFields, wantSize)
		}
		for k, v := range prev.All() {
			if string(v) != prevCopy[k] {
				t.Errorf("env %d: the previous result's field %q became %q, was %q", i, k, v, prevCopy[k])
			}
		}
		prev, prevCopy = fields, map[string]string{}
		for k, v := range fields.All() {
			prevCopy[k] = string(v)
		}
	}
	// Known keys are not copied again: the only allocations left are the maps and the buffer.
	known = []string{"avg-util-cpu0-60sec", "avg-util-cpu1-60sec", "executions"}
	b := marshalDict(t, known[0], 1.5, known[1], 2.5, known[2], 3)
	with := testing.AllocsPerRun(100, func() { _, _, _, _ = s.decodeEnv(b, 3, known) })
	without := testing.AllocsPerRun(100, func() { _, _, _, _ = s.decodeEnv(b, 3, nil) })
	if with != without-3 {
		t.Errorf("%v allocations with the known keys, %v without: want 3 fewer", with, without)
	}
}

// TestRunsWithChangingKeys: runs whose input and env keys change from one run to the next
// (the encoder's remembered key orders and the decoder's known keys miss) give the same
// results as runs with nothing remembered.
func TestRunsWithChangingKeys(t *testing.T) {
	src := `
def handler(input, context):
    env = context.env
    for k in input.get("delete", []):
        env.pop(k, None)
    env.update(input.get("set", {}))
    return {"keys": sorted(input), "env": env}
`
	e, _ := startEngine(t, src, Options{})
	fresh, _ := startEngine(t, src, Options{})
	inputs := []map[string]any{
		{"set": map[string]any{"b": 1.5, "a": 2}},
		{"set": map[string]any{"b": 2.5}, "x": 1},
		{"set": map[string]any{"c": "new"}, "y": 1}, // a key added
		{"delete": []any{"a"}, "y": 2.5},            // the first key deleted
		{"delete": []any{"c"}, "set": map[string]any{"é": nil}, "z": true},
		{"delete": []any{"b", "é"}},                         // emptied
		{"set": map[string]any{"b": 1.5, "a": 2}, "y": 1.0}, // back to the first keys
	}
	env := map[string]any{}
	for i, in := range inputs {
		got, err := e.Run(exec.Call{Input: in, Env: env})
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		fresh.req = encoder{} // forget what the previous runs left
		want, err := fresh.Run(exec.Call{Input: in, Env: env})
		if err != nil {
			t.Fatalf("run %d, fresh encoder: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("run %d: %+v, a fresh encoder gives %+v", i, got, want)
		}
		fields := map[string]string{}
		for k, v := range got.EnvFields.All() {
			fields[k] = string(v)
		}
		if decoded, err := exec.DecodeEnv(fields); err != nil || !reflect.DeepEqual(decoded, got.Env) {
			t.Errorf("run %d: EnvFields %q decode to %v (%v), Env is %v", i, fields, decoded, err, got.Env)
		}
		env = got.Env
	}
	if want := map[string]any{"a": 2, "b": 1.5}; !reflect.DeepEqual(env, want) {
		t.Errorf("final env %v, want %v", env, want)
	}
}

// BenchmarkJSONText is the encoding of a json.RawMessage input (the metrics sample) as marshal.
func BenchmarkJSONText(b *testing.B) {
	raw, err := os.ReadFile("testdata/metrics-sample.json")
	if err != nil {
		b.Fatal(err)
	}
	var e encoder
	b.ReportAllocs()
	cputime.ReportPerOp(b)
	for b.Loop() {
		e.b = e.b[:0]
		if err := e.jsonText(raw); err != nil {
			b.Fatal(err)
		}
	}
}
