package exprengine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompileErrors compiles every testdata/invalid-*.expr and compares the first line of
// the error with the sibling .err file: file:line:column: message.
func TestCompileErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid-*.expr")
	if err != nil || len(files) < 10 {
		t.Fatalf("want at least 10 invalid programs, got %d (%v)", len(files), err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(path, ".expr") + ".err")
			if err != nil {
				t.Fatal(err)
			}
			_, err = Compile(name, src, DefaultLimits())
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile error = %v (%T), want *CompileError", err, err)
			}
			first, rest, _ := strings.Cut(err.Error(), "\n")
			if first != strings.TrimSpace(string(want)) {
				t.Errorf("error:\n got %s\nwant %s", first, strings.TrimSpace(string(want)))
			}
			if ce.File != name || ce.Line < 1 || ce.Column < 1 {
				t.Errorf("position = %s:%d:%d", ce.File, ce.Line, ce.Column)
			}
			// The snippet is the offending line with a caret under the column.
			lines := strings.Split(rest, "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], " | ") || !strings.HasSuffix(lines[1], "^") {
				t.Fatalf("snippet = %q", rest)
			}
			if !strings.Contains(ce.Message, "nests deeper") { // that one is cut around the caret
				srcLine := strings.Split(string(src), "\n")[ce.Line-1]
				if lines[0] != " | "+srcLine {
					t.Errorf("snippet line = %q, want %q", lines[0], " | "+srcLine)
				}
				if caret := len([]rune(lines[1])) - len(" | "); caret != ce.Column {
					t.Errorf("caret at column %d, want %d", caret, ce.Column)
				}
			}
			if !IsCompile(err) {
				t.Error("IsCompile = false")
			}
		})
	}
}

func TestCompileSourceLimits(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxSourceBytes = 100
	_, err := Compile("big.expr", []byte(strings.Repeat("1 + ", 30)+"1"), lim)
	var ce *CompileError
	if !errors.As(err, &ce) || ce.Error() != "big.expr: source is 121 bytes, more than the limit of 100" {
		t.Errorf("oversized source: %v", err)
	}

	// Nesting that would overflow the parser's stack is refused before parsing, for each
	// construct the parser handles by recursion.
	deep := map[string]string{
		"parentheses": strings.Repeat("(", 200000) + "1" + strings.Repeat(")", 200000),
		"arrays":      strings.Repeat("[", 200000) + strings.Repeat("]", 200000),
		"maps":        strings.Repeat("{a: ", 200000) + "1" + strings.Repeat("}", 200000),
		"negation":    strings.Repeat("!", 400000) + "true",
		"minus":       strings.Repeat("- ", 200000) + "1",
		"not":         strings.Repeat("not ", 100000) + "true",
	}
	lim = DefaultLimits()
	lim.MaxSourceBytes = 1 << 20
	for name, src := range deep {
		_, err := Compile(name+".expr", []byte(src), lim)
		if !errors.As(err, &ce) || !strings.Contains(ce.Message, "nests deeper than 256 levels") || ce.Line != 1 {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Brackets in strings and comments do not count.
	ok := `let s = "` + strings.Repeat("(", 1000) + `"; // ` + strings.Repeat("[", 1000) + "\n" +
		"/* " + strings.Repeat("{", 1000) + " */ len(s) + len('" + strings.Repeat(")", 300) + "') + len(`" + strings.Repeat("(", 300) + "`)"
	if _, err := Compile("strings.expr", []byte(ok), lim); err != nil {
		t.Errorf("brackets in strings and comments: %v", err)
	}

	lim = DefaultLimits()
	lim.MaxNodes = 50
	_, err = Compile("nodes.expr", []byte(strings.Repeat("1 + ", 60)+"1"), lim)
	if !errors.As(err, &ce) || !strings.Contains(ce.Message, "exceeds maximum allowed nodes") {
		t.Errorf("node limit: %v", err)
	}

	_, err = Compile("utf8.expr", []byte("\"ok\" + \"\xff\""), DefaultLimits())
	if !errors.As(err, &ce) || ce.Message != "source is not valid UTF-8" || ce.Column != 9 {
		t.Errorf("invalid UTF-8: %v", err)
	}
}

func TestCompileInvalidLimits(t *testing.T) {
	lim := DefaultLimits()
	lim.Timeout = 0
	_, err := Compile("x.expr", []byte("1"), lim)
	if !IsInvalidLimits(err) || !strings.Contains(err.Error(), "Timeout must be positive") {
		t.Errorf("Compile with zero timeout: %v", err)
	}
}

func TestLimitsValidate(t *testing.T) {
	if err := DefaultLimits().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for field, mutate := range map[string]func(*Limits){
		"MaxSourceBytes": func(l *Limits) { l.MaxSourceBytes = 0 },
		"MaxNodes":       func(l *Limits) { l.MaxNodes = 0 },
		"MemoryBudget":   func(l *Limits) { l.MemoryBudget = 0 },
		"MaxStringBytes": func(l *Limits) { l.MaxStringBytes = -1 },
		"MaxOutputBytes": func(l *Limits) { l.MaxOutputBytes = 0 },
		"Timeout":        func(l *Limits) { l.Timeout = -1 },
	} {
		l := DefaultLimits()
		mutate(&l)
		err := l.Validate()
		if !errors.Is(err, ErrInvalidLimits) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
}

func TestUsesState(t *testing.T) {
	for src, want := range map[string]bool{
		`input.a + 1`: false,
		`{host: context.host, key: context.input_key, t: context.trigger}`: false,
		`env.count`:                   true,
		`context.env.count`:           true,
		`context["env"]`:              true,
		`let c = context; c.host`:     true,
		`$env.input`:                  true,
		`result(input, {})`:           true,
		`map(input.xs, # * 2)`:        false,
		`merge({a: 1}, {b: input.b})`: false,
	} {
		p, err := Compile("x.expr", []byte(src), DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if p.UsesState() != want {
			t.Errorf("UsesState(%s) = %v, want %v", src, p.UsesState(), want)
		}
	}
}

func TestProgramIdentity(t *testing.T) {
	a, err := Compile("a.expr", []byte("input.x"), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Compile("b.expr", []byte("input.x"), DefaultLimits())
	c, _ := Compile("a.expr", []byte("input.y"), DefaultLimits())
	if a.File() != "a.expr" || len(a.Hash()) != 16 {
		t.Errorf("File() = %q, Hash() = %q", a.File(), a.Hash())
	}
	if a.Hash() != b.Hash() || a.Hash() == c.Hash() {
		t.Errorf("hash must depend on the source only: %s %s %s", a.Hash(), b.Hash(), c.Hash())
	}
	if a.Limits() != DefaultLimits() {
		t.Errorf("Limits() = %+v", a.Limits())
	}
}
