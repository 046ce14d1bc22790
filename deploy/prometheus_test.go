package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventrt/eventrt/grafana"
	"github.com/eventrt/eventrt/internal/redistest"
)

// The real thing: a real Prometheus server (Debian's prometheus, which make test installs with
// promtool) scrapes real eventrt processes on a real redis-server, with the project's rules
// loaded at a minute of one second (RuleScale). The test evaluates every expression of the
// generated dashboard (its variables substituted as Grafana would) and every rule through
// Prometheus' HTTP API while the deployments are healthy, then drives what must alert: a
// broken reload, an eventrt killed, a stream backlog and Redis stopped, and waits for each
// alert to fire.
//
// Two deployments: ns-a/eventrt-a runs the classic handler in key mode on two replicas (a-0,
// a-1: one runs, one stands by), ns-b/eventrt-b consumes a stream on one (b-0). The scrape
// configuration sets namespace and pod, as Kubernetes service discovery does.

// liveScale is the rules' minute in this test.
var liveScale = RuleScale{Minute: time.Second}

// liveDeadline bounds each wait of the test for Prometheus to see something.
const liveDeadline = 45 * time.Second

func TestRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs prometheus, redis-server and eventrt processes (skipped with -short)")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found: apt-get install -y prometheus (make test installs it)")
	}
	start := time.Now()
	rds := redistest.Start(t)
	bin := buildEventrt(t)

	classic, err := os.ReadFile(filepath.Join(root, "examples", "classic", "handler_module.expr"))
	if err != nil {
		t.Fatal(err)
	}
	keyEnv := []string{"REDIS_INPUT_KEY=metrics", "REDIS_OUTPUT_KEY=out-a", "MONITORING_PERIOD=1", "INPUT_MODE=key"}
	a0 := startEventrt(t, bin, "a-0", rds, map[string]string{"handler_module.expr": string(classic)}, keyEnv...)
	a1 := startEventrt(t, bin, "a-1", rds, map[string]string{"handler_module.expr": string(classic)}, keyEnv...)
	b0 := startEventrt(t, bin, "b-0", rds, map[string]string{"handler_module.expr": "{v: input.v}"},
		"REDIS_INPUT_KEY=events", "REDIS_OUTPUT_KEY=out-b", "INPUT_MODE=stream", "STREAM_CLAIM_IDLE=1h")
	prom := startPrometheus(t, promBin, map[string][]*daemon{"eventrt-a": {a0, a1}, "eventrt-b": {b0}})
	t.Logf("started redis, 3 eventrt processes and prometheus in %v", time.Since(start).Round(time.Millisecond))

	feed := startFeed(t, rds)
	defer feed.stop()

	dash, variables := dashboardQueries(t)
	rules := Rules(liveScale)

	// Healthy: every dashboard query has data (waiting for the rate windows to fill), no
	// expression fails, no alert fires.
	vars := map[string]string{"namespace": ".*", "job": "eventrt-a|eventrt-b", "pod": ".*", "function": ".*",
		"__rate_interval": "5s", "__range": "1m", "__interval": "1s"}
	prom.await(t, "every dashboard query to show data", func() (bool, string) {
		for _, q := range dash {
			res, err := prom.query(q.substitute(vars))
			if problems := healthyProblems(q, res, err); len(problems) > 0 {
				return false, strings.Join(problems, "; ")
			}
		}
		return true, ""
	})
	for _, q := range dash {
		res, err := prom.query(q.substitute(vars))
		for _, p := range healthyProblems(q, res, err) {
			t.Error(p)
		}
	}
	for _, v := range variables {
		values, err := prom.labelValues(v.substitute(vars))
		if err != nil || len(values) == 0 {
			t.Errorf("variable %s: %v, values %v", v.name, err, values)
		}
	}
	// One pod, one function: the filters narrow the data down.
	narrow := map[string]string{"namespace": "ns-a", "job": "eventrt-a", "pod": "a-0", "function": "handler_module.handler",
		"__rate_interval": "5s", "__range": "1m", "__interval": "1s"}
	for _, q := range dash {
		res, err := prom.query(q.substitute(narrow))
		if err != nil {
			t.Errorf("%s (one pod): %v", q, err)
		}
		for _, s := range res {
			if p, ok := s.Metric["pod"]; ok && p != "a-0" || s.Metric["job"] == "eventrt-b" {
				t.Errorf("%s (pod a-0 picked): a series of %v", q, s.Metric)
			}
		}
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			res, err := prom.query(r.Expr)
			if err != nil {
				t.Errorf("rule %s%s: %v", r.Record, r.Alert, err)
			}
			if r.Record != "" && len(res) == 0 {
				t.Errorf("recording rule %s: no data on healthy deployments", r.Record)
			}
		}
	}
	prom.checkRuleHealth(t)
	if firing := prom.firing(t); len(firing) > 0 {
		t.Errorf("alerts fire on healthy deployments: %v", firing)
	}
	t.Logf("healthy phase checked %d dashboard queries and %d rules after %v", len(dash), len(rules.Groups[0].Rules)+len(rules.Groups[1].Rules),
		time.Since(start).Round(time.Millisecond))

	// A broken reload (the first one: its series was 0), an eventrt killed, a stream stuck
	// behind a refused commit.
	if err := os.WriteFile(filepath.Join(a0.handlers, "handler_module.expr"), []byte("let x = ;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a0.signal(t, syscall.SIGHUP)
	a1.kill(t)
	rds.Do("DEL", "out-b")
	rds.Do("SET", "out-b", "not a stream") // every commit of b-0 is refused (WRONGTYPE): entries wait
	feed.streamEvery(200 * time.Millisecond)
	prom.awaitAlert(t, "EventrtReloadFailed", map[string]string{"pod": "a-0"})
	prom.awaitAlert(t, "EventrtTargetDown", map[string]string{"pod": "a-1"})
	prom.awaitAlert(t, "EventrtStreamBehind", map[string]string{"job": "eventrt-b"})
	if firing := prom.firing(t); firing["EventrtJobAbsent"] {
		t.Error("EventrtJobAbsent fires while a-0 is up")
	}

	// Redis stopped: EventrtRedisDown fires; polling-only does not, and the dashboard says
	// "Redis down" (2 or 3), not "polling only" (0).
	feed.stop()
	rds.Stop()
	prom.awaitAlert(t, "EventrtRedisDown", map[string]string{"pod": "a-0"})
	if res, err := prom.query("eventrt_keyspace_notifications == 0"); err == nil {
		t.Logf("during the outage %d function(s) report no keyspace notifications", len(res))
	}
	polling := pollingOnly(rules)
	if res, err := prom.query(polling); err != nil || len(res) != 0 {
		t.Errorf("EventrtPollingOnly's expression during a Redis outage: %v, %v; want nothing", res, err)
	}
	for _, q := range dash {
		if q.panel != "Triggers" {
			continue
		}
		res, err := prom.query(q.substitute(vars))
		if err != nil || len(res) == 0 {
			t.Errorf("Triggers during a Redis outage: %v, %v", res, err)
		}
		for _, s := range res {
			if s.value() < 2 {
				t.Errorf("Triggers during a Redis outage reads %v for %v, not Redis down (2 or 3)", s.value(), s.Metric)
			}
		}
	}
	rds.StartAgain()
	t.Logf("every alert fired; the test took %v", time.Since(start).Round(time.Millisecond))
}

// firstRow is the dashboard row whose panels answer per deployment.
const firstRow = "Deployments: up, keeping up, errors, speed"

// healthyProblems lists what is wrong with a dashboard query's result on healthy deployments:
// an error, no data, or in the first row a deployment missing (each shows that has its kind of
// function: triggers only key mode, the stream's backlog only stream mode).
func healthyProblems(q dashQuery, res []sample, err error) []string {
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", q, err)}
	}
	if len(res) == 0 {
		return []string{fmt.Sprintf("%s: no data on healthy deployments", q)}
	}
	if q.row != firstRow {
		return nil
	}
	want := []string{"eventrt-a", "eventrt-b"}
	switch q.panel {
	case "Triggers":
		want = []string{"eventrt-a"}
	case "Stream: oldest waiting entry":
		want = []string{"eventrt-b"}
	}
	var problems []string
	jobs := map[string]bool{}
	for _, s := range res {
		jobs[s.Metric["job"]] = true
		if s.Metric["namespace"] == "" {
			problems = append(problems, fmt.Sprintf("%s: a series without its deployment's namespace: %v", q, s.Metric))
		}
	}
	for _, j := range want {
		if !jobs[j] {
			problems = append(problems, fmt.Sprintf("%s: no value for deployment %s", q, j))
		}
	}
	return problems
}

