package deploy

import (
	"bytes"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/eventrt/eventrt/internal/metrics"
)

// promtool comes with Debian's prometheus package; CI installs it.
func promtool(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: apt-get install -y prometheus (it provides promtool)")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = filepath.Join("prometheus")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPromtoolCheckRules(t *testing.T) {
	out := promtool(t, "check", "rules", "eventrt.rules.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules: %s", out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	out := promtool(t, "test", "rules", "eventrt.rules.test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules: %s", out)
	}
}

// TestEveryAlertIsUnitTested: each alert of the rule file has a promtool test that expects
// it to fire.
func TestEveryAlertIsUnitTested(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(RulesFile)))
	if err != nil {
		t.Fatal(err)
	}
	rf, err := ParseRules(rules)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join("prometheus", "eventrt.rules.test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var alerts int
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if !bytes.Contains(tests, []byte("alertname: "+r.Alert+"\n")) {
				t.Errorf("alert %s has no promtool test", r.Alert)
			}
		}
	}
	if alerts < 10 {
		t.Errorf("only %d alerts: target down and absent, errors, no success, Redis down, lag, stream behind, reloads, dead letters and polling need one each", alerts)
	}
}

// TestPrometheusRuleIsGenerated: the Prometheus Operator copy is what `go run ./deploy/gen`
// makes of the rule file, and holds the same rules.
func TestPrometheusRuleIsGenerated(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(RulesFile)))
	if err != nil {
		t.Fatal(err)
	}
	want, err := PrometheusRule(rules, "eventrt", RulesFile)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(PrometheusRuleFile)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run go run ./deploy/gen", PrometheusRuleFile)
	}
	m, err := decodeAll(PrometheusRuleFile, got)
	if err != nil {
		t.Fatal(err)
	}
	rf, err := ParseRules(rules)
	if err != nil {
		t.Fatal(err)
	}
	if pr := m.promRules["eventrt"]; pr == nil || !reflect.DeepEqual(pr.Spec, rf) {
		t.Error("the PrometheusRule's groups differ from the rule file's")
	}
	if _, err := PrometheusRule([]byte("groups:\n  - name: x\n    rules:\n      - alrt: X\n        expr: up\n"), "x", "inline"); err == nil {
		t.Error("a misspelt rule field was rendered")
	}
}

// TestQueriedMetricsAreExported holds every metric that the rules and the dashboard query
// against the /metrics of eventrt's own registry, with every instrument given a sample (a
// labelled metric appears only once it has one). The same check against a running daemon
// can reuse QueriedMetrics, SeriesNames and Missing.
func TestQueriedMetricsAreExported(t *testing.T) {
	refs, err := QueriedMetrics(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) < 20 {
		t.Fatalf("only %d metric references found: the extraction is broken", len(refs))
	}
	m := metrics.New()
	m.SetRedisUp(true)
	f := m.Function("handler_module.handler")
	f.Event("keyspace")
	f.Skipped(metrics.SkipUnchanged)
	f.Error("handler")
	f.Executed("keyspace", true, time.Millisecond, 2*time.Millisecond, time.Now())
	f.Executed("poll", false, time.Millisecond, 0, time.Now())
	f.ObserveNotifications(func() bool { return true })
	f.Handler("0123abcd", "expr", time.Now())
	f.Reload(false)
	f.Output(maps.All(map[string]any{"percent_network_egress": 16.74, "avg-util-cpu0-60sec": 32.4, "executions": 1.0}))
	f.Mode(metrics.ModeKey)
	f.Mode(metrics.ModeStream)
	f.StreamBacklog(metrics.Backlog{Undelivered: 10, UndeliveredKnown: true, Pending: 2})
	f.DeadLetter(metrics.ModeStream, 1)
	f.WorkerRestart("timeout")

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	exported, err := SeriesNames(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	exported["up"] = true // Prometheus' own series of every scrape
	for _, r := range Missing(refs, exported) {
		t.Errorf("%s queries %s, which eventrt does not export", r.Source, r.Metric)
	}
	// The brief's metric families all appear in the dashboard or the rules.
	queried := map[string]bool{}
	for _, r := range refs {
		queried[r.Metric] = true
	}
	for _, name := range []string{
		"eventrt_executions_total", "eventrt_execution_duration_seconds_bucket", "eventrt_trigger_lag_seconds_bucket",
		"eventrt_errors_total", "eventrt_last_success_timestamp_seconds", "eventrt_redis_up",
		"eventrt_keyspace_notifications", "eventrt_handler_info", "eventrt_output_value", "eventrt_reloads_total",
		"eventrt_stream_lag_entries", "eventrt_build_info",
	} {
		if !queried[name] {
			t.Errorf("nothing queries %s", name)
		}
	}
}

// TestRulesFileIsGenerated: the committed rule file is what `go run ./deploy/gen` writes
// from Rules.
func TestRulesFileIsGenerated(t *testing.T) {
	want, err := RulesYAML(Rules(ProductionScale))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(RulesFile)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run go run ./deploy/gen (make dashboards)", RulesFile)
	}
}

