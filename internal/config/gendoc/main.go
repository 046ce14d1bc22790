// Command gendoc writes docs/configuration.md from internal/config's settings table:
//
//	go generate ./internal/config
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/eventrt/eventrt/internal/config"
)

func main() {
	out := flag.String("o", config.DocFile, "file to write")
	flag.Parse()
	if err := os.WriteFile(*out, config.WriteDoc(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}
