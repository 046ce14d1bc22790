package bundle

import (
	"errors"
	"testing"

	"github.com/eventrt/eventrt/internal/exec/exprengine"

	"github.com/eventrt/eventrt/internal/exec"
)

func TestCompileAndLocate(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{
		"m/_shared.expr": "// shared\nlet total = input.a + input.b;",
		"m/share.expr":   "let s = input.a / total;\ns * 100",
		"m/typo.expr":    "// typo below\nlet s = 1;\ns + nope",
		"plain.expr":     "// plain\ninput.a.b",
	})
	b := mustLoad(t, Source{Path: dir})
	lim := exprengine.DefaultLimits()

	// A compile error in the program names the program's own line.
	typo, _ := b.Function("m.typo")
	_, err := typo.Compile(lim)
	var ce *exprengine.CompileError
	if !errors.As(err, &ce) || ce.File != "m/typo.expr" || ce.Line != 3 || ce.Column != 5 {
		t.Fatalf("compile error %#v", err)
	}

	share, _ := b.Function("m.share")
	prog, err := share.Compile(lim)
	if err != nil {
		t.Fatal(err)
	}
	res, err := prog.Run(exec.Call{Input: map[string]any{"a": 1, "b": 3}})
	if err != nil || string(res.Output) != "25" {
		t.Fatalf("run: %s %v", res.Output, err)
	}
	// A run error in a shared binding names the shared file and its line.
	_, err = prog.Run(exec.Call{Input: map[string]any{"a": 1}})
	located := share.Locate(err)
	var re *exprengine.RuntimeError
	if !errors.As(located, &re) || re.File != "m/_shared.expr" || re.Line != 2 || exec.KindOf(located) != exec.KindHandler {
		t.Fatalf("run error %v located as %v", err, located)
	}

	// Without shared files, errors are returned as they are.
	plain, _ := b.Function("plain.handler")
	pp, err := plain.Compile(lim)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pp.Run(exec.Call{Input: map[string]any{"a": 1}})
	if err == nil || plain.Locate(err) != err || !errors.As(err, &re) || re.Line != 2 {
		t.Fatalf("plain run error %v", err)
	}
	if share.Locate(nil) != nil {
		t.Fatal("Locate(nil) != nil")
	}
}
