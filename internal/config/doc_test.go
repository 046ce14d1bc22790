package config

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestDocIsCurrent: docs/configuration.md is what the settings table generates, so a setting
// added, renamed or re-described without regenerating the document fails here.
func TestDocIsCurrent(t *testing.T) {
	got, err := os.ReadFile("../../" + DocFile)
	if err != nil {
		t.Fatalf("%v; create it with: go generate ./internal/config", err)
	}
	if !bytes.Equal(got, WriteDoc()) {
		t.Fatalf("%s is not current with the settings table; regenerate it with: go generate ./internal/config", DocFile)
	}
}

// TestDocListsEverySetting: each variable has its row, and no row of docDefaults names a
// variable the table lacks (a renamed setting would leave it behind).
func TestDocListsEverySetting(t *testing.T) {
	doc := string(WriteDoc())
	names := map[string]bool{}
	for _, n := range EnvNames() {
		names[n] = true
		if !strings.Contains(doc, "| `"+n+"` |") {
			t.Errorf("the generated document lacks a row for %s", n)
		}
	}
	for n := range docDefaults {
		if !names[n] {
			t.Errorf("docDefaults describes %s, which the settings table does not have", n)
		}
	}
}
