package codec

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// tracer is a Visitor that writes each token down: objects and arrays as {…}n and […]n with
// the number of members, keys as k"…", strings quoted, numbers as literal=value with i for an
// integer literal.
type tracer struct{ b strings.Builder }

func (t *tracer) BeginObject() int      { t.b.WriteString("{"); return t.b.Len() }
func (t *tracer) Key(k []byte)          { t.b.WriteString(" k" + strconv.Quote(string(k))) }
func (t *tracer) EndObject(mark, n int) { fmt.Fprintf(&t.b, " }%d@%d", n, mark) }
func (t *tracer) BeginArray() int       { t.b.WriteString("["); return t.b.Len() }
func (t *tracer) EndArray(mark, n int)  { fmt.Fprintf(&t.b, " ]%d@%d", n, mark) }
func (t *tracer) String(s []byte)       { t.b.WriteString(" " + strconv.Quote(string(s))) }
func (t *tracer) Number(lit []byte, n Num, integer bool) {
	fmt.Fprintf(&t.b, " %s=%#v", lit, n.Value())
	if integer {
		t.b.WriteString("i")
	}
}
func (t *tracer) Bool(b bool) { fmt.Fprintf(&t.b, " %v", b) }
func (t *tracer) Null()       { t.b.WriteString(" null") }

func TestWalkTokens(t *testing.T) {
	for _, tc := range []struct {
		in      string
		dialect Dialect
		want    string
	}{
		{`{"a": [1, 2.5e0, "x"], "b": null, "a": true}`, Standard,
			`{ k"a"[ 1=1i 2.5e0=2.5 "x" ]3@7 k"b" null k"a" true }3@1`},
		{`[]`, Standard, `[ ]0@1`},
		{` {} `, Standard, `{ }0@1`},
		{`[false, -0, -0.0, 1E2]`, Standard, `[ false -0=0i -0.0=-0 1E2=100 ]4@1`},
		{`123456789012345678901234567890`, Standard, ` 123456789012345678901234567890=1.2345678901234568e+29i`},
		{`9223372036854775807`, Standard, ` 9223372036854775807=9223372036854775807i`},
		{`"a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"`, Standard, ` "a\"\\/\b\f\n\r\té😀"`},
		{`"\ud800x\udc00"`, Standard, " \"\ufffdx\ufffd\""},
		{"\"\xff ok\"", Standard, " \"\ufffd ok\""},
		{`{"\u00e9": "\ud800"}`, Python, `{ k"é" "\xed\xa0\x80" }1@1`},
		{`["\ud800\u0041", "\udbff\udfff", "\udfff\ud800"]`, Python,
			`[ "\xed\xa0\x80A" "\U0010ffff" "\xed\xbf\xbf\xed\xa0\x80" ]3@1`},
		{`[NaN, Infinity, -Infinity, -1e400, 1e400, 1e-400]`, Python,
			`[ NaN=NaN Infinity=+Inf -Infinity=-Inf -1e400=-Inf 1e400=+Inf 1e-400=0 ]6@1`},
		{`-123456789012345678901234567890`, Python, ` -123456789012345678901234567890=-1.2345678901234568e+29i`},
		{`1` + strings.Repeat("0", 400), Python, ` 1` + strings.Repeat("0", 400) + `=+Infi`},
	} {
		var tr tracer
		w := Walker{Dialect: tc.dialect}
		if err := w.Walk([]byte(tc.in), &tr); err != nil {
			t.Errorf("%.40s: %v", tc.in, err)
			continue
		}
		if got := tr.b.String(); got != tc.want {
			t.Errorf("%.40s (dialect %d):\n got %s\nwant %s", tc.in, tc.dialect, got, tc.want)
		}
	}
}

// TestWalkNaNBits: Python's NaN is CPython's, bit for bit.
func TestWalkNaNBits(t *testing.T) {
	b := &treeBuilder{}
	if err := (&Walker{Dialect: Python}).Walk([]byte(`NaN`), b); err != nil {
		t.Fatal(err)
	}
	if f, ok := b.root.(float64); !ok || math.Float64bits(f) != 0x7ff8000000000000 {
		t.Errorf("NaN is %#v", b.root)
	}
}

