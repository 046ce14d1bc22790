package codec

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestDecodeInputValues(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{`5`, 5},
		{` -0 `, 0},
		{`5.0`, 5.0},
		{`-12.5e-1`, -1.25},
		{`1E3`, 1000.0},
		{`9223372036854775807`, math.MaxInt64},
		{`-9223372036854775808`, math.MinInt64},
		{`9223372036854775808`, 9223372036854775808.0},
		{`123456789012345678901234567890`, 1.2345678901234568e+29},
		{`"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00"`, "a\"b\\c/d\b\f\n\r\té😀"},
		{`"\ud800x\udc00"`, "\uFFFDx\uFFFD"},
		{"\"\xff\xfe ok\"", "\uFFFD\uFFFD ok"},
		{`[]`, []any{}},
		{`{}`, map[string]any{}},
		{`[1, "x", null, true, false, [2.5], {"k": {}}]`, []any{1, "x", nil, true, false, []any{2.5}, map[string]any{"k": map[string]any{}}}},
		{`{"a": 1, "a": 2, "b": {"c": [3]}}`, map[string]any{"a": 2, "b": map[string]any{"c": []any{3}}}},
	} {
		got, err := Decode([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %#v, want %#v", tc.in, got, tc.want)
		}
	}
}

func TestDecodeInputErrors(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{``, `invalid JSON at 1:1: unexpected end of JSON input`},
		{`{"a": 1,}`, `invalid JSON at 1:9: invalid character '}' looking for beginning of object key string`},
		{`{"a" 1}`, `invalid JSON at 1:6: invalid character '1' after object key`},
		{`{"a": 1 "b": 2}`, `invalid JSON at 1:9: invalid character '"' after object key:value pair`},
		{`[1 2]`, `invalid JSON at 1:4: invalid character '2' after array element`},
		{`"abc`, `invalid JSON at 1:5: unexpected end of JSON input`},
		{`{"a": tru}`, `invalid JSON at 1:10: invalid character '}' in literal true (expecting 'e')`},
		{`01`, `invalid JSON at 1:2: invalid character '1' after top-level value`},
		{`-`, `invalid JSON at 1:2: unexpected end of JSON input`},
		{`-x`, `invalid JSON at 1:2: invalid character 'x' in numeric literal`},
		{`1.e5`, `invalid JSON at 1:3: invalid character 'e' after decimal point in numeric literal`},
		{`1e+`, `invalid JSON at 1:4: unexpected end of JSON input`},
		{`"\x"`, `invalid JSON at 1:3: invalid character 'x' in string escape code`},
		{`"\u12G4"`, `invalid JSON at 1:6: invalid character 'G' in string escape code`},
		{"\"a\tb\"", `invalid JSON at 1:3: invalid character '\t' in string literal`},
		{"{\n  \"x\": [1,\n   }", `invalid JSON at 3:4: invalid character '}' looking for beginning of value`},
		{`{"é€": x}`, `invalid JSON at 1:8: invalid character 'x' looking for beginning of value`},
		{`1e400`, `invalid JSON at 1:1: number "1e400" is out of range`},
		{`nul`, `invalid JSON at 1:4: unexpected end of JSON input`},
	} {
		_, err := Decode([]byte(tc.in))
		var de *DecodeError
		if !isDecodeError(err) || !errors.As(err, &de) {
			t.Errorf("%q: error %v, want a decode error", tc.in, err)
			continue
		}
		if de.Error() != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.in, de.Error(), tc.want)
		}
	}
	_, err := Decode([]byte(strings.Repeat("[", 10001) + strings.Repeat("]", 10001)))
	if !isDecodeError(err) || !errors.Is(err, ErrTooDeep) {
		t.Errorf("10001 levels: %v", err)
	}
	if _, err := Decode([]byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000))); err != nil {
		t.Errorf("10000 levels are allowed, as in encoding/json: %v", err)
	}
}

// TestDecoderReusesKeys checks that a Decoder gives the same values as Decode, hands out
// the same key strings for repeated documents, and stays correct when used concurrently and
// after errors.
func TestDecoderReusesKeys(t *testing.T) {
	raw := sampleInput(t)
	want, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	dec := NewDecoder()
	if _, err := dec.Decode([]byte(`{"a": {"b": [1, {"c": `)); !isDecodeError(err) {
		t.Fatalf("truncated input: %v", err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				got, err := dec.Decode(raw)
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("Decoder: %v, equal=%v", err, reflect.DeepEqual(got, want))
					return
				}
			}
		}()
	}
	wg.Wait()
	if raceEnabled {
		return
	}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := dec.Decode(raw); err != nil {
			t.Fatal(err)
		}
	})
	plain := testing.AllocsPerRun(20, func() {
		if _, err := Decode(raw); err != nil {
			t.Fatal(err)
		}
	})
	// 34 keys: the Decoder allocates none of them again.
	if plain-allocs < 30 {
		t.Errorf("Decoder allocations %v, Decode %v: keys are not reused", allocs, plain)
	}
}

