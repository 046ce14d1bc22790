package main

import (
	"testing"

	"github.com/eventrt/eventrt/internal/bundle"
)

// Only stream consumers and pattern functions need a client with rueidis' full pipelining
// settings; a daemon of key-mode functions (auto-detected ones included) connects Light.
func TestFunctionBatches(t *testing.T) {
	for _, c := range []struct {
		f    function
		want bool
	}{
		{function{InputKey: "metrics", InputMode: bundle.InputAuto}, false},
		{function{InputKey: "metrics", InputMode: bundle.InputKey}, false},
		{function{InputKey: "m[1]", InputMode: bundle.InputKey}, false},
		{function{InputKey: "events", InputMode: bundle.InputStream}, true},
		{function{InputKey: "metrics:*", InputMode: bundle.InputPattern}, true},
	} {
		if got := c.f.batches(); got != c.want {
			t.Errorf("%s (%q): batches() = %v, want %v", c.f.InputKey, c.f.InputMode, got, c.want)
		}
	}
}
