package quote

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValue(t *testing.T) {
	long := "1234567890" + strings.Repeat("9", 10000180)
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", `""`},
		{"short", "abc", `"abc"`},
		{"escapes", "a\"b\n", `"a\"b\n"`},
		{"exactly MaxBytes", strings.Repeat("x", MaxBytes), `"` + strings.Repeat("x", MaxBytes) + `"`},
		{"one byte over", strings.Repeat("x", MaxBytes+1), `"` + strings.Repeat("x", MaxBytes) + `…" (257 bytes)`},
		{"10 MB number", long, `"` + long[:MaxBytes] + `…" (10000190 bytes)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Value(tt.in); got != tt.want {
				t.Errorf("Value = %.80s, want %.80s", got, tt.want)
			}
			if got := Bytes([]byte(tt.in)); got != tt.want {
				t.Errorf("Bytes = %.80s, want %.80s", got, tt.want)
			}
		})
	}
}

// A cut never splits a character: the quoted prefix stays valid UTF-8 and shows no \x escape.
func TestValueCutsAtCharacterBoundary(t *testing.T) {
	for pad := range 4 {
		s := strings.Repeat("a", pad) + strings.Repeat("€", 200) // 3 bytes each
		got := Value(s)
		if !utf8.ValidString(got) || strings.Contains(got, `\x`) {
			t.Fatalf("pad %d: %q splits a character", pad, got)
		}
		if len(got) > MaxBytes+40 {
			t.Fatalf("pad %d: %d bytes, want about MaxBytes", pad, len(got))
		}
		if !strings.HasSuffix(got, "("+strconv.Itoa(len(s))+" bytes)") {
			t.Fatalf("pad %d: %q does not state the length %d", pad, got[len(got)-30:], len(s))
		}
	}
}

func TestText(t *testing.T) {
	if got := Text("short message"); got != "short message" {
		t.Errorf("Text(short) = %q", got)
	}
	long := `strconv.Atoi: parsing "` + strings.Repeat("a", 5<<20) + `": invalid syntax`
	got := Text(long)
	want := long[:MaxTextBytes] + "… (" + strconv.Itoa(len(long)) + " bytes)"
	if got != want {
		t.Errorf("Text(long) = %.60s…%s, want the first %d bytes and the length", got, got[len(got)-30:], MaxTextBytes)
	}
}