// TestWalkErrors: the walker refuses what Decode refuses, with the same message, in both
// dialects but for what Python's dialect reads; and it keeps its own depth bound.
func TestWalkErrors(t *testing.T) {
	bad := []string{``, ` `, `{`, `[1,]`, `{"a"}`, `{"a":1,}`, `01`, `1.`, `.5`, `-`, `1e`, "\"\x01\"", `"abc`,
		`tru`, `{"a":1}x`, `"\u12"`, `"\x"`, `[1 2]`, `{1:2}`, `nan`, `{"a": tru}`, `1.e5`, `1e+`,
		`"\u12G4"`, "{\n  \"x\": [1,\n   }", `{"é€": x}`, `nul`, `[-Inf]`, `Nan`, `-Infinityx`, `[NaN`}
	for _, in := range bad {
		_, want := Decode([]byte(in))
		for _, d := range []Dialect{Standard, Python} {
			err := (&Walker{Dialect: d}).Walk([]byte(in), &tracer{})
			if !isDecodeError(err) {
				t.Errorf("%q (dialect %d): %v, want a decode error", in, d, err)
				continue
			}
			if d == Standard && err.Error() != want.Error() {
				t.Errorf("%q: walker %q, Decode %q", in, err, want)
			}
		}
	}
	if err := (&Walker{}).Walk([]byte(`[1e400]`), &tracer{}); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("1e400 in standard JSON: %v", err)
	}
	for _, in := range []string{`NaN`, `Infinity`, `-Infinity`} {
		if err := (&Walker{}).Walk([]byte(in), &tracer{}); err == nil {
			t.Errorf("%s accepted as standard JSON", in)
		}
	}
	w := Walker{Dialect: Python, MaxDepth: 3}
	if err := w.Walk([]byte(`[[{"a":[]}]]`), &tracer{}); !errors.Is(err, ErrTooDeep) {
		t.Errorf("4 levels with MaxDepth 3: %v", err)
	}
	if err := w.Walk([]byte(`[[{"a":1}]]`), &tracer{}); err != nil {
		t.Errorf("3 levels with MaxDepth 3: %v", err)
	}
	var de *DecodeError
	if err := w.Walk([]byte("[1,\n x]"), &tracer{}); !errors.As(err, &de) || de.Offset != 5 || de.Line != 2 || de.Column != 2 {
		t.Errorf("error %v, want it at offset 5, 2:2", err)
	}
}

// treeBuilder is a Visitor that builds the values Decode gives.
type treeBuilder struct {
	stack []*treeFrame
	root  any
	strs  []string // every key and string, as given
}

type treeFrame struct {
	m   map[string]any
	a   []any
	key string
}

func (t *treeBuilder) add(v any) {
	if len(t.stack) == 0 {
		t.root = v
		return
	}
	f := t.stack[len(t.stack)-1]
	if f.m != nil {
		f.m[f.key] = v
	} else {
		f.a = append(f.a, v)
	}
}

func (t *treeBuilder) BeginObject() int {
	t.stack = append(t.stack, &treeFrame{m: map[string]any{}})
	return len(t.stack) - 1
}

func (t *treeBuilder) Key(k []byte) {
	t.stack[len(t.stack)-1].key = string(k)
	t.strs = append(t.strs, string(k))
}

func (t *treeBuilder) EndObject(mark, n int) {
	f := t.stack[mark]
	t.stack = t.stack[:mark]
	t.add(f.m)
}

func (t *treeBuilder) BeginArray() int {
	t.stack = append(t.stack, &treeFrame{a: []any{}})
	return len(t.stack) - 1
}

func (t *treeBuilder) EndArray(mark, n int) {
	f := t.stack[mark]
	t.stack = t.stack[:mark]
	t.add(f.a)
}

func (t *treeBuilder) String(s []byte) {
	t.strs = append(t.strs, string(s))
	t.add(string(s))
}

