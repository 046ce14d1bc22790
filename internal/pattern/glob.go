package pattern

import (
	"errors"
	"fmt"
	"strings"
)

// IsGlob reports whether s holds a glob metacharacter of Redis' MATCH syntax (*, ?, [): such an
// input key names a pattern function unless INPUT_MODE=key says it is a literal key.
func IsGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// Match reports whether key matches the glob pattern as Redis' stringmatchlen does (KEYS,
// SCAN MATCH, PSUBSCRIBE): * any run of bytes, ? one byte, [abc] [^abc] [a-z] a set, \x the
// byte x. Bytes, not runes, as in Redis.
func Match(pattern, key string) bool {
	p, k := 0, 0
	// Backtracking point of the last '*': where it resumes in the pattern and the key.
	starP, starK := -1, 0
	for k < len(key) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				for p < len(pattern) && pattern[p] == '*' {
					p++
				}
				if p == len(pattern) {
					return true
				}
				starP, starK = p, k
				continue
			case '?':
				p++
				k++
				continue
			case '[':
				if n, ok := matchClass(pattern[p:], key[k]); n > 0 {
					if ok {
						p += n
						k++
						continue
					}
				}
			case '\\':
				if p+1 < len(pattern) {
					if pattern[p+1] == key[k] {
						p += 2
						k++
						continue
					}
				} else if key[k] == '\\' {
					p++
					k++
					continue
				}
			default:
				if c == key[k] {
					p++
					k++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starK++
		p, k = starP, starK
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchClass matches b against the class at the start of pat ("[...]") and returns the
// class's length in pat. Like Redis, an unterminated class runs to the end of the pattern.
func matchClass(pat string, b byte) (n int, ok bool) {
	i := 1
	not := i < len(pat) && pat[i] == '^'
	if not {
		i++
	}
	match := false
	for i < len(pat) && pat[i] != ']' {
		switch {
		case pat[i] == '\\' && i+1 < len(pat):
			i++
			if pat[i] == b {
				match = true
			}
			i++
		case i+2 < len(pat) && pat[i+1] == '-' && pat[i+2] != ']':
			lo, hi := pat[i], pat[i+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			if b >= lo && b <= hi {
				match = true
			}
			i += 3
		default:
			if pat[i] == b {
				match = true
			}
			i++
		}
	}
	if i < len(pat) {
		i++ // the closing ']'
	}
	return i, match != not
}

// capture describes where the single '*' of a pattern sits: every other element of the
// pattern matches exactly one byte, so the star's text is what lies between the first pre
// bytes and the last post bytes of a matching key.
type capture struct{ pre, post int }

var errNoSingleStar = errors.New("an output key with '*' needs an input pattern with exactly one '*'")

// starCapture analyses pattern for capture. It fails unless the pattern has exactly one '*'.
func starCapture(pattern string) (capture, error) {
	var c capture
	stars := 0
	for p := 0; p < len(pattern); {
		switch pattern[p] {
		case '*':
			stars++
			p++
			continue
		case '\\':
			p += min(2, len(pattern)-p)
		case '[':
			n, _ := matchClass(pattern[p:], 0)
			p += n
		default:
			p++
		}
		if stars == 0 {
			c.pre++
		} else {
			c.post++
		}
	}
	if stars != 1 {
		return capture{}, fmt.Errorf("%w (pattern %q has %d)", errNoSingleStar, pattern, stars)
	}
	return c, nil
}

// of returns the text the star matched in key, which matches the pattern.
func (c capture) of(key string) string {
	if c.pre+c.post > len(key) {
		return ""
	}
	return key[c.pre : len(key)-c.post]
}
