package bundle

import (
	"errors"

	"github.com/eventrt/eventrt/internal/exec/exprengine"

	"github.com/eventrt/eventrt/internal/exec"
)

// Compile compiles the function with exec; a compile error names the file and line it comes
// from, a shared file included.
func (f *Function) Compile(lim exprengine.Limits) (*exprengine.Program, error) {
	p, err := exprengine.Compile(f.File, f.Source, lim)
	if err != nil {
		return nil, f.Locate(err)
	}
	return p, nil
}

// Locate maps the position in a compile or run error of this function's program (an
// *exprengine.CompileError, or an *exec.Error holding an *exprengine.RuntimeError) from Source to the
// file and line it comes from. Without shared files positions are already right and err is
// returned as is, so calling it on every failed run costs nothing.
func (f *Function) Locate(err error) error {
	if err == nil || len(f.Shared) == 0 {
		return err
	}
	var ce *exprengine.CompileError
	if errors.As(err, &ce) && ce.Line > 0 {
		c := *ce
		c.File, c.Line = f.Position(ce.Line)
		return &c
	}
	var ee *exec.Error
	var re *exprengine.RuntimeError
	if errors.As(err, &ee) && errors.As(ee.Err, &re) && re.Line > 0 {
		r := *re
		r.File, r.Line = f.Position(re.Line)
		return &exec.Error{Kind: ee.Kind, Err: &r}
	}
	return err
}