// TestDecoderShapeChanges feeds one Decoder documents whose keys change order, number, nesting
// and spelling from one document to the next: the key sequence remembered from the previous
// document must never hand out a key that is not the one in the text.
func TestDecoderShapeChanges(t *testing.T) {
	long := strings.Repeat("k", maxInternedKeyLen+1)
	docs := []string{
		`{"a": 1, "b": 2, "c": {"d": 3}}`,
		`{"b": 1, "a": 2, "c": {"d": 3}}`,
		`{"a": 1, "b": 2}`,
		`{"a": 1, "b": 2, "c": {"d": 3, "e": 4}, "f": 5}`,
		`{"a": 1, "ab": 2, "c": {"e": 3, "d": 4}, "f": 5}`,
		`{"a\u0062": 1, "b": 2, "c": {"d": 3}}`,
		`{"` + long + `": 1, "a": 2, "b": 3}`,
		`[{"a": 1}, {"a": 2, "b": 3}, {"b": 4}]`,
		`{"é": 1, "a": 2}`,
		`{"a": 1, "b": 2, "c": {"d": 3}}`,
		`{"": 1, "a": 2}`,
	}
	dec := NewDecoder()
	for round := range 3 {
		for _, doc := range docs {
			want, err := Decode([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			got, err := dec.Decode([]byte(doc))
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("round %d, %s: got %#v (%v), want %#v", round, doc, got, err, want)
			}
		}
	}
}

// TestDecimalFloatLikeParseFloat checks the shortcut for short decimals against
// strconv.ParseFloat, bit for bit, on edge cases and on random literals of every length.
func TestDecimalFloatLikeParseFloat(t *testing.T) {
	lits := []string{"0.0", "-0.0", "0.1", "-0.1", "45.6", "7.0", "0.000000000000001", "-99999999999999.9",
		"999999999999999.9", "0.3333333333333333", "1.7976931348623157", "123456789012345.6", "9007199254740993.0",
		"0.00000000000000000000001", "1764085200.123456"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		ip := strconv.FormatUint(rng.Uint64N(1e12), 10)
		ip = ip[:1+rng.IntN(len(ip))]
		fp := strconv.FormatUint(rng.Uint64N(1e18), 10)
		fp = fp[:1+rng.IntN(len(fp))]
		lit := ip + "." + fp
		if rng.IntN(2) == 0 {
			lit = "-" + lit
		}
		lits = append(lits, lit)
	}
	for _, lit := range lits {
		want, err := strconv.ParseFloat(lit, 64)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode([]byte(lit))
		if err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		if f, ok := got.(float64); !ok || math.Float64bits(f) != math.Float64bits(want) {
			t.Fatalf("%s: got %#v, want %v (%#x)", lit, got, want, math.Float64bits(want))
		}
	}
}

// TestIntegersLikeStrconv: integers of every length, read as digits are scanned, give the int
// strconv.ParseInt gives, or beyond an int64, the float ParseFloat gives, bit for bit; with an
// exponent, the float.
func TestIntegersLikeStrconv(t *testing.T) {
	lits := []string{"0", "-0", "9", "123456789012345678", "-123456789012345678", "999999999999999999",
		"1000000000000000000", "9223372036854775807", "-9223372036854775808", "9223372036854775808",
		"18446744073709551615", "18446744073709551616", "99999999999999999999", "1e0", "-0e5", "12E-2"}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		lit := strconv.FormatUint(rng.Uint64(), 10) + strconv.FormatUint(rng.Uint64N(100), 10)
		lit = lit[:1+rng.IntN(len(lit))]
		if lit != "0" {
			lit = strings.TrimLeft(lit, "0")
		}
		if lit == "" {
			lit = "0"
		}
		if rng.IntN(2) == 0 {
			lit = "-" + lit
		}
		lits = append(lits, lit)
	}
	for _, lit := range lits {
		got, err := Decode([]byte(lit))
		if err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		if i, err := strconv.ParseInt(lit, 10, 64); err == nil {
			if got != int(i) {
				t.Fatalf("%s: got %#v, want the int %d", lit, got, i)
			}
			continue
		}
		want, err := strconv.ParseFloat(lit, 64)
		if err != nil {
			t.Fatal(err)
		}
		if f, ok := got.(float64); !ok || math.Float64bits(f) != math.Float64bits(want) {
			t.Fatalf("%s: got %#v, want %v", lit, got, want)
		}
	}
}

// isDecodeError reports whether err is a *DecodeError.
func isDecodeError(err error) bool {
	var de *DecodeError
	return errors.As(err, &de)
}

// sampleInput is the metrics document the examples read.
func sampleInput(t testing.TB) []byte {
	t.Helper()
	raw, err := os.ReadFile("../exprengine/testdata/metrics-sample.json")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// A huge number is named in the error by its first bytes and its length, not in full: the
// error goes to a log line.
func TestDecodeErrorCutsHugeNumber(t *testing.T) {
	in := "1" + strings.Repeat("9", 10<<20) + "e999"
	_, err := Decode([]byte(in))
	if err == nil {
		t.Fatal("a number out of range decoded")
	}
	msg := err.Error()
	if len(msg) > 1024 || !strings.Contains(msg, "("+strconv.Itoa(len(in))+" bytes)") {
		t.Fatalf("error of %d bytes (want < 1 KiB stating %d bytes): %.300s", len(msg), len(in), msg)
	}
}
