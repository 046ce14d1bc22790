// Package grafana owns eventrt's Grafana dashboard: it is built here from Go code with the
// grafana-foundation-sdk, and `go run ./grafana/gen` writes it to dashboards/eventrt.json,
// the file Grafana provisions (provisioning/). The committed JSON is generated, never edited
// by hand; a test fails when it differs from what this package builds.
package grafana

//lint:file-ignore SA1019 The provisioned file is the classic dashboard JSON model, which Grafana's file provisioning loads in every version; the dashboardv2 types the SDK recommends instead need Grafana 12's v2 dashboard API.

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

const (
	// UID is the dashboard's stable identifier: links and provisioning refer to it.
	UID = "eventrt"
	// File is where the generated dashboard is committed, relative to this directory.
	File = "dashboards/eventrt.json"
)

// The dashboard's filters. A deployment is a (namespace, job) pair: namespace and pod are
// the labels Prometheus attaches through Kubernetes service discovery (the ServiceMonitor), job
// the scrape's. proc selects the series of the picked eventrt processes, sel those of the
// picked functions in them. Every query reads through one of the two.
const (
	proc = `namespace=~"$namespace", job=~"$job", pod=~"$pod"`
	sel  = proc + `, function=~"$function"`
	// byDeployment groups a per-deployment stat; its legend names the deployment.
	byDeployment = "namespace, job"
	deployment   = "{{namespace}}/{{job}}"
)

// ds makes every panel and query follow the $datasource variable, so the dashboard works
// with whatever the Prometheus data source is called.
var ds = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// labelVariable is a multi-value filter listing the values of label in query. allValue ".*"
// also matches series without the label (namespace and pod outside Kubernetes); "" makes All
// the list of values found, so that $job stays on the jobs that export eventrt.
func labelVariable(name, label, query, allValue string) *dashboard.QueryVariableBuilder {
	v := dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(ds).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).
		IncludeAll(true).
		Current(dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: cog.ToPtr("All")},
			Value: dashboard.StringOrArrayOfString{String: cog.ToPtr("$__all")}})
	if allValue != "" {
		v = v.AllValue(allValue)
	}
	return v
}

// Dashboard builds the eventrt dashboard.
func Dashboard() (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder("eventrt").
		Uid(UID).
		Description("eventrt per deployment (namespace/job), replica (pod) and function: is it up, is it keeping up, how many errors, how fast; then executions, handler versions, streams and processes.").
		Tags([]string{"eventrt", "redis"}).
		Editable().
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").
			Label("Data source").
			Type("prometheus")).
		WithVariable(labelVariable("namespace", "Namespace", "label_values(eventrt_build_info, namespace)", ".*")).
		WithVariable(labelVariable("job", "Job", `label_values(eventrt_build_info{namespace=~"$namespace"}, job)`, "")).
		WithVariable(labelVariable("pod", "Pod", `label_values(eventrt_build_info{namespace=~"$namespace", job=~"$job"}, pod)`, ".*")).
		WithVariable(labelVariable("function", "Function", `label_values(eventrt_handler_info{`+proc+`}, function)`, ".*"))

	for _, row := range []struct {
		title  string
		panels []cog.Builder[dashboard.Panel]
	}{
		{"Deployments: up, keeping up, errors, speed", overview()},
		{"Executions by replica and function", executions()},
		{"Latest output of the classic handler", classicOutput()},
		{"Handler", handler()},
		{"Streams", streams()},
		{"Process", process()},
	} {
		b.WithRow(dashboard.NewRowBuilder(row.title))
		for _, p := range row.panels {
			b.WithPanel(p)
		}
	}
	d, err := b.Build()
	if err != nil {
		return dashboard.Dashboard{}, fmt.Errorf("build dashboard %s: %w", UID, err)
	}
	number(&d)
	return d, nil
}

// number gives every row and panel a distinct id and every query a refId, as Grafana's own
// editor would: the builders leave them zero, and duplicates confuse panel links and
// transformations that name a query ("Value #B").
func number(d *dashboard.Dashboard) {
	id := uint32(0)
	for _, p := range d.Panels {
		id++
		switch {
		case p.RowPanel != nil:
			p.RowPanel.Id = id
		case p.Panel != nil:
			p.Panel.Id = cog.ToPtr(id)
			for i, t := range p.Panel.Targets {
				if q, ok := t.(prometheus.Dataquery); ok && q.RefId == nil {
					q.RefId = cog.ToPtr(string(rune('A' + i)))
					p.Panel.Targets[i] = q
				}
			}
		}
	}
}

