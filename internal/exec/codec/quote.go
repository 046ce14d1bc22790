package codec

import (
	"unicode/utf8"
)

// AppendString quotes s like encoding/json with SetEscapeHTML(false).
func AppendString(dst []byte, s string) []byte { return appendString(dst, s, &jsonSafe) }

// AppendPyString quotes s as Python's json.dumps does with ensure_ascii (its default): printable
// ASCII as is, every other character as a \uXXXX escape, a pair of them above U+FFFF. s is
// UTF-8 in which a lone surrogate may appear encoded like other code points (WTF-8, as CPython's
// marshal carries it and the [Python] dialect decodes it), written as its own escape; an invalid
// byte is written as \ufffd.
func AppendPyString(dst, s []byte) []byte { return appendString(dst, s, &asciiSafe) }

// Bytes written as they are: printable ASCII but the quote and the backslash; encoding/json
// also writes DEL so, json.dumps with ensure_ascii does not.
var jsonSafe, asciiSafe = safeSet(0x7f), safeSet(0x7e)

func safeSet(last byte) (set [256]bool) {
	for b := byte(0x20); b <= last; b++ {
		set[b] = b != '"' && b != '\\'
	}
	return set
}

const hexDigits = "0123456789abcdef"

// appendString is AppendString with encoding/json's safe set, AppendPyString with the ASCII
// one: the escapes of ASCII bytes are the same in both; a character beyond ASCII is written as
// it is by encoding/json (but U+2028 and U+2029), escaped by json.dumps.
func appendString[S string | []byte](dst []byte, s S, safe *[256]bool) []byte {
	ascii := safe == &asciiSafe
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if safe[b] {
			i++
			continue
		}
		if b < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case ascii:
			if c == utf8.RuneError && size == 1 && b == 0xed && i+2 < len(s) && s[i+1]&0xe0 == 0xa0 && s[i+2]&0xc0 == 0x80 {
				c, size = rune(b&0x0f)<<12|rune(s[i+1]&0x3f)<<6|rune(s[i+2]&0x3f), 3 // a lone surrogate
			}
			dst = append(dst, s[start:i]...)
			if c > 0xffff {
				c -= 0x10000
				dst = appendU4(dst, 0xd800|(c>>10)&0x3ff)
				c = 0xdc00 | c&0x3ff
			}
			dst = appendU4(dst, c)
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = appendU4(dst, c)
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendU4(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}
