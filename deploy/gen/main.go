// Command gen renders deploy/prometheus/eventrt.rules.yml as the Prometheus Operator
// PrometheusRule in deploy/components/prometheus-operator/prometheusrule.yaml. Run it from
// the repository root after changing the rules, and commit the result:
//
//	go run ./deploy/gen
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/eventrt/eventrt/deploy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "deploy/gen: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	rules, err := os.ReadFile(filepath.FromSlash(deploy.RulesFile))
	if err != nil {
		return fmt.Errorf("read rules (run from the repository root): %w", err)
	}
	out, err := deploy.PrometheusRule(rules, "eventrt", deploy.RulesFile)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.FromSlash(deploy.PrometheusRuleFile), out, 0o644); err != nil {
		return fmt.Errorf("write PrometheusRule: %w", err)
	}
	return nil
}
