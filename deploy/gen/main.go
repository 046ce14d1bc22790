// Command gen writes eventrt's Prometheus rules, built from Go code in package deploy
// (rules.go), to deploy/prometheus/eventrt.rules.yml, and renders them as the Prometheus
// Operator PrometheusRule in deploy/components/prometheus-operator/prometheusrule.yaml. Run
// it from the repository root after changing the rules (make dashboards), and commit the
// result:
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
	rules, err := deploy.RulesYAML(deploy.Rules(deploy.ProductionScale))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.FromSlash(deploy.RulesFile), rules, 0o644); err != nil {
		return fmt.Errorf("write rules (run from the repository root): %w", err)
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
