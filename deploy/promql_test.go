package deploy

import (
	"reflect"
	"strings"
	"testing"
)

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{`up`, []string{"up"}},
		{`min(eventrt_redis_up)`, []string{"eventrt_redis_up"}},
		{`sum by (outcome) (rate(eventrt_executions_total{function=~"$function"}[$__rate_interval]))`, []string{"eventrt_executions_total"}},
		{`sum(rate(a_total[5m])) by (job) / on (job) group_left (version) b_info`, []string{"a_total", "b_info"}},
		{`histogram_quantile(0.95, sum without (instance) (rate(x_bucket{le!="+Inf"}[1h:5m] offset 1d)))`, []string{"x_bucket"}},
		{`time() - max(last_ts > 0) > 600 and bool on() vector(1)`, []string{"last_ts"}},
		{"a\n# b_total is a comment\n+ c", []string{"a", "c"}},
		{`label_replace(m{field=~"avg-util-cpu.*"}, "cpu", "$1", "field", "avg-util-cpu([0-9]+)-60sec")`, []string{"m"}},
		{`label_values(eventrt_handler_info, function)`, []string{"eventrt_handler_info"}},
		{`label_values(function)`, nil},
		{`process_cpu_seconds_total and on (job, instance) eventrt_build_info`, []string{"eventrt_build_info", "process_cpu_seconds_total"}},
		{`function:eventrt_errors:ratio_rate5m > 0.05 and ignoring(kind) z`, []string{"function:eventrt_errors:ratio_rate5m", "z"}},
		{`topk(5, count_values("v", y)) @ start()`, []string{"y"}},
		{`${datasource_var} + 1e3 * .5 + 0x1f + ${f:regex}`, nil},
		{`a unless b or c`, []string{"a", "b", "c"}},
		{`sum by (le) (q) + sum(q)`, []string{"q"}},
	} {
		got, err := MetricNames(tc.query)
		if err != nil {
			t.Errorf("MetricNames(%q): %v", tc.query, err)
			continue
		}
		if len(got) == 0 && len(tc.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("MetricNames(%q) = %v, want %v", tc.query, got, tc.want)
		}
	}
}

func TestMetricNamesRefusesMalformedQueries(t *testing.T) {
	for _, q := range []string{`x{a="b"`, `x{a="b}`, `rate(x[5m)`, `label_values(x, y`} {
		_, err := MetricNames(q)
		if !IsQueryError(err) {
			t.Errorf("MetricNames(%q) = %v, want a query error", q, err)
		}
	}
}

func TestRuleMetricsLeaveOutRecordedSeries(t *testing.T) {
	rules := `groups:
  - name: g
    rules:
      - record: job:x:rate5m
        expr: sum by (job) (rate(x_total[5m]))
      - alert: A
        expr: job:x:rate5m > 1 and y
`
	refs, err := RuleMetrics([]byte(rules), "r.yml")
	if err != nil {
		t.Fatal(err)
	}
	want := []MetricRef{{"x_total", "r.yml: record job:x:rate5m"}, {"y", "r.yml: alert A"}}
	if !reflect.DeepEqual(refs, want) {
		t.Errorf("RuleMetrics = %v, want %v", refs, want)
	}
	if _, err := RuleMetrics([]byte("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x{\n"), "bad.yml"); !IsQueryError(err) || !strings.Contains(err.Error(), "bad.yml: alert A") {
		t.Errorf("a broken expression gave %v, want a query error naming bad.yml: alert A", err)
	}
}

func TestDashboardMetrics(t *testing.T) {
	dash := `{"templating": {"list": [
	    {"type": "query", "name": "function", "query": "label_values(v_info, function)"},
	    {"type": "query", "name": "other", "query": {"query": "label_values(w_info, x)", "refId": "A"}},
	    {"type": "datasource", "name": "datasource", "query": "prometheus"}]},
	  "panels": [{"title": "P", "targets": [{"expr": "rate(a_total[5m])"}, {"expr": "b"}]}]}`
	refs, err := DashboardMetrics([]byte(dash), "d.json")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range refs {
		got[r.Metric] = r.Source
	}
	want := map[string]string{
		"v_info": "d.json: variable function", "w_info": "d.json: variable other",
		"a_total": `d.json: panel "P"`, "b": `d.json: panel "P"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DashboardMetrics = %v, want %v", got, want)
	}
}

func TestSeriesNamesAndMissing(t *testing.T) {
	expo := `# HELP a_total A.
# TYPE a_total counter
a_total{function="f"} 1
h_bucket{le="+Inf"} 2
h_sum 0.1
h_count 2
up 1
`
	names, err := SeriesNames(strings.NewReader(expo))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a_total", "h_bucket", "h_sum", "h_count", "up"} {
		if !names[n] {
			t.Errorf("SeriesNames misses %s: %v", n, names)
		}
	}
	if names["h"] || names["a"] {
		t.Errorf("SeriesNames invented a name: %v", names)
	}
	refs := []MetricRef{{"a_total", "x"}, {"h_bucket", "y"}, {"gone_total", "z"}}
	if got := Missing(refs, names); !reflect.DeepEqual(got, []MetricRef{{"gone_total", "z"}}) {
		t.Errorf("Missing = %v", got)
	}
	if _, err := SeriesNames(strings.NewReader("novalue\n")); err == nil {
		t.Error("a line without a value was accepted")
	}
}