// JSON is the dashboard as committed in File: indented, with a final newline.
func JSON() ([]byte, error) {
	d, err := Dashboard()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	// PromQL has < and > (comparisons) and & is common in descriptions: keep them readable.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encode dashboard %s: %w", UID, err)
	}
	return buf.Bytes(), nil
}

// query is a range query drawn with legend.
func query(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(ds).Expr(expr).LegendFormat(legend).Range()
}

// instant is an instant query (stats and tables show the latest value only).
func instant(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(ds).Expr(expr).LegendFormat(legend).Instant()
}

func rate(selector string) string {
	return "rate(" + selector + "[$__rate_interval])"
}

// quantiles draws p50, p95 and p99 of a histogram per replica and function; p95 is the
// recording rule's.
func quantiles(p *timeseries.PanelBuilder, bucket, p95Rule string) *timeseries.PanelBuilder {
	for _, q := range []struct{ phi, legend string }{{"0.5", "p50"}, {"0.95", "p95"}, {"0.99", "p99"}} {
		expr := fmt.Sprintf("histogram_quantile(%s, sum by (pod, function, le) (%s))", q.phi, rate(bucket+"{"+sel+"}"))
		if q.phi == "0.95" {
			expr = "max by (pod, function) (" + p95Rule + "{" + sel + "})"
		}
		p.WithTarget(query(expr, "{{pod}} {{function}} "+q.legend))
	}
	return p
}

// ratio is the share of errors among executions per deployment, 0 (not empty) when none ran.
func ratio(by string) string {
	errs := "sum by (" + by + ") (function_outcome:eventrt_executions:rate5m{" + sel + `, outcome="error"})`
	all := "sum by (" + by + ") (function_outcome:eventrt_executions:rate5m{" + sel + "})"
	return errs + " / (" + all + " > 0) or " + errs + " * 0"
}

// count is a number of events over a window, as an integer: increase() extrapolates to the
// window's edges, which would print "25.11 dead letters".
func count(selector, window string) string {
	return "round(increase(" + selector + "[" + window + "]))"
}

func thresholds(steps ...dashboard.Threshold) *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(steps)
}

// step is a threshold step; the first step of a set has no value (it starts at -Inf).
func step(color string, from *float64) dashboard.Threshold {
	return dashboard.Threshold{Color: color, Value: from}
}

// valueText maps exact values to a label and a colour (1 -> "up", green).
func valueText(m map[string][2]string) []dashboard.ValueMapping {
	opts := map[string]dashboard.ValueMappingResult{}
	for v, tc := range m {
		opts[v] = dashboard.ValueMappingResult{Text: cog.ToPtr(tc[0]), Color: cog.ToPtr(tc[1])}
	}
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: opts}}}
}

func statPanel(title, description string) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(ds).
		Height(4).
		Span(4).
		GraphMode(common.BigValueGraphModeNone).
		ColorMode(common.BigValueColorModeBackground).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
}

func seriesPanel(title, description, unit string) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(ds).
		Unit(unit).
		Height(8).
		Span(12).
		FillOpacity(10).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true))
}

