// Package deploy owns how eventrt is shipped and watched: the kustomize base and overlays,
// the Prometheus alert and recording rules (prometheus/), and the Prometheus Operator
// rendering of those rules (go run ./deploy/gen). Its Go code finds the metric names that the
// rules and the Grafana dashboard query, so that tests can hold them against what a running
// eventrt exports.
package deploy

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/eventrt/eventrt/grafana"
)

// Files, relative to the repository root (slash-separated), whose queries QueriedMetrics
// reads.
const (
	RulesFile     = "deploy/prometheus/eventrt.rules.yml"
	DashboardFile = "grafana/" + grafana.File
)

// ErrQuery is wrapped by every error about a query that cannot be read.
var ErrQuery = errors.New("malformed query")

// IsQueryError reports whether err is about a malformed query.
func IsQueryError(err error) bool { return errors.Is(err, ErrQuery) }

// MetricRef is one metric that a query reads.
type MetricRef struct {
	// Metric is the series name as queried: a histogram is read through its _bucket series.
	Metric string
	// Source says where the query is: file and rule or panel.
	Source string
}

// RuleFile is a Prometheus rule file (the same schema is the spec of a PrometheusRule).
type RuleFile struct {
	Groups []RuleGroup `json:"groups"`
}

// RuleGroup is one group of a rule file.
type RuleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []Rule `json:"rules"`
}

// Rule is a recording rule (Record set) or an alerting rule (Alert set).
type Rule struct {
	Record      string            `json:"record,omitempty"`
	Alert       string            `json:"alert,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Comment is written above the rule in the generated file (RulesYAML).
	Comment string `json:"-"`
}

// ParseRules decodes a rule file strictly: an unknown or misspelt field is an error.
func ParseRules(data []byte) (RuleFile, error) {
	var rf RuleFile
	if err := yaml.UnmarshalStrict(data, &rf); err != nil {
		return RuleFile{}, fmt.Errorf("decode rule file: %w", err)
	}
	return rf, nil
}

// RuleMetrics lists the metrics queried by the rules in a rule file. Series recorded by the
// file itself are left out: they are the file's own output, not something eventrt exports.
func RuleMetrics(data []byte, source string) ([]MetricRef, error) {
	rf, err := ParseRules(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	recorded := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	var refs []MetricRef
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			where := source + ": record " + r.Record
			if r.Alert != "" {
				where = source + ": alert " + r.Alert
			}
			names, err := MetricNames(r.Expr)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			for _, n := range names {
				if !recorded[n] {
					refs = append(refs, MetricRef{Metric: n, Source: where})
				}
			}
		}
	}
	return refs, nil
}

// DashboardMetrics lists the metrics queried by a Grafana dashboard's panels ("expr" of
// every target) and query variables (label_values(metric, label) and the like).
func DashboardMetrics(data []byte, source string) ([]MetricRef, error) {
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: decode dashboard: %w", source, err)
	}
	var refs []MetricRef
	var walk func(v any, where string) error
	walk = func(v any, where string) error {
		switch v := v.(type) {
		case map[string]any:
			if t, ok := v["title"].(string); ok && t != "" {
				where = source + ": panel " + strconv.Quote(t)
			}
			if n, ok := v["name"].(string); ok && v["type"] == "query" {
				where = source + ": variable " + n
				q := v["query"]
				if m, ok := q.(map[string]any); ok {
					q = m["query"]
				}
				if s, ok := q.(string); ok {
					if err := addQuery(&refs, s, where); err != nil {
						return err
					}
				}
			}
			if s, ok := v["expr"].(string); ok {
				if err := addQuery(&refs, s, where); err != nil {
					return err
				}
			}
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys) // a stable order of results and errors
			for _, k := range keys {
				if err := walk(v[k], where); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range v {
				if err := walk(e, where); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(doc, source); err != nil {
		return nil, err
	}
	return refs, nil
}

func addQuery(refs *[]MetricRef, q, where string) error {
	names, err := MetricNames(q)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	for _, n := range names {
		*refs = append(*refs, MetricRef{Metric: n, Source: where})
	}
	return nil
}

// QueriedMetrics lists every metric that the Prometheus rules and the Grafana dashboard
// query, reading RulesFile and DashboardFile under the repository root; the series the rules
// record are left out.
func QueriedMetrics(root string) ([]MetricRef, error) {
	rules, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(RulesFile)))
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	refs, err := RuleMetrics(rules, RulesFile)
	if err != nil {
		return nil, err
	}
	dash, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(DashboardFile)))
	if err != nil {
		return nil, fmt.Errorf("read dashboard: %w", err)
	}
	more, err := DashboardMetrics(dash, DashboardFile)
	if err != nil {
		return nil, err
	}
	// The dashboard reads the recording rules' series too; those are the rules' output.
	rf, err := ParseRules(rules)
	if err != nil {
		return nil, err
	}
	recorded := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			recorded[r.Record] = r.Record != ""
		}
	}
	for _, r := range more {
		if !recorded[r.Metric] {
			refs = append(refs, r)
		}
	}
	return refs, nil
}

// SeriesNames reads a Prometheus text exposition (what /metrics serves) and returns the
// names of the series in it; a histogram shows as its _bucket, _sum and _count series.
func SeriesNames(r io.Reader) (map[string]bool, error) {
	names := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end <= 0 {
			return nil, fmt.Errorf("exposition line %q: no sample value", line)
		}
		names[line[:end]] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read exposition: %w", err)
	}
	return names, nil
}

// Missing returns the refs whose metric is not among exported (as from SeriesNames).
func Missing(refs []MetricRef, exported map[string]bool) []MetricRef {
	var out []MetricRef
	for _, r := range refs {
		if !exported[r.Metric] {
			out = append(out, r)
		}
	}
	return out
}
