package exprengine

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"
)

// TestInputDecoderDocuments: objects with distinct keys become documents that read like the
// map DecodeInput gives, shape changes included; anything else is DecodeInput's value, and
// errors are DecodeInput's.
func TestInputDecoderDocuments(t *testing.T) {
	var in inputDecoder
	for _, tc := range []struct {
		raw   string
		isDoc bool
	}{
		{`{"a": 1, "b": 2.5, "c": "x", "d": [1, {"e": null}], "f": true, "g": -0.0, "h": 1e400}`, false}, // 1e400: an error
		{`{"a": 1, "b": 2.5, "c": "x", "d": [1, {"e": null}], "f": true, "g": -0.0}`, true},
		{`{"a": 2, "b": 3.5, "c": "y", "d": [], "f": false, "g": 7}`, true}, // same shape
		{`{"b": 2, "a": 3}`, true}, // another shape
		{` { "a" : 9223372036854775807 , "b" : -9223372036854775808, "c": 12345678901234567890 } `, true},
		{`{"a": 1, "a": 2}`, false}, // duplicate keys: the map, the last one winning
		{`{}`, true},
		{`[1, 2]`, false}, {`"s"`, false}, {`3`, false}, {`null`, false},
		{`{"a": 1} x`, false}, {`{"a":`, false}, {`{"a": `, false}, {`{"a": -`, false}, {`{"a": 1`, false}, {`{`, false}, {`{"a" 1}`, false}, {`{"a": 1,}`, false}, {`{"a": [1, 2}`, false}, {``, false},
		{`{"a\u0062": 1, "é": {"x": 1}}`, true},
	} {
		want, wantErr := exec.DecodeInput([]byte(tc.raw))
		got, err := in.decode(json.RawMessage(tc.raw), true)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Errorf("%s: error %v, DecodeInput's %v", tc.raw, err, wantErr)
			continue
		}
		if err != nil {
			continue
		}
		d, isDoc := got.(*document)
		if isDoc != tc.isDoc {
			t.Errorf("%s: a document: %v, want %v", tc.raw, isDoc, tc.isDoc)
		}
		if isDoc {
			m := want.(map[string]any)
			if len(d.vals) != len(m) {
				t.Errorf("%s: %d values, want %d", tc.raw, len(d.vals), len(m))
			}
			get := func(k string) any {
				n, v := d.lookup(k)
				return n.box(v)
			}
			for k, v := range m {
				if !d.has(k) || !sameValue(get(k), v) {
					t.Errorf("%s: [%q] = %#v, want %#v", tc.raw, k, get(k), v)
				}
			}
			if d.has("missing") || get("missing") != nil {
				t.Errorf("%s: a missing key is there", tc.raw)
			}
			got = d.asMap()
		}
		if !sameValue(got, want) {
			t.Errorf("%s: %#v, want %#v", tc.raw, got, want)
		}
		// Not as a document: DecodeInput's value.
		plain, err := in.decode(json.RawMessage(tc.raw), false)
		if err != nil || !reflect.DeepEqual(plain, want) {
			t.Errorf("%s, not as a document: %#v (%v), want %#v", tc.raw, plain, err, want)
		}
	}
}

// TestRunRawInputLikeDecoded: the classic handler given its input as JSON gives what it gives
// the decoded input, run after run, with shapes changing in between, and a decode error is
// DecodeInput's, of kind decode.
func TestRunRawInputLikeDecoded(t *testing.T) {
	p := compileFile(t, classicPath)
	sample := string(sampleInput(t))
	inputs := []string{sample, `{"cpu_percent-0": 5, "net_io_counters_eth0-bytes_sent": 1, "net_io_counters_eth0-bytes_recv": 3,
		"virtual_memory-cached": 1, "virtual_memory-buffers": 1, "virtual_memory-total": 8, "timestamp": 2}`, sample, sample}
	envA, envB := map[string]any{}, map[string]any{}
	for i, raw := range inputs {
		a, err := p.Run(exec.Call{Input: mustDecode(t, raw), Env: envA})
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.Run(exec.Call{Input: json.RawMessage(raw), Env: envB})
		if err != nil {
			t.Fatal(err)
		}
		if string(a.Output) != string(b.Output) || !reflect.DeepEqual(a.EnvFields.Map(), b.EnvFields.Map()) {
			t.Fatalf("run %d: decoded %s %s\nas JSON %s %s", i, a.Output, a.EnvFields, b.Output, b.EnvFields)
		}
		envA, envB = a.Env, b.Env
	}
	_, err := p.Run(exec.Call{Input: json.RawMessage(`{"a": }`), Env: envB})
	_, want := exec.DecodeInput([]byte(`{"a": }`))
	if exec.KindOf(err) != exec.KindDecode || err.Error() != want.Error() {
		t.Fatalf("bad JSON: %v (kind %q), want %v", err, exec.KindOf(err), want)
	}
}