func overview() []cog.Builder[dashboard.Panel] {
	up := "up{" + proc + "}"
	rule := func(name, extra string) string { return name + "{" + sel + extra + "}" }
	return []cog.Builder[dashboard.Panel]{
		statPanel("Replicas up", "eventrt replicas per deployment that answer Prometheus' scrape (up). A replica that died or hangs counts here as down and fires EventrtTargetDown; a deployment with none up fires EventrtJobAbsent.").
			WithTarget(instant("sum by ("+byDeployment+") ("+up+")", deployment)).
			Decimals(0).
			Thresholds(thresholds(step("red", nil), step("green", cog.ToPtr(1.0)))),
		statPanel("Replicas down", "Scraped eventrt replicas per deployment that do not answer.").
			WithTarget(instant("count by ("+byDeployment+") ("+up+" == 0) or sum by ("+byDeployment+") ("+up+") * 0", deployment)).
			Decimals(0).
			Thresholds(thresholds(step("green", nil), step("red", cog.ToPtr(1.0)))),
		statPanel("Redis", "Whether every replica of the deployment reaches Redis (eventrt_redis_up).").
			WithTarget(instant("min by ("+byDeployment+") (eventrt_redis_up{"+proc+"})", deployment)).
			Mappings(valueText(map[string][2]string{"1": {"UP", "green"}, "0": {"DOWN", "red"}})).
			Thresholds(thresholds(step("red", nil), step("green", cog.ToPtr(1.0)))),
		statPanel("Triggers", "Key mode: keyspace notifications arrive (runs start within about a millisecond), or eventrt relies on polling every MONITORING_PERIOD. A replica without Redis has no notifications either: that shows as \"Redis down\", not as polling.").
			WithTarget(instant("min by ("+byDeployment+") (eventrt_keyspace_notifications{"+sel+"}) + on ("+byDeployment+") 2 * (1 - min by ("+byDeployment+") (eventrt_redis_up{"+proc+"}))", deployment)).
			Mappings(append(valueText(map[string][2]string{"1": {"keyspace events", "green"}, "0": {"polling only", "orange"}}),
				dashboard.ValueMapping{RangeMap: &dashboard.RangeMap{Type: dashboard.MappingTypeRangeToText, Options: dashboard.DashboardRangeMapOptions{
					From: cog.ToPtr(2.0), To: cog.ToPtr(3.0), Result: dashboard.ValueMappingResult{Text: cog.ToPtr("Redis down"), Color: cog.ToPtr("red")}}}})).
			Thresholds(thresholds(step("orange", nil), step("green", cog.ToPtr(1.0)), step("red", cog.ToPtr(2.0)))),
		statPanel("Executions/s", "Handler executions per second over 5 minutes, all outcomes (recording rule function_outcome:eventrt_executions:rate5m).").
			WithTarget(instant("sum by ("+byDeployment+") ("+rule("function_outcome:eventrt_executions:rate5m", "")+")", deployment)).
			Unit("ops").
			ColorMode(common.BigValueColorModeNone),
		statPanel("eventrt version", "Versions of the running eventrt binaries per deployment (eventrt_build_info).").
			WithTarget(instant("count by ("+byDeployment+", version, revision) (eventrt_build_info{"+proc+"})", deployment+" {{version}} ({{revision}})")).
			TextMode(common.BigValueTextModeName).
			ColorMode(common.BigValueColorModeNone),
		statPanel("Error ratio", "Share of executions that failed over 5 minutes; 0 when none failed or none ran. A stream entry that fails again on a retry is counted once (its retries are redeliveries).").
			WithTarget(instant(ratio(byDeployment), deployment)).
			Unit("percentunit").
			Thresholds(thresholds(step("green", nil), step("orange", cog.ToPtr(0.01)), step("red", cog.ToPtr(0.05)))),
		statPanel("Errors in range", "Failed executions over the dashboard's time range, by count (eventrt_errors_total, every kind).").
			WithTarget(instant("sum by ("+byDeployment+") ("+count("eventrt_errors_total{"+sel+"}", "$__range")+")", deployment)).
			Decimals(0).
			Thresholds(thresholds(step("green", nil), step("orange", cog.ToPtr(1.0)))),
		statPanel("Execution p95", "95th percentile of one execution's time over 5 minutes, the slowest function of the deployment (recording rule).").
			WithTarget(instant("max by ("+byDeployment+") ("+rule("function:eventrt_execution_duration_seconds:p95_rate5m", "")+")", deployment)).
			Unit("s").
			ColorMode(common.BigValueColorModeNone),
		statPanel("Trigger-to-output p95", "95th percentile of the time from the trigger (a change, a message, a stream entry's addition) to the committed output, over 5 minutes (recording rule).").
			WithTarget(instant("max by ("+byDeployment+") ("+rule("function:eventrt_trigger_lag_seconds:p95_rate5m", "")+")", deployment)).
			Unit("s").
			Thresholds(thresholds(step("green", nil), step("orange", cog.ToPtr(1.0)), step("red", cog.ToPtr(10.0)))),
		statPanel("Since last success", "Time since each function's newest successful execution on any replica; empty for a function that never succeeded.").
			WithTarget(instant("time() - max by ("+byDeployment+", function) (eventrt_last_success_timestamp_seconds{"+sel+"} > 0)", deployment+" {{function}}")).
			Unit("s").
			Thresholds(thresholds(step("green", nil), step("orange", cog.ToPtr(60.0)), step("red", cog.ToPtr(600.0)))),
		statPanel("Stream: oldest waiting entry", "Stream mode: age of the oldest entry the consumer group has not finished (pending or not yet delivered); 0 when it keeps up. EventrtStreamBehind fires past 5 minutes.").
			WithTarget(instant("max by ("+byDeployment+", function) (eventrt_stream_oldest_entry_age_seconds{"+sel+"})", deployment+" {{function}}")).
			Unit("s").
			Thresholds(thresholds(step("green", nil), step("orange", cog.ToPtr(60.0)), step("red", cog.ToPtr(300.0)))),
	}
}

