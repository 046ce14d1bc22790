package codec

import (
	"encoding/json"
	"testing"
)

// TestAppendPyString: strings as CPython's json.dumps writes them (the wants are its output),
// lone surrogates given as marshal carries them; the same strings as encoding/json writes
// them through AppendString.
func TestAppendPyString(t *testing.T) {
	for _, tc := range []struct{ in, py string }{
		{"", `""`},
		{"ascii", `"ascii"`},
		{`quote " back \ slash`, `"quote \" back \\ slash"`},
		{"\x00\x01\x1f\x7f\n\r\t\b\f", `"\u0000\u0001\u001f\u007f\n\r\t\b\f"`},
		{"é", `"\u00e9"`},
		{"\u2028", `"\u2028"`},
		{"\U0001F600", `"\ud83d\ude00"`},
		{"\xed\xa0\x80", `"\ud800"`},
		{"a\xed\xbf\xbfb", `"a\udfffb"`},
		{"日本語", `"\u65e5\u672c\u8a9e"`},
		{"\ufffd", `"\ufffd"`},
		{"bad\xff", `"bad\ufffd"`},
		{"\xed\xa0", `"\ufffd\ufffd"`}, // a surrogate cut short: two invalid bytes
	} {
		if got := string(AppendPyString([]byte("x"), []byte(tc.in))); got != "x"+tc.py {
			t.Errorf("AppendPyString(%q) = %s, want %s", tc.in, got[1:], tc.py)
		}
		want, err := json.Marshal(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(AppendString(nil, tc.in)); got != string(want) {
			t.Errorf("AppendString(%q) = %s, encoding/json %s", tc.in, got, want)
		}
	}
}
