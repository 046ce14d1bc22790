// Command gen writes eventrt's Grafana dashboard, built from Go code in package grafana, to
// grafana/dashboards/eventrt.json. Run it from the repository root after changing the
// dashboard code, and commit the result:
//
//	go run ./grafana/gen
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/eventrt/eventrt/grafana"
)

func main() {
	out := flag.String("out", filepath.Join("grafana", grafana.File), "file to write the dashboard JSON to")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintf(os.Stderr, "grafana/gen: %v\n", err)
		os.Exit(1)
	}
}

func run(out string) error {
	data, err := grafana.JSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		return fmt.Errorf("write dashboard: %w", err)
	}
	return nil
}