func executions() []cog.Builder[dashboard.Panel] {
	executions := "eventrt_executions_total{" + sel + "}"
	return []cog.Builder[dashboard.Panel]{
		seriesPanel("Executions/s by outcome", "Handler executions per second over 5 minutes, successes and failures, per replica and function (recording rule).", "ops").
			WithTarget(query("sum by (pod, function, outcome) (function_outcome:eventrt_executions:rate5m{"+sel+"})", "{{pod}} {{function}} {{outcome}}")),
		seriesPanel("Executions/s by trigger", "What started the executions: keyspace notification, pub/sub message, poll, catch-up after a reconnect, or stream entry.", "ops").
			WithTarget(query("sum by (pod, function, trigger) ("+rate(executions)+")", "{{pod}} {{function}} {{trigger}}")),
		quantiles(seriesPanel("Execution duration", "Time spent in one execution (decode, evaluate, encode): p50, p95, p99.", "s"),
			"eventrt_execution_duration_seconds_bucket", "function:eventrt_execution_duration_seconds:p95_rate5m"),
		quantiles(seriesPanel("Trigger-to-output lag", "From the trigger (event received, tick; for a stream entry, when it was added) to the committed output: p50, p95, p99.", "s"),
			"eventrt_trigger_lag_seconds_bucket", "function:eventrt_trigger_lag_seconds:p95_rate5m"),
		seriesPanel("Errors/s by kind", "Failures by kind over 5 minutes: decode (input is not JSON), handler (the program failed), timeout, output (too large or not encodable), redis (recording rule).", "ops").
			WithTarget(query("sum by (pod, function, kind) (function_kind:eventrt_errors:rate5m{"+sel+"})", "{{pod}} {{function}} {{kind}}")),
		seriesPanel("Events and skipped runs", "Trigger signals received, and signals that led to no execution (value already executed, folded into a pending run, standby replica...).", "ops").
			WithTarget(query("sum by (pod, function, trigger) ("+rate("eventrt_events_total{"+sel+"}")+")", "{{pod}} {{function}} event: {{trigger}}")).
			WithTarget(query("sum by (pod, function, reason) ("+rate("eventrt_runs_skipped_total{"+sel+"}")+") > 0", "{{pod}} {{function}} skipped: {{reason}}")),
	}
}

// classicOutput shows the numeric fields of the latest output (eventrt_output_value) the way
// the classic course handler names them, per deployment and function (a standby replica keeps
// the last output it wrote, so max picks the replicas' common view).
func classicOutput() []cog.Builder[dashboard.Panel] {
	out := func(field string) string {
		return `eventrt_output_value{` + sel + `,field=~"` + field + `"}`
	}
	// The CPU number, zero-padded to three digits, so that the bars sort 000, 001, ..., 010.
	cpu := `label_replace(` + out("avg-util-cpu.*") + `, "cpu", "$1", "field", "avg-util-cpu([0-9]+)-60sec")`
	cpu = `label_replace(label_replace(` + cpu + `, "cpu", "00$1", "cpu", "([0-9])"), "cpu", "0$1", "cpu", "([0-9]{2})")`
	return []cog.Builder[dashboard.Panel]{
		statPanel("Network egress and memory caching", "percent_network_egress and percent_memory_caching of the latest output.").
			WithTarget(instant("max by ("+byDeployment+", function, field) ("+out("percent_.*")+")", "{{job}} {{function}} {{field}}")).
			Unit("percent").
			Span(8).
			Height(6).
			ColorMode(common.BigValueColorModeNone).
			TextMode(common.BigValueTextModeValueAndName),
		bargauge.NewPanelBuilder().
			Title("CPU moving averages (60 samples)").
			Description("avg-util-cpuN-60sec of the latest output: the moving average per CPU kept in context.env, CPUs in numeric order.").
			Datasource(ds).
			WithTarget(instant("max by ("+byDeployment+", function, cpu) ("+cpu+")", "{{job}} {{function}} cpu {{cpu}}")).
			Unit("percent").
			Min(0).
			Max(100).
			Height(6).
			Span(12).
			Orientation(common.VizOrientationVertical).
			DisplayMode(common.BarGaugeDisplayModeGradient).
			Thresholds(thresholds(step("green", nil), step("orange", cog.ToPtr(70.0)), step("red", cog.ToPtr(90.0)))).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})),
		statPanel("Executions counted by the handler", "The executions field of the latest output: the handler's own counter kept in context.env, which survives restarts.").
			WithTarget(instant("max by ("+byDeployment+", function) ("+out("executions")+")", "{{job}} {{function}}")).
			Decimals(0).
			Span(4).
			Height(6).
			ColorMode(common.BigValueColorModeNone),
		seriesPanel("Output values over time", "percent_network_egress and percent_memory_caching as they were written.", "percent").
			WithTarget(query("max by ("+byDeployment+", function, field) ("+out("percent_.*")+")", "{{job}} {{function}} {{field}}")).
			Span(24),
	}
}