// TestInputForWrappedProgram: a handler that embeds a Program (as the daemon's, which locates
// errors in bundle files) is given its input as JSON, like the Program; any other handler
// gets it decoded.
func TestInputForWrappedProgram(t *testing.T) {
	p := compileFile(t, classicPath)
	raw := sampleInput(t)
	type wrapped struct{ *Program }
	type other struct{ exec.Handler }
	for _, tc := range []struct {
		name string
		h    exec.Handler
		json bool
	}{{"program", p, true}, {"embedding a program", wrapped{p}, true}, {"another handler", other{p}, false}} {
		in, err := exec.InputFor(tc.h, raw, codec.NewDecoder())
		if err != nil {
			t.Fatal(err)
		}
		if _, isJSON := in.(json.RawMessage); isJSON != tc.json {
			t.Errorf("%s: input %T, want JSON %v", tc.name, in, tc.json)
		}
	}
}

// TestDocumentKeyCache: looking keys up through the key cache gives what the shape's
// index gives, across shapes (a key absent from one shape is found in the next), for equal
// keys at other addresses, and for more keys than the cache has places.
func TestDocumentKeyCache(t *testing.T) {
	var in inputDecoder
	decode := func(raw string) *document {
		t.Helper()
		v, err := in.decode(json.RawMessage(raw), true)
		if err != nil {
			t.Fatal(err)
		}
		return v.(*document)
	}
	key := strings.Repeat("c", 1)
	d := decode(`{"a": 1, "b": 2}`)
	if missed, cached := d.has(key), d.has(key); missed || cached { // the second from the cache
		t.Fatal(`"c" found in a document without it`)
	}
	d = decode(`{"a": 1, "c": 3}`)
	if n, _ := d.lookup(key); !d.has(key) || n != (num{i: 3, k: intNum}) {
		t.Fatalf(`"c" in a new shape: has %v, value %v`, d.has(key), n)
	}
	if n, _ := d.lookup(strings.Clone(key)); n != (num{i: 3, k: intNum}) {
		t.Fatalf(`"c" at another address: %v`, n)
	}
	var doc strings.Builder
	doc.WriteString("{")
	for i := range 3 * keyEntries {
		if i > 0 {
			doc.WriteString(",")
		}
		fmt.Fprintf(&doc, `"k%d": %d`, i, i)
	}
	doc.WriteString("}")
	d = decode(doc.String())
	keys := make([]string, 3*keyEntries+1)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	for round := range 3 {
		for i, k := range keys {
			n, _ := d.lookup(k)
			if want := i < 3*keyEntries; d.has(k) != want || want && n != (num{i: i, k: intNum}) {
				t.Fatalf("round %d, %s: has %v, value %v", round, k, d.has(k), n)
			}
		}
	}
}

// TestInputKeysByInt: input["k" + string(i)] and ("k" + string(i)) in input are remembered by
// i for the document's shape; documents whose keys move, go or come between runs get the
// values of their own keys (TestMain compares each run with the VM's).
func TestInputKeysByInt(t *testing.T) {
	p := mustCompile(t, `[map(0..2, input["k" + string(#)] ?? -1), map(0..2, ("k" + string(#)) in input), sum(0..2, input["k" + string(#)] ?? 0)]`)
	for _, tc := range []struct{ in, want string }{
		{`{"k0": 0, "k1": 1}`, `[[0,1,-1],[true,true,false],1]`},
		{`{"k0": 5, "k1": 6}`, `[[5,6,-1],[true,true,false],11]`},
		{`{"k1": 11, "k0": 10}`, `[[10,11,-1],[true,true,false],21]`},
		{`{"x": 1, "k2": 22, "k0": 20}`, `[[20,-1,22],[true,false,true],42]`},
		{`{"k0": 0, "k1": 1}`, `[[0,1,-1],[true,true,false],1]`},
	} {
		p.fast.bails.Store(0)
		res, err := p.Run(exec.Call{Input: json.RawMessage(tc.in), Env: map[string]any{}})
		if err != nil || string(res.Output) != tc.want {
			t.Fatalf("%s: %s (%v), want %s", tc.in, res.Output, err, tc.want)
		}
		if p.fast.bails.Load() != 0 {
			t.Fatalf("%s: the run left the fast path", tc.in)
		}
	}
}

// testKeys is the key cache lookup and has read documents through.
var testKeys keyCache

// lookup and has read a document as the fast path does (inputIndex), for the tests above.
func (d *document) lookup(k string) (num, any) {
	return d.at(testKeys.index(d.shape, k, strHash(k), false))
}

func (d *document) has(k string) bool { return testKeys.index(d.shape, k, strHash(k), false) >= 0 }