func (t *treeBuilder) Number(_ []byte, n Num, _ bool) { t.add(n.Value()) }
func (t *treeBuilder) Bool(b bool)                    { t.add(b) }
func (t *treeBuilder) Null()                          { t.add(nil) }

// walkTree walks data in dialect d into the values Decode gives.
func walkTree(data []byte, d Dialect) (*treeBuilder, error) {
	b := &treeBuilder{}
	w := Walker{Dialect: d}
	err := w.Walk(data, b)
	return b, err
}

// fromWTF8 replaces each surrogate encoded as UTF-8 encodes other code points with U+FFFD:
// what the standard dialect gives for the escape Python's keeps.
func fromWTF8(s string) string {
	var b []byte
	for i := 0; i < len(s); {
		if s[i] == 0xed && i+2 < len(s) && s[i+1]&0xe0 == 0xa0 && s[i+2]&0xc0 == 0x80 {
			b = utf8.AppendRune(b, utf8.RuneError)
			i += 3
			continue
		}
		b = append(b, s[i])
		i++
	}
	return string(b)
}

// fromWTF8Value is fromWTF8 on every key and string of v.
func fromWTF8Value(v any) any {
	switch x := v.(type) {
	case string:
		return fromWTF8(x)
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			out[i] = fromWTF8Value(el)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, el := range x {
			out[fromWTF8(k)] = fromWTF8Value(el)
		}
		return out
	}
	return v
}

// checkDialects: the standard walk reads what Decode reads, to the same values or the same
// error; Python's dialect reads a superset: where it refuses, the standard dialect refused
// at the same place with the same message, or before; where it reads what the standard
// dialect refused, that was one of Python's own literals or a number out of range; where both
// read, the values are the same but for the surrogates Python keeps. Every string Python's
// dialect gives, written by AppendPyString, is ASCII and reads back as itself; so is every
// string of the standard dialect written by AppendString.
func checkDialects(t *testing.T, data []byte, got any, err error) {
	std, stdErr := walkTree(data, Standard)
	if (stdErr == nil) != (err == nil) || err != nil && stdErr.Error() != err.Error() {
		t.Fatalf("%q: walker error %v, Decode error %v", data, stdErr, err)
	}
	if err == nil && !reflect.DeepEqual(std.root, got) {
		t.Fatalf("%q: walker %#v, Decode %#v", data, std.root, got)
	}
	for _, s := range std.strs {
		if back, err := Decode(AppendString(nil, s)); err != nil || back != s {
			t.Fatalf("%q: AppendString reads back as %q (%v)", s, back, err)
		}
	}
	py, pyErr := walkTree(data, Python)
	var pe, se *DecodeError
	switch {
	case pyErr != nil:
		if !errors.As(pyErr, &pe) || !errors.As(stdErr, &se) || se.Offset > pe.Offset ||
			se.Offset == pe.Offset && se.Message != pe.Message {
			t.Fatalf("%q: Python's dialect refuses it (%v), the standard one gives %v", data, pyErr, stdErr)
		}
	case stdErr != nil:
		errors.As(stdErr, &se)
		if c := data[se.Offset]; c != 'N' && c != 'I' && !strings.Contains(se.Message, "out of range") {
			t.Fatalf("%q: Python's dialect reads it, the standard one refuses it: %v", data, stdErr)
		}
	case !reflect.DeepEqual(fromWTF8Value(py.root), std.root):
		t.Fatalf("%q: Python's dialect gives %#v, the standard one %#v", data, py.root, std.root)
	}
	if pyErr != nil {
		return
	}
	for _, s := range py.strs {
		q := AppendPyString(nil, []byte(s))
		for _, c := range q {
			if c < 0x20 || c >= 0x7f {
				t.Fatalf("%q: AppendPyString gives %q, not printable ASCII", s, q)
			}
		}
		back, err := walkTree(q, Python)
		if err != nil || back.root != s {
			t.Fatalf("%q: AppendPyString gives %s, which reads as %q (%v)", s, q, back.root, err)
		}
	}
}
