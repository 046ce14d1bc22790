// Package quote owns how eventrt shows a user's value (an input, a setting, a key name) in a
// log line or an error: quoted, and cut to a few hundred bytes with its full length stated,
// so that a 10 MB value makes a line of a few hundred bytes rather than one of 10 MB.
package quote

import (
	"strconv"
	"unicode/utf8"
)

// MaxBytes is how many bytes of a value Value keeps before cutting it.
const MaxBytes = 256

// Value returns s quoted as Go quotes strings (strconv.Quote). A value longer than MaxBytes
// is cut at a character boundary, marked with "…" inside the quotes and followed by its full
// length: "1234567890…" (10000190 bytes).
func Value(s string) string {
	if len(s) <= MaxBytes {
		return strconv.Quote(s)
	}
	return cut(s[:MaxBytes+1], len(s))
}

// Bytes is Value for a byte slice; it copies at most MaxBytes+1 bytes of b.
func Bytes(b []byte) string {
	if len(b) <= MaxBytes {
		return strconv.Quote(string(b))
	}
	return cut(string(b[:MaxBytes+1]), len(b))
}

// cut quotes the first MaxBytes bytes of head (which has at least MaxBytes+1), backed up to
// the start of a character, and states total.
func cut(head string, total int) string {
	n := MaxBytes
	// Never split a UTF-8 sequence: back up to the start of the character crossing the cut.
	for n > MaxBytes-utf8.UTFMax && !utf8.RuneStart(head[n]) {
		n--
	}
	return strconv.Quote(head[:n]+"…") + " (" + strconv.Itoa(total) + " bytes)"
}

// MaxTextBytes is how many bytes of a message Text keeps before cutting it.
const MaxTextBytes = 1024

// Text cuts a message that may embed user values (a handler's error, which can quote its
// input) to MaxTextBytes at a character boundary, followed by "… (N bytes)"; a shorter one is
// returned as it is. Unlike Value it does not quote: the message is eventrt's own text.
func Text(s string) string {
	if len(s) <= MaxTextBytes {
		return s
	}
	n := MaxTextBytes
	for n > MaxTextBytes-utf8.UTFMax && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "… (" + strconv.Itoa(len(s)) + " bytes)"
}