func pollingOnly(rf RuleFile) string {
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "EventrtPollingOnly" {
				return r.Expr
			}
		}
	}
	return ""
}

// buildEventrt builds the eventrt binary into the test's temporary directory.
func buildEventrt(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "eventrt")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/eventrt")
	cmd.Dir = root // the build cache of go build ./... and go vet ./... serves it
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/eventrt: %v\n%s", err, out)
	}
	return bin
}

// daemon is one eventrt process.
type daemon struct {
	pod      string
	addr     string
	handlers string
	cmd      *exec.Cmd
	done     chan struct{}
}

// logFile is where a process writes its output, read back when the test fails.
func logFile(t *testing.T, name string) (*os.File, func() string) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, func() string {
		data, _ := os.ReadFile(f.Name())
		return tail(string(data), 30)
	}
}

func startEventrt(t *testing.T, bin, pod string, rds *redistest.Server, files map[string]string, env ...string) *daemon {
	t.Helper()
	d := &daemon{pod: pod, handlers: t.TempDir(), done: make(chan struct{})}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(d.handlers, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d.addr = "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	out, log := logFile(t, pod)
	d.cmd = exec.Command(bin)
	d.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"REDIS_HOST=127.0.0.1", "REDIS_PORT=" + strconv.Itoa(rds.Port), "HTTP_ADDR=" + d.addr,
		"HANDLER_PATH=" + d.handlers, "STREAM_CONSUMER=" + pod, "LOG_FORMAT=json", "LOG_LEVEL=info"}, env...)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start eventrt %s: %v", pod, err)
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("eventrt %s log:\n%s", pod, log())
		}
	})
	deadline := time.Now().Add(liveDeadline)
	for {
		resp, err := http.Get("http://" + d.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case <-d.done:
			t.Fatalf("eventrt %s exited:\n%s", pod, log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("eventrt %s not ready within %v:\n%s", pod, liveDeadline, log())
		}
	}
}

