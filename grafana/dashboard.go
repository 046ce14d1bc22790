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

// fn restricts a selector to the functions picked in the dashboard's $function variable.
const fn = `function=~"$function"`

// ds makes every panel and query follow the $datasource variable, so the dashboard works
// with whatever the Prometheus data source is called.
var ds = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// Dashboard builds the eventrt dashboard.
func Dashboard() (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder("eventrt").
		Uid(UID).
		Description("eventrt: executions, latency, errors, Redis and triggers, handler versions, and the latest output values of the classic handler.").
		Tags([]string{"eventrt", "redis"}).
		Editable().
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").
			Label("Data source").
			Type("prometheus")).
		WithVariable(dashboard.NewQueryVariableBuilder("function").
			Label("Function").
			Datasource(ds).
			Query(dashboard.StringOrMap{String: cog.ToPtr("label_values(eventrt_handler_info, function)")}).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).
			IncludeAll(true))

	for _, row := range []struct {
		title  string
		panels []cog.Builder[dashboard.Panel]
	}{
		{"Overview", overview()},
		{"Executions", executions()},
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

// quantiles draws p50, p95 and p99 of a histogram summed over the selected functions.
func quantiles(p *timeseries.PanelBuilder, bucket string) *timeseries.PanelBuilder {
	for _, q := range []struct{ phi, legend string }{{"0.5", "p50"}, {"0.95", "p95"}, {"0.99", "p99"}} {
		p.WithTarget(query(
			fmt.Sprintf("histogram_quantile(%s, sum by (le) (%s))", q.phi, rate(bucket+"{"+fn+"}")), q.legend))
	}
	return p
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
	executions := "eventrt_executions_total{" + fn + "}"
	failed := `eventrt_executions_total{` + fn + `,outcome="error"}`
	return []cog.Builder[dashboard.Panel]{
		statPanel("Redis", "Whether every eventrt instance reaches Redis (eventrt_redis_up).").
			WithTarget(instant("min(eventrt_redis_up)", "")).
			Mappings(valueText(map[string][2]string{"1": {"UP", "green"}, "0": {"DOWN", "red"}})).
			Thresholds(thresholds(step("red", nil), step("green", cog.ToPtr(1.0)))),
		statPanel("Triggers", "Keyspace notifications arrive (runs start within about a millisecond), or eventrt relies on polling every MONITORING_PERIOD.").
			WithTarget(instant("min(eventrt_keyspace_notifications{"+fn+"})", "")).
			Mappings(valueText(map[string][2]string{"1": {"keyspace events", "green"}, "0": {"polling only", "orange"}})).
			Thresholds(thresholds(step("orange", nil), step("green", cog.ToPtr(1.0)))),
		statPanel("Executions/s", "Handler executions per second, all outcomes.").
			WithTarget(instant("sum("+rate(executions)+")", "")).
			Unit("ops").
			ColorMode(common.BigValueColorModeNone),
		statPanel("Error ratio", "Share of executions that failed.").
			WithTarget(instant("sum("+rate(failed)+") / sum("+rate(executions)+")", "")).
			Unit("percentunit").
			Thresholds(thresholds(step("green", nil), step("orange", cog.ToPtr(0.01)), step("red", cog.ToPtr(0.05)))),
		statPanel("Since last success", "Time since the newest successful execution of the selected functions.").
			WithTarget(instant("time() - max(eventrt_last_success_timestamp_seconds{"+fn+"} > 0)", "")).
			Unit("s").
			Thresholds(thresholds(step("green", nil), step("orange", cog.ToPtr(60.0)), step("red", cog.ToPtr(600.0)))),
		statPanel("eventrt version", "Versions of the running eventrt binaries (eventrt_build_info).").
			WithTarget(instant("count by (version, revision) (eventrt_build_info)", "{{version}} ({{revision}})")).
			TextMode(common.BigValueTextModeName).
			ColorMode(common.BigValueColorModeNone),
	}
}

func executions() []cog.Builder[dashboard.Panel] {
	executions := "eventrt_executions_total{" + fn + "}"
	return []cog.Builder[dashboard.Panel]{
		seriesPanel("Executions/s by outcome", "Handler executions per second, successes and failures.", "ops").
			WithTarget(query("sum by (outcome) ("+rate(executions)+")", "{{outcome}}")).
			OverrideByName("success", []dashboard.DynamicConfigValue{{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": "green"}}}).
			OverrideByName("error", []dashboard.DynamicConfigValue{{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": "red"}}}),
		seriesPanel("Executions/s by trigger", "What started the executions: keyspace notification, pub/sub message, poll, catch-up after a reconnect, or stream entry.", "ops").
			WithTarget(query("sum by (trigger) ("+rate(executions)+")", "{{trigger}}")),
		quantiles(seriesPanel("Execution duration", "Time spent in one execution (decode, evaluate, encode): p50, p95, p99.", "s"),
			"eventrt_execution_duration_seconds_bucket"),
		quantiles(seriesPanel("Trigger-to-output lag", "From the trigger (event received, tick) to the committed output: p50, p95, p99.", "s"),
			"eventrt_trigger_lag_seconds_bucket"),
		seriesPanel("Errors/s by kind", "Failures by kind: decode (input is not JSON), handler (the program failed), timeout, output (too large or not encodable), redis.", "ops").
			WithTarget(query("sum by (kind) ("+rate("eventrt_errors_total{"+fn+"}")+")", "{{kind}}")),
		seriesPanel("Events and skipped runs", "Trigger signals received, and signals that led to no execution (value already executed, or folded into a pending run).", "ops").
			WithTarget(query("sum by (trigger) ("+rate("eventrt_events_total{"+fn+"}")+")", "event: {{trigger}}")).
			WithTarget(query("sum by (reason) ("+rate("eventrt_runs_skipped_total{"+fn+"}")+")", "skipped: {{reason}}")),
	}
}

// classicOutput shows the numeric fields of the latest output (eventrt_output_value) the way
// the classic course handler names them.
func classicOutput() []cog.Builder[dashboard.Panel] {
	out := func(field string) string {
		return `eventrt_output_value{` + fn + `,field=~"` + field + `"}`
	}
	return []cog.Builder[dashboard.Panel]{
		statPanel("Network egress and memory caching", "percent_network_egress and percent_memory_caching of the latest output.").
			WithTarget(instant("max by (field) ("+out("percent_.*")+")", "{{field}}")).
			Unit("percent").
			Span(8).
			Height(6).
			ColorMode(common.BigValueColorModeNone).
			TextMode(common.BigValueTextModeValueAndName),
		bargauge.NewPanelBuilder().
			Title("CPU moving averages (60 samples)").
			Description("avg-util-cpuN-60sec of the latest output: the moving average per CPU kept in context.env.").
			Datasource(ds).
			WithTarget(instant(`max by (cpu) (label_replace(`+out("avg-util-cpu.*")+`, "cpu", "$1", "field", "avg-util-cpu([0-9]+)-60sec"))`, "cpu {{cpu}}")).
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
			WithTarget(instant("max("+out("executions")+")", "")).
			Span(4).
			Height(6).
			ColorMode(common.BigValueColorModeNone),
		seriesPanel("Output values over time", "percent_network_egress and percent_memory_caching as they were written.", "percent").
			WithTarget(query("max by (field) ("+out("percent_.*")+")", "{{field}}")).
			Span(24),
	}
}

func handler() []cog.Builder[dashboard.Panel] {
	return []cog.Builder[dashboard.Panel]{
		table.NewPanelBuilder().
			Title("Handler versions").
			Description("The handler version each function runs (hash of its source) and its file's modification time.").
			Datasource(ds).
			Height(8).
			Span(12).
			WithTarget(prometheus.NewDataqueryBuilder().Datasource(ds).RefId("A").Instant().Format(prometheus.PromQueryFormatTable).
				Expr("max by (function, runtime, hash) (eventrt_handler_info{"+fn+"})")).
			WithTarget(prometheus.NewDataqueryBuilder().Datasource(ds).RefId("B").Instant().Format(prometheus.PromQueryFormatTable).
				Expr("max by (function) (eventrt_handler_mtime_seconds{"+fn+"}) * 1000")).
			WithTransformation(dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}}).
			WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
				"excludeByName": map[string]any{"Time": true, "Value #A": true},
				"renameByName":  map[string]any{"Value #B": "modified"},
			}}).
			OverrideByName("modified", []dashboard.DynamicConfigValue{{Id: "unit", Value: "dateTimeAsIso"}}),
		seriesPanel("Reloads", "Hot reloads of the handler: a failure means the new version did not compile and the previous one keeps running.", "short").
			WithTarget(query("sum by (outcome) (increase(eventrt_reloads_total{"+fn+"}[$__rate_interval]))", "{{outcome}}")).
			OverrideByName("failure", []dashboard.DynamicConfigValue{{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": "red"}}}).
			WithTarget(query("sum by (reason) (increase(eventrt_worker_restarts_total{"+fn+"}[$__rate_interval]))", "worker restart: {{reason}}")),
	}
}

func streams() []cog.Builder[dashboard.Panel] {
	return []cog.Builder[dashboard.Panel]{
		seriesPanel("Consumer group backlog", "Stream mode: entries not yet delivered to the consumer group (lag) and delivered but not acknowledged (pending).", "short").
			WithTarget(query("max by (function) (eventrt_stream_lag_entries{"+fn+"})", "lag {{function}}")).
			WithTarget(query("sum by (function) (eventrt_stream_pending_entries{"+fn+"})", "pending {{function}}")),
		seriesPanel("Dead letters", "Stream entries moved to the dead-letter stream after repeated failures.", "short").
			WithTarget(query("sum by (function) (increase(eventrt_dead_letters_total{"+fn+"}[$__rate_interval]))", "{{function}}")),
	}
}

// process shows the runtime of the eventrt processes. These series carry no function label and
// the job name depends on how Prometheus scrapes (ServiceMonitor or pod annotations), so they
// are picked by the instances that export eventrt_build_info.
func process() []cog.Builder[dashboard.Panel] {
	return []cog.Builder[dashboard.Panel]{
		seriesPanel("Memory (RSS)", "Resident memory of each eventrt process.", "bytes").
			WithTarget(query("process_resident_memory_bytes and on (job, instance) eventrt_build_info", "{{instance}}")),
		seriesPanel("CPU", "CPU used by each eventrt process, in cores.", "short").
			WithTarget(query(rate("process_cpu_seconds_total")+" and on (job, instance) eventrt_build_info", "{{instance}}")),
	}
}
