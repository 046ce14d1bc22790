package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// RuleScale sets the time constants of the rules: every rate window, `for:` duration and
// threshold in seconds is a number of Minutes. Production uses ProductionScale; the
// real-Prometheus test runs the same rules with a Minute of one second, so that an alert
// meant to fire after ten minutes fires after ten seconds.
type RuleScale struct {
	Minute time.Duration
}

// ProductionScale is the scale of the committed rule file.
var ProductionScale = RuleScale{Minute: time.Minute}

// dur is n minutes as a Prometheus duration ("5m"; "5s" when a Minute is a second).
func (s RuleScale) dur(n int) string { return promDuration(time.Duration(n) * s.Minute) }

// secs is n minutes in seconds, for thresholds compared with a time in seconds.
func (s RuleScale) secs(n int) string {
	return strconv.FormatFloat((time.Duration(n) * s.Minute).Seconds(), 'f', -1, 64)
}

// promDuration writes d in the largest Prometheus unit that divides it.
func promDuration(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// Labels the rules keep: a deployment is (namespace, job); a replica adds pod. namespace and
// pod come from Kubernetes service discovery (the ServiceMonitor); outside Kubernetes the
// scrape configuration should set them, or they are simply absent.
const (
	byDeployment = "namespace, job"
	byFunction   = "namespace, job, function"
	byPod        = "namespace, job, pod, function"
)

// Rules returns eventrt's recording and alerting rules at scale s. The recording rules keep
// the pod, so that the dashboard's pod filter applies to them; the alerts aggregate to what
// they are about (a replica, a function of a deployment).
func Rules(s RuleScale) RuleFile {
	w5, w15 := s.dur(5), s.dur(15)
	// seen lists the (namespace, job) pairs that exported eventrt in the last day, so that a
	// job whose targets are all down or gone is still known.
	seen := "group by (" + byDeployment + ") (last_over_time(eventrt_build_info[" + s.dur(24*60) + "]))"
	return RuleFile{Groups: []RuleGroup{
		{Name: "eventrt.recording", Rules: []Rule{
			{Record: "function_outcome:eventrt_executions:rate5m",
				Expr: "sum by (" + byPod + ", outcome) (rate(eventrt_executions_total[" + w5 + "]))"},
			{Record: "function_kind:eventrt_errors:rate5m",
				Expr: "sum by (" + byPod + ", kind) (rate(eventrt_errors_total[" + w5 + "]))"},
			{Record: "function:eventrt_execution_errors:ratio_rate5m",
				Comment: "Share of executions that failed; 0 (not empty) while a function runs without failures or does not run at all.",
				Expr: "sum by (" + byPod + ") (function_outcome:eventrt_executions:rate5m{outcome=\"error\"})\n" +
					"  / (sum by (" + byPod + ") (function_outcome:eventrt_executions:rate5m) > 0)\n" +
					"or\n" +
					"sum by (" + byPod + ") (function_outcome:eventrt_executions:rate5m{outcome=\"error\"}) * 0\n"},
			{Record: "function:eventrt_execution_duration_seconds:p95_rate5m",
				Expr: "histogram_quantile(0.95,\n  sum by (" + byPod + ", le) (rate(eventrt_execution_duration_seconds_bucket[" + w5 + "])))\n"},
			{Record: "function:eventrt_trigger_lag_seconds:p95_rate5m",
				Comment: "Trigger-to-completion lag: how late an output is after the change (or the stream entry) that caused it.",
				Expr:    "histogram_quantile(0.95,\n  sum by (" + byPod + ", le) (rate(eventrt_trigger_lag_seconds_bucket[" + w5 + "])))\n"},
		}},
		{Name: "eventrt.alerts", Rules: []Rule{
			{Alert: "EventrtTargetDown",
				Comment: "A replica Prometheus scrapes does not answer: crashed, hung, or its /metrics is unreachable. Only jobs that exported eventrt within a day count.",
				Expr:    "up == 0\nand on (" + byDeployment + ")\n" + seen + "\n",
				For:     s.dur(5), Labels: map[string]string{"severity": "critical"},
				Annotations: map[string]string{
					"summary":     "eventrt {{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.instance }}) is down",
					"description": "Prometheus cannot scrape this eventrt replica; its functions do not run there. Check the pod's status and its last log lines (kubectl logs --previous).",
				}},
			{Alert: "EventrtJobAbsent",
				Comment: "No replica of a deployment that exported eventrt within a day is up: every target is down, or none is left to scrape (scaled to zero, ServiceMonitor broken).",
				Expr:    seen + "\nunless on (" + byDeployment + ")\ngroup by (" + byDeployment + ") (up == 1)\n",
				For:     s.dur(5), Labels: map[string]string{"severity": "critical"},
				Annotations: map[string]string{
					"summary":     "no eventrt replica of {{ $labels.namespace }}/{{ $labels.job }} is up",
					"description": "None of the deployment's functions runs. Check the Deployment and the ServiceMonitor (kubectl get pods,servicemonitor). A deployment removed on purpose stops alerting a day later; silence it meanwhile.",
				}},
			{Alert: "EventrtErrorsRising",
				Comment: "More than 5% of executions fail, and it is not a single stray failure.",
				Expr: "function:eventrt_execution_errors:ratio_rate5m > 0.05\nand ignoring (outcome)\n" +
					"function_outcome:eventrt_executions:rate5m{outcome=\"error\"} > 0.01\n",
				For: s.dur(10), Labels: map[string]string{"severity": "warning"},
				Annotations: map[string]string{
					"summary":     "eventrt function {{ $labels.function }} on {{ $labels.pod }} fails {{ $value | humanizePercentage }} of its executions",
					"description": "Errors by kind: eventrt_errors_total{function=\"{{ $labels.function }}\"}. Each failure is logged with its kind (decode, handler, timeout, output) and writes nothing.",
				}},
			{Alert: "EventrtNoRecentSuccess",
				Comment: "\"N periods\": 10 minutes is 120 periods of the course collector (5 s). Tune the threshold to your input's update rate. The newest success of all replicas counts, so standby replicas (key mode) do not fire it; 0 (never succeeded) is left to EventrtErrorsRising.",
				Expr:    "time() - max by (" + byFunction + ") (eventrt_last_success_timestamp_seconds > 0) > " + s.secs(10),
				For:     s.dur(5), Labels: map[string]string{"severity": "warning"},
				Annotations: map[string]string{
					"summary":     "eventrt function {{ $labels.function }} has not succeeded for {{ $value | humanizeDuration }}",
					"description": "No successful execution: the input is not changing, the triggers are broken, or every run fails. Check eventrt_events_total and eventrt_errors_total.",
				}},
			{Alert: "EventrtRedisDown",
				Expr: "eventrt_redis_up == 0",
				For:  s.dur(2), Labels: map[string]string{"severity": "critical"},
				Annotations: map[string]string{
					"summary":     "eventrt {{ $labels.namespace }}/{{ $labels.pod }} cannot reach Redis",
					"description": "eventrt reconnects with backoff and catches up when Redis is back; meanwhile no function runs.",
				}},
			{Alert: "EventrtTriggerLagHigh",
				Expr: "function:eventrt_trigger_lag_seconds:p95_rate5m > 1",
				For:  s.dur(10), Labels: map[string]string{"severity": "warning"},
				Annotations: map[string]string{
					"summary":     "eventrt function {{ $labels.function }} on {{ $labels.pod }}: p95 trigger-to-output lag is {{ $value | humanizeDuration }}",
					"description": "Outputs are late. With keyspace notifications the lag is about a millisecond; polling (eventrt_keyspace_notifications == 0) bounds it by MONITORING_PERIOD; in stream mode it includes the time entries wait in the backlog.",
				}},
			{Alert: "EventrtStreamBehind",
				Comment: "The oldest entry of the input stream that the consumer group has not finished (pending, or not yet delivered) is older than 5 minutes: the consumers do not keep up, or are stuck.",
				Expr:    "max by (" + byFunction + ") (eventrt_stream_oldest_entry_age_seconds) > " + s.secs(5),
				For:     s.dur(5), Labels: map[string]string{"severity": "warning"},
				Annotations: map[string]string{
					"summary":     "eventrt function {{ $labels.function }} is {{ $value | humanizeDuration }} behind its stream",
					"description": "Add replicas (KEDA does it in the stream overlay) or make the handler cheaper; if the backlog does not move at all, the log names what blocks it (a refused commit names its key).",
				}},
			{Alert: "EventrtReloadFailed",
				Comment: "Fires on the first failure: the failure series exists at 0 from start-up.",
				Expr:    "sum by (" + byPod + ", instance) (increase(eventrt_reloads_total{outcome=\"failure\"}[" + w15 + "])) > 0",
				Labels:  map[string]string{"severity": "warning"},
				Annotations: map[string]string{
					"summary":     "eventrt {{ $labels.pod }} refused a new version of {{ $labels.function }}",
					"description": "The new handler did not compile; the previous version keeps running. The log line of the failed reload names the file and line:column.",
				}},
			{Alert: "EventrtDeadLetters",
				Expr:   "round(sum by (" + byFunction + ", mode) (increase(eventrt_dead_letters_total[" + w15 + "]))) > 0",
				Labels: map[string]string{"severity": "warning"},
				Annotations: map[string]string{
					"summary":     "eventrt function {{ $labels.function }} dead-lettered {{ $value }} inputs in " + w15,
					"description": "Inputs were set aside in a dead-letter stream with their error: stream entries that kept failing, or key values whose runs killed the process. They will not be retried until written again.",
				}},
			{Alert: "EventrtPollingOnly",
				Comment: "Keyspace notifications unavailable (CONFIG refused and none configured): runs are late by up to MONITORING_PERIOD. A replica that cannot reach Redis has no notifications either; that is EventrtRedisDown's to report.",
				Expr:    "eventrt_keyspace_notifications == 0\nunless ignoring (function)\neventrt_redis_up == 0\n",
				For:     s.dur(15), Labels: map[string]string{"severity": "info"},
				Annotations: map[string]string{
					"summary":     "eventrt function {{ $labels.function }} relies on polling",
					"description": "Set notify-keyspace-events (e.g. KA) in the Redis configuration, or allow eventrt to run CONFIG SET.",
				}},
		}},
	}}
}

// rulesHeader opens the generated rule file.
const rulesHeader = `# Prometheus recording and alerting rules for eventrt, generated from deploy/rules.go by
# ` + "`go run ./deploy/gen`" + ` (make dashboards); edit that file, not this one.
# Checked by ` + "`promtool check rules`" + ` and unit-tested by eventrt.rules.test.yml
# (` + "`promtool test rules eventrt.rules.test.yml`" + `); both run in go test ./deploy/. The same rules
# run against a real Prometheus scraping real eventrt processes in prometheus_test.go.
#
# Aggregations keep namespace and job (a deployment) and, in the recording rules, pod; outside
# Kubernetes set those labels in the scrape configuration, or they are simply absent.
`

// RulesYAML writes rf as a rule file: the header, then each group and rule with its comment,
// expressions as literal blocks.
func RulesYAML(rf RuleFile) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(rulesHeader)
	b.WriteString("groups:\n")
	for gi, g := range rf.Groups {
		if gi > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "  - name: %s\n", g.Name)
		if g.Interval != "" {
			fmt.Fprintf(&b, "    interval: %s\n", g.Interval)
		}
		b.WriteString("    rules:\n")
		for ri, r := range g.Rules {
			if ri > 0 {
				b.WriteString("\n")
			}
			for _, l := range wrap(r.Comment, 92) {
				b.WriteString("      # " + l + "\n")
			}
			if r.Record != "" {
				fmt.Fprintf(&b, "      - record: %s\n", r.Record)
			} else {
				fmt.Fprintf(&b, "      - alert: %s\n", r.Alert)
			}
			writeExpr(&b, r.Expr)
			if r.For != "" {
				fmt.Fprintf(&b, "        for: %s\n", r.For)
			}
			for _, m := range []struct {
				name string
				kv   map[string]string
				keys []string
			}{{"labels", r.Labels, []string{"severity"}}, {"annotations", r.Annotations, []string{"summary", "description"}}} {
				if len(m.kv) == 0 {
					continue
				}
				if len(m.kv) != len(m.keys) {
					return nil, fmt.Errorf("rule %s%s: %s other than %v", r.Record, r.Alert, m.name, m.keys)
				}
				fmt.Fprintf(&b, "        %s:\n", m.name)
				for _, k := range m.keys {
					v, ok := m.kv[k]
					if !ok {
						return nil, fmt.Errorf("rule %s%s: no %s %s", r.Record, r.Alert, m.name, k)
					}
					if m.name == "annotations" || !plainWord(v) {
						v = quote(v)
					}
					fmt.Fprintf(&b, "          %s: %s\n", k, v)
				}
			}
		}
	}
	// What was written must read back as rf.
	back, err := ParseRules(b.Bytes())
	if err != nil {
		return nil, err
	}
	if want, _ := json.Marshal(rf); !bytes.Equal(mustJSON(back), want) {
		return nil, fmt.Errorf("the rule file does not read back as written")
	}
	return b.Bytes(), nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// writeExpr writes an expression plain when it is one line that YAML reads back unchanged,
// otherwise as a literal block.
func writeExpr(b *bytes.Buffer, expr string) {
	if !strings.Contains(expr, "\n") {
		var back struct{ Expr string }
		if yaml.Unmarshal([]byte("expr: "+expr), &back) == nil && back.Expr == expr {
			b.WriteString("        expr: " + expr + "\n")
			return
		}
	}
	b.WriteString("        expr: |\n")
	for _, l := range strings.SplitAfter(strings.TrimSuffix(expr, "\n"), "\n") {
		b.WriteString("          " + strings.TrimSuffix(l, "\n") + "\n")
	}
}

// quote writes s as a YAML double-quoted scalar (JSON's escapes are YAML's).
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// plainWord reports whether s is a lower-case word, written without quotes.
func plainWord(s string) bool {
	for _, c := range s {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return s != ""
}

// wrap splits a comment into lines of at most width bytes.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
