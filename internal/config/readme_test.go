package config

import (
	"os"
	"strings"
	"testing"
)

// The README's configuration table documents every setting eventrt reads.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, name := range EnvNames() {
		if !strings.Contains(readme, "| `"+name+"`") && !strings.Contains(readme, "`"+name+"` /") && !strings.Contains(readme, "/ `"+name+"`") {
			t.Errorf("README.md's configuration table lacks %s", name)
		}
	}
}