func TestRuleScale(t *testing.T) {
	fast := Rules(RuleScale{Minute: time.Second})
	data, err := RulesYAML(fast)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[5s]", "[15s]", "for: 10s", "> 600", "[1d]"} {
		if want == "> 600" || want == "[1d]" {
			if bytes.Contains(data, []byte(want)) {
				t.Errorf("the rules at a one-second minute still hold %q", want)
			}
			continue
		}
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("the rules at a one-second minute lack %q", want)
		}
	}
	if got := promDuration(1440 * time.Second); got != "24m" {
		t.Errorf("promDuration(1440s) = %s", got)
	}
}

// TestPromtoolSeriesAreExported holds the input series of the promtool tests against what a
// freshly registered function exports: the same metric and label values (the scrape adds job,
// namespace, pod, instance), and a counter starts at 0, as the exporter's does. Hand-written
// series the exporter never produces would make the tests pass for nothing.
func TestPromtoolSeriesAreExported(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("prometheus", "eventrt.rules.test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		Tests []struct {
			InputSeries []struct{ Series, Values string } `json:"input_series"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(data, &tf); err != nil {
		t.Fatal(err)
	}
	exported := freshSeries(t)
	scrape := map[string]bool{"job": true, "namespace": true, "pod": true, "instance": true, "function": true, "le": true}
	n := 0
	for _, tc := range tf.Tests {
		for _, in := range tc.InputSeries {
			name, labels, err := parseSeries(in.Series)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(name, "eventrt_") {
				continue
			}
			n++
			for k := range labels {
				if scrape[k] {
					delete(labels, k)
				}
			}
			key := seriesKey(strings.TrimSuffix(name, "_bucket"), labels)
			if name == "eventrt_build_info" {
				key = "eventrt_build_info"
			}
			if !exported[key] {
				t.Errorf("promtool input %s: eventrt exports no such series", in.Series)
			}
			if strings.HasSuffix(name, "_total") && !strings.HasPrefix(in.Values, "0") {
				t.Errorf("promtool input %s starts at %q; eventrt's counters start at 0", in.Series, in.Values)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d eventrt input series read", n)
	}
}

// freshSeries lists the series (name and label values but function) of a function freshly
// registered in both modes, as a daemon starting it exports them.
func freshSeries(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New()
	f := m.Function("f")
	f.Mode(metrics.ModeKey)
	f.Mode(metrics.ModeStream)
	f.ObserveNotifications(func() bool { return true })
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				if l.GetName() != "function" {
					labels[l.GetName()] = l.GetValue()
				}
			}
			if mf.GetName() == "eventrt_build_info" {
				out["eventrt_build_info"] = true
				continue
			}
			out[seriesKey(mf.GetName(), labels)] = true
		}
	}
	return out
}

func seriesKey(name string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k, v := range labels {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	return name + "{" + strings.Join(keys, ",") + "}"
}

// parseSeries reads a promtool series: name{a="b",c="d"}.
func parseSeries(s string) (string, map[string]string, error) {
	name, rest, found := strings.Cut(s, "{")
	labels := map[string]string{}
	if !found {
		return name, labels, nil
	}
	rest = strings.TrimSuffix(rest, "}")
	for rest != "" {
		k, after, ok := strings.Cut(rest, "=")
		if !ok || !strings.HasPrefix(after, `"`) {
			return "", nil, fmt.Errorf("series %s: malformed labels", s)
		}
		end := strings.Index(after[1:], `"`)
		if end < 0 {
			return "", nil, fmt.Errorf("series %s: unterminated label value", s)
		}
		labels[strings.TrimSpace(k)] = after[1 : end+1]
		rest = strings.TrimPrefix(after[end+2:], ",")
	}
	return name, labels, nil
}