func (d *daemon) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, d.pod, err)
	}
}

// kill ends the process at once, as a crash would.
func (d *daemon) kill(t *testing.T) {
	t.Helper()
	d.signal(t, syscall.SIGKILL)
	<-d.done
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// feed writes the classic metrics document (a new timestamp each time) every 200 ms and, in
// stream mode, an entry now and then, until stopped.
type feed struct {
	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
	mu       sync.Mutex
	every    time.Duration
}

func startFeed(t *testing.T, rds *redistest.Server) *feed {
	t.Helper()
	sample, err := os.ReadFile(filepath.Join(root, "examples", "classic", "metrics-sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(sample, &doc); err != nil {
		t.Fatal(err)
	}
	client := rds.Client()
	ctx, cancel := context.WithCancel(context.Background())
	f := &feed{cancel: cancel, done: make(chan struct{}), every: time.Second}
	go func() {
		defer close(f.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		lastEntry := time.Time{}
		for i := 0; ; i++ {
			doc["timestamp"] = time.Now().Format(time.RFC3339Nano)
			data, _ := json.Marshal(doc)
			_ = client.Do(ctx, client.B().Set().Key("metrics").Value(string(data)).Build()).Error()
			f.mu.Lock()
			every := f.every
			f.mu.Unlock()
			if time.Since(lastEntry) >= every {
				_ = client.Do(ctx, client.B().Xadd().Key("events").Id("*").FieldValue().FieldValue("data", `{"v":`+strconv.Itoa(i)+`}`).Build()).Error()
				lastEntry = time.Now()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(f.stop)
	return f
}

func (f *feed) streamEvery(d time.Duration) {
	f.mu.Lock()
	f.every = d
	f.mu.Unlock()
}

func (f *feed) stop() {
	f.stopOnce.Do(func() {
		f.cancel()
		<-f.done
	})
}

// promServer is the Prometheus under test.
type promServer struct {
	url string
}

func startPrometheus(t *testing.T, bin string, jobs map[string][]*daemon) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := RulesYAML(Rules(liveScale))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "eventrt.rules.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n")
	cfg.WriteString("rule_files:\n  - eventrt.rules.yml\nscrape_configs:\n")
	names := make([]string, 0, len(jobs))
	for name := range jobs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&cfg, "  - job_name: %s\n    static_configs:\n", name)
		for _, d := range jobs[name] {
			// The namespace is the job's letter: ns-a for eventrt-a.
			fmt.Fprintf(&cfg, "      - targets: [%q]\n        labels: {namespace: ns-%s, pod: %s}\n", d.addr, name[len(name)-1:], d.pod)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	p := &promServer{url: "http://" + addr}
	out, log := logFile(t, "prometheus")
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log())
		}
	})
	p.await(t, "prometheus to be ready", func() (bool, string) {
		select {
		case <-done:
			t.Fatalf("prometheus exited:\n%s", log())
		default:
		}
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return p
}

// await polls cond until it holds, failing the test after liveDeadline with cond's last word.
func (p *promServer) await(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(liveDeadline)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %s", liveDeadline, what, why)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// sample is one series of an instant vector.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s sample) value() float64 {
	v, _ := s.Value[1].(string)
	f, _ := strconv.ParseFloat(v, 64)
	return f
}

type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

func (p *promServer) get(path string, params url.Values, into any) error {
	resp, err := http.Get(p.url + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%s: %s: %w", path, body, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s: %s", path, r.ErrorType, r.Error)
	}
	return json.Unmarshal(r.Data, into)
}

// query evaluates an instant query; a scalar result counts as one sample.
func (p *promServer) query(q string) ([]sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get("/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return []sample{{}}, nil
	}
	var res []sample
	err := json.Unmarshal(data.Result, &res)
	return res, err
}

// labelValues answers label_values(selector, label) as Grafana does, through the label API.
func (p *promServer) labelValues(v variableQuery) ([]string, error) {
	var values []string
	err := p.get("/api/v1/label/"+v.label+"/values", url.Values{"match[]": {v.selector}}, &values)
	return values, err
}

// checkRuleHealth: every rule evaluates without error.
func (p *promServer) checkRuleHealth(t *testing.T) {
	t.Helper()
	var data struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.get("/api/v1/rules", nil, &data); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" || r.LastError != "" {
				t.Errorf("rule %s: health %q, error %q", r.Name, r.Health, r.LastError)
			}
		}
	}
	if n == 0 {
		t.Error("prometheus loaded no rules")
	}
}

type alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (p *promServer) alerts(t *testing.T) []alert {
	t.Helper()
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	if err := p.get("/api/v1/alerts", nil, &data); err != nil {
		t.Fatal(err)
	}
	return data.Alerts
}

func (p *promServer) firing(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, a := range p.alerts(t) {
		if a.State == "firing" {
			out[a.Labels["alertname"]] = true
		}
	}
	return out
}

// awaitAlert waits until alert name fires with the given labels.
func (p *promServer) awaitAlert(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	start := time.Now()
	p.await(t, name+" to fire", func() (bool, string) {
		seen := []string{}
		for _, a := range p.alerts(t) {
			seen = append(seen, a.Labels["alertname"]+":"+a.State)
			if a.Labels["alertname"] != name || a.State != "firing" {
				continue
			}
			match := true
			for k, v := range labels {
				match = match && a.Labels[k] == v
			}
			if match {
				return true, ""
			}
		}
		return false, fmt.Sprintf("alerts: %v", seen)
	})
	t.Logf("%s fired after %v", name, time.Since(start).Round(time.Millisecond))
}

// dashQuery is one query of a dashboard panel.
type dashQuery struct {
	row, panel, expr string
}

func (q dashQuery) String() string { return fmt.Sprintf("panel %q: %s", q.panel, q.expr) }

var grafanaVar = regexp.MustCompile(`\$\{?([A-Za-z_]+)(?::[a-z]+)?\}?`)

// substitute replaces the dashboard's variables with values, as Grafana interpolates a
// regex-matched multi-value variable.
func (q dashQuery) substitute(vars map[string]string) string {
	return substitute(q.expr, vars)
}

func substitute(expr string, vars map[string]string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		name := grafanaVar.FindStringSubmatch(m)[1]
		if v, ok := vars[name]; ok {
			return v
		}
		return m
	})
}

// variableQuery is a label_values(selector, label) variable.
type variableQuery struct {
	name, selector, label string
}

func (v variableQuery) substitute(vars map[string]string) variableQuery {
	v.selector = substitute(v.selector, vars)
	return v
}

var labelValuesCall = regexp.MustCompile(`^label_values\((.*), *([a-z_]+)\)$`)

// dashboardQueries reads the generated dashboard: every panel query, with its row, and every
// query variable.
func dashboardQueries(t *testing.T) ([]dashQuery, []variableQuery) {
	t.Helper()
	data, err := grafana.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	var queries []dashQuery
	row := ""
	for _, p := range d.Panels {
		if p.Type == "row" {
			row = p.Title
			continue
		}
		for _, q := range p.Targets {
			queries = append(queries, dashQuery{row: row, panel: p.Title, expr: q.Expr})
		}
	}
	if len(queries) < 20 {
		t.Fatalf("only %d dashboard queries read", len(queries))
	}
	var variables []variableQuery
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		m := labelValuesCall.FindStringSubmatch(q)
		if m == nil {
			t.Fatalf("variable %s: query %q is not label_values(selector, label)", v.Name, q)
		}
		variables = append(variables, variableQuery{name: v.Name, selector: m[1], label: m[2]})
	}
	if len(variables) != 4 {
		t.Fatalf("%d query variables, want namespace, job, pod and function", len(variables))
	}
	return queries, variables
}
