package deploy

import (
	"bytes"
	"fmt"
	"strings"
)

// PrometheusRuleFile is where the Prometheus Operator rendering of RulesFile is committed,
// relative to the repository root (slash-separated).
const PrometheusRuleFile = "deploy/components/prometheus-operator/prometheusrule.yaml"

// PrometheusRule renders a Prometheus rule file as a Prometheus Operator PrometheusRule
// named name. A PrometheusRule's spec has the rule file's schema, so the groups are copied
// as written, comments included, indented under spec; only the comments above `groups:` are
// left out. The rule file is decoded strictly first, so a broken one is refused here.
func PrometheusRule(rules []byte, name, source string) ([]byte, error) {
	if _, err := ParseRules(rules); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	lines := strings.SplitAfter(string(rules), "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "groups:") {
			start = i
			break
		}
	}
	if start < 0 {
		return nil, fmt.Errorf("%s: no top-level groups: key", source)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Generated from %s by `go run ./deploy/gen`; edit that file, not this one.\n", source)
	fmt.Fprintf(&b, "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: %s\nspec:\n", name)
	for _, l := range lines[start:] {
		if strings.TrimSpace(l) == "" {
			b.WriteString(l)
			continue
		}
		b.WriteString("  " + l)
	}
	return b.Bytes(), nil
}