// TestRulesOnAFreshExposition runs promtool on input series generated from the exposition of a
// freshly registered function (both modes, as scraped: job, namespace, pod): on it no alert
// fires, the error ratio is 0, and a first reload failure (the failure series going from 0 to
// 1) fires EventrtReloadFailed.
func TestRulesOnAFreshExposition(t *testing.T) {
	m := metrics.New()
	m.SetRedisUp(true)
	f := m.Function("f")
	f.Mode(metrics.ModeKey)
	f.Mode(metrics.ModeStream)
	f.ObserveNotifications(func() bool { return true })
	f.Handler("0123abcd", "expr", time.Unix(1, 0))
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	scrape := `job="eventrt",namespace="demo",pod="a-0",instance="10.0.0.1:8080"`
	var in strings.Builder
	add := func(series, values string) {
		fmt.Fprintf(&in, "      - series: '%s'\n        values: '%s'\n", series, values)
	}
	add("up{"+scrape+"}", "1x30")
	n := 0
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "eventrt_") {
			continue
		}
		for _, mt := range mf.GetMetric() {
			labels := scrape
			failure := false
			for _, l := range mt.GetLabel() {
				labels += fmt.Sprintf(",%s=%q", l.GetName(), l.GetValue())
				failure = failure || mf.GetName() == "eventrt_reloads_total" && l.GetValue() == metrics.OutcomeFailure
			}
			n++
			switch {
			case failure:
				add(mf.GetName()+"{"+labels+"}", "0 0 0 1x27")
			case mt.GetHistogram() != nil:
				for _, b := range mt.GetHistogram().GetBucket() {
					add(fmt.Sprintf("%s_bucket{%s,le=\"%g\"}", mf.GetName(), labels, b.GetUpperBound()), "0x30")
				}
				add(mf.GetName()+`_bucket{`+labels+`,le="+Inf"}`, "0x30")
				add(mf.GetName()+"_sum{"+labels+"}", "0x30")
				add(mf.GetName()+"_count{"+labels+"}", "0x30")
			default:
				v := mt.GetCounter().GetValue() + mt.GetGauge().GetValue()
				add(mf.GetName()+"{"+labels+"}", strconv.FormatFloat(v, 'g', -1, 64)+"x30")
			}
		}
	}
	if n < 40 {
		t.Fatalf("only %d series in a fresh exposition", n)
	}
	var alerts strings.Builder
	for _, g := range Rules(ProductionScale).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if r.Alert != "EventrtReloadFailed" {
				fmt.Fprintf(&alerts, "      - alertname: %s\n        eval_time: 10m\n        exp_alerts: []\n", r.Alert)
				continue
			}
			fmt.Fprintf(&alerts, "      - alertname: %s\n        eval_time: 2m\n        exp_alerts: []\n", r.Alert)
			render := strings.NewReplacer("{{ $labels.pod }}", "a-0", "{{ $labels.function }}", "f")
			fmt.Fprintf(&alerts, `      - alertname: %s
        eval_time: 5m
        exp_alerts:
          - exp_labels: {severity: warning, job: eventrt, namespace: demo, pod: a-0, instance: "10.0.0.1:8080", function: f}
            exp_annotations:
              summary: %s
              description: %s
`, r.Alert, quote(render.Replace(r.Annotations["summary"])), quote(render.Replace(r.Annotations["description"])))
		}
	}
	test := "rule_files:\n  - eventrt.rules.yml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n" + in.String() +
		"    promql_expr_test:\n      - expr: function:eventrt_execution_errors:ratio_rate5m\n        eval_time: 10m\n        exp_samples:\n" +
		"          - labels: 'function:eventrt_execution_errors:ratio_rate5m{job=\"eventrt\",namespace=\"demo\",pod=\"a-0\",function=\"f\"}'\n            value: 0\n" +
		"    alert_rule_test:\n" + alerts.String()
	dir := t.TempDir()
	rules, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(RulesFile)))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"eventrt.rules.yml": string(rules), "fresh.test.yml": test} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: apt-get install -y prometheus (it provides promtool)")
	}
	cmd := exec.Command(bin, "test", "rules", "fresh.test.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules on a fresh exposition: %v\n%s", err, out)
	}
}