func handler() []cog.Builder[dashboard.Panel] {
	return []cog.Builder[dashboard.Panel]{
		table.NewPanelBuilder().
			Title("Handler versions").
			Description("The handler version each replica runs per function (hash of its source, runtime) and its file's modification time; one query, so nothing has to be joined.").
			Datasource(ds).
			Height(8).
			Span(12).
			WithTarget(prometheus.NewDataqueryBuilder().Datasource(ds).RefId("A").Instant().Format(prometheus.PromQueryFormatTable).
				Expr("max by (namespace, job, pod, function, runtime, hash) (eventrt_handler_info{"+sel+"} * on (job, instance, function) group_left eventrt_handler_mtime_seconds{"+sel+"}) * 1000")).
			WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
				"excludeByName": map[string]any{"Time": true},
				"renameByName":  map[string]any{"Value": "modified"},
			}}).
			OverrideByName("modified", []dashboard.DynamicConfigValue{{Id: "unit", Value: "dateTimeAsIso"}}),
		seriesPanel("Reloads and worker restarts", "Hot reloads of the handler per interval: a failure means the new version did not compile and the previous one keeps running. Python worker restarts by reason (timeout, crash, memory).", "none").
			WithTarget(query("sum by (pod, function, outcome) ("+count("eventrt_reloads_total{"+sel+"}", "$__rate_interval")+")", "{{pod}} {{function}} reload {{outcome}}")).
			WithTarget(query("sum by (pod, function, reason) ("+count("eventrt_worker_restarts_total{"+sel+"}", "$__rate_interval")+")", "{{pod}} {{function}} worker restart: {{reason}}")).
			Decimals(0),
	}
}

func streams() []cog.Builder[dashboard.Panel] {
	return []cog.Builder[dashboard.Panel]{
		seriesPanel("Oldest waiting entry", "Stream mode: age of the oldest entry the consumer group has not finished (pending, or not yet delivered). Every consumer measures the same group, so the largest is shown.", "s").
			WithTarget(query("max by ("+byDeployment+", function) (eventrt_stream_oldest_entry_age_seconds{"+sel+"})", "{{job}} {{function}}")),
		seriesPanel("Consumer group backlog", "Entries not yet delivered to the group (lag; absent while Redis cannot count them, after deletions) and delivered but not acknowledged (pending). Every consumer measures the same group: max, not sum.", "none").
			WithTarget(query("max by ("+byDeployment+", function) (eventrt_stream_lag_entries{"+sel+"})", "{{job}} {{function}} undelivered")).
			WithTarget(query("max by ("+byDeployment+", function) (eventrt_stream_pending_entries{"+sel+"})", "{{job}} {{function}} pending")).
			Decimals(0),
		seriesPanel("Dead letters", "Inputs set aside for good per interval, each counted once (stream: moved to the dead-letter stream), by mode.", "none").
			WithTarget(query("sum by ("+byDeployment+", function, mode) ("+count("eventrt_dead_letters_total{"+sel+"}", "$__rate_interval")+")", "{{job}} {{function}} {{mode}}")).
			Decimals(0),
		seriesPanel("Redeliveries/s", "Executions of stream entries delivered before (a retry after a failure, or a reclaim from a dead consumer), by outcome. A failed retry is counted here, not again as an error.", "ops").
			WithTarget(query("sum by (pod, function, outcome) ("+rate("eventrt_stream_redeliveries_total{"+sel+"}")+")", "{{pod}} {{function}} {{outcome}}")),
	}
}

// process shows the runtime of the eventrt processes. These series carry no function label and
// the job name depends on how Prometheus scrapes (ServiceMonitor or pod annotations), so they
// are picked by the targets that export eventrt_build_info.
func process() []cog.Builder[dashboard.Panel] {
	eventrt := " and on (job, instance) eventrt_build_info{" + proc + "}"
	return []cog.Builder[dashboard.Panel]{
		seriesPanel("Memory (RSS)", "Resident memory of each eventrt process.", "bytes").
			WithTarget(query("process_resident_memory_bytes{"+proc+"}"+eventrt, "{{namespace}}/{{pod}}")),
		seriesPanel("CPU", "CPU used by each eventrt process, in cores (1 = one core busy all the time).", "suffix: cores").
			WithTarget(query(rate("process_cpu_seconds_total{"+proc+"}")+eventrt, "{{namespace}}/{{pod}}")),
	}
}
