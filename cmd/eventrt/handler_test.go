package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"

	"github.com/eventrt/eventrt/internal/exec/exprengine"

	"github.com/eventrt/eventrt/internal/bundle"
)

// TestCompiledFunctionTakesJSONInput: the handler the daemon runs for an expr function (a
// Program wrapped to locate errors in the bundle's files) is given its input as JSON, so that
// it decodes it into a document for the fast path rather than into a map.
func TestCompiledFunctionTakesJSONInput(t *testing.T) {
	b, err := bundle.Load(context.Background(), bundle.Source{Path: "../../examples/classic/handler_module.expr"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := compileFunction(b, b.Names()[0], exprengine.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	in, err := exec.InputFor(v.Handler, []byte(`{"timestamp": 1}`), codec.NewDecoder())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := in.(json.RawMessage); !ok {
		t.Fatalf("the daemon's handler %T is given input as %T, want json.RawMessage", v.Handler, in)
	}
}
