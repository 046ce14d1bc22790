package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/redistest"
)

// syncBuffer collects the daemon's log lines for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemonUnderTest is an in-process eventrt.
type daemonUnderTest struct {
	t      *testing.T
	srv    *redistest.Server
	addr   string
	logs   *syncBuffer
	cancel context.CancelFunc
	exit   chan int
	// streamed counts stream consumers started (the streaming hook).
	streamed atomic.Int32
	// running is the last report of the running hook: key-mode and stream functions.
	running atomic.Value // [2]int
}

func sampleMetrics(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../examples/classic/metrics-sample.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startDaemon runs eventrt against srv with the classic handler unless env overrides it.
func startDaemon(t *testing.T, srv *redistest.Server, env map[string]string) *daemonUnderTest {
	t.Helper()
	return startDaemonIn(t, srv, env, nil)
}

// startDaemonIn is startDaemon with the handler layouts at l (nil: the real ones). An empty
// value in env unsets the variable.
func startDaemonIn(t *testing.T, srv *redistest.Server, env map[string]string, l *layout) *daemonUnderTest {
	t.Helper()
	base := map[string]string{
		"REDIS_HOST": "127.0.0.1", "REDIS_PORT": fmt.Sprint(srv.Port),
		"HANDLER_PATH": "../../examples/classic", "HTTP_ADDR": "127.0.0.1:0",
		"LOG_LEVEL": "debug", "LOG_FORMAT": "json", "MONITORING_PERIOD": "1h", "SHUTDOWN_TIMEOUT": "5s",
	}
	for k, v := range env {
		base[k] = v
		if v == "" {
			delete(base, k)
		}
	}
	o, err := config.Parse(nil, func(k string) string { return base[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemonUnderTest{t: t, srv: srv, logs: &syncBuffer{}, exit: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	listening, started := make(chan string, 1), make(chan struct{})
	go func() {
		d.exit <- runDaemon(ctx, o, d.logs, &hooks{
			listening: func(a string) { listening <- a },
			started:   func() { close(started) },
			streaming: func() { d.streamed.Add(1) },
			running:   func(key, stream int) { d.running.Store([2]int{key, stream}) },
			layout:    l,
		})
	}()
	select {
	case d.addr = <-listening:
	case code := <-d.exit:
		t.Fatalf("daemon exited with %d before listening:\n%s", code, d.logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("daemon did not listen:\n%s", d.logs.String())
	}
	select {
	case <-started:
	case code := <-d.exit:
		t.Fatalf("daemon exited with %d:\n%s", code, d.logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("daemon did not start:\n%s", d.logs.String())
	}
	t.Cleanup(func() { d.stop() })
	d.awaitReady()
	return d
}

// stop cancels the daemon (like SIGTERM) and returns its exit code.
func (d *daemonUnderTest) stop() int {
	if d.cancel == nil {
		return 0
	}
	d.cancel()
	d.cancel = nil
	select {
	case code := <-d.exit:
		return code
	case <-time.After(15 * time.Second):
		d.t.Fatalf("daemon did not stop:\n%s", d.logs.String())
		return -1
	}
}

func (d *daemonUnderTest) get(path string) (int, string) {
	d.t.Helper()
	resp, err := http.Get("http://" + d.addr + path)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// awaitReady waits for /readyz; readiness flips once (subscriptions in place), so a short
// poll is the event here.
func (d *daemonUnderTest) awaitReady() {
	d.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := d.get("/readyz")
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("not ready: %s\n%s", body, d.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric returns the value of one exposition line (name with labels), or -1 when absent.
func (d *daemonUnderTest) metric(series string) float64 {
	d.t.Helper()
	_, body := d.get("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, series+" ") {
			var v float64
			fmt.Sscan(strings.TrimPrefix(line, series+" "), &v)
			return v
		}
	}
	return -1
}

// awaitMetric waits until the series reaches at least want.
func (d *daemonUnderTest) awaitMetric(series string, want float64) {
	d.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for d.metric(series) < want {
		if time.Now().After(deadline) {
			d.t.Fatalf("%s never reached %v (now %v)\n%s", series, want, d.metric(series), d.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// awaitLog waits until the daemon has logged a line containing text.
func (d *daemonUnderTest) awaitLog(text string) {
	d.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(d.logs.String(), text) {
		if time.Now().After(deadline) {
			d.t.Fatalf("never logged %q:\n%s", text, d.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// outputWatcher awaits writes to a key through its own keyspace notifications, the way a
// dashboard client would.
type outputWatcher struct {
	t      *testing.T
	c      rueidis.Client
	key    string
	events chan struct{}
}

func watchOutput(t *testing.T, srv *redistest.Server, key string) *outputWatcher {
	t.Helper()
	c := srv.Client()
	w := &outputWatcher{t: t, c: c, key: key, events: make(chan struct{}, 1000)}
	subscribed := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		_ = c.Receive(rueidis.WithOnSubscriptionHook(ctx, func(rueidis.PubSubSubscription) {
			select {
			case <-subscribed:
			default:
				close(subscribed)
			}
		}), c.B().Subscribe().Channel("__keyspace@0__:"+key).Build(), func(rueidis.PubSubMessage) {
			w.events <- struct{}{}
		})
	}()
	<-subscribed
	return w
}

// next waits for the next write and returns the key's value decoded.
func (w *outputWatcher) next() map[string]any {
	w.t.Helper()
	select {
	case <-w.events:
	case <-time.After(20 * time.Second):
		w.t.Fatalf("no write to %s", w.key)
	}
	s, err := w.c.Do(context.Background(), w.c.B().Get().Key(w.key).Build()).ToString()
	if err != nil {
		w.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		w.t.Fatalf("output %q: %v", s, err)
	}
	return m
}

func TestClassicHandlerOnKeyspaceEvents(t *testing.T) {
	srv := redistest.Start(t, `notify-keyspace-events ""`)
	d := startDaemon(t, srv, nil)
	if got := srv.Do("CONFIG", "GET", "notify-keyspace-events"); !strings.Contains(got, "K") {
		t.Fatalf("eventrt did not enable keyspace events: %s", got)
	}
	out := watchOutput(t, srv, "output")
	srv.Do("SET", "metrics", string(sampleMetrics(t)))
	o := out.next()
	// Worked out by hand from metrics-sample.json:
	// egress = 183412077 / (183412077 + 912334501) * 100 = 16.7385...
	// caching = (4123456000 + 412345000) / 16766464000 * 100 = 27.0528...
	want := map[string]float64{
		"percent_network_egress": 16.74,
		"percent_memory_caching": 27.05,
		"avg-util-cpu0-60sec":    32.4, // first sample: prev defaults to the current value
		"avg-util-cpu15-60sec":   22.3,
		"executions":             1,
		"timestamp":              1764085200.123456,
	}
	for k, v := range want {
		if o[k] != v {
			t.Errorf("first output %s = %v, want %v", k, o[k], v)
		}
	}
	// Second sample: cpu0 goes to 92.4: avg = (32.4*59 + 92.4)/60 = 33.4.
	second := strings.Replace(string(sampleMetrics(t)), `"cpu_percent-0": 32.4`, `"cpu_percent-0": 92.4`, 1)
	second = strings.Replace(second, "1764085200.123456", "1764085205.5", 1)
	srv.Do("SET", "metrics", second)
	o = out.next()
	if o["avg-util-cpu0-60sec"] != 33.4 || o["executions"] != 2.0 || o["avg-util-cpu1-60sec"] != 15.1 {
		t.Errorf("second output: %v", o)
	}
	var avg float64
	fmt.Sscan(srv.Do("HGET", "{output}:env", "avg-util-cpu0-60sec"), &avg)
	if math.Abs(avg-33.4) > 1e-9 {
		t.Errorf("state avg-util-cpu0-60sec = %v, want 33.4", avg)
	}
	if got := srv.Do("HGET", "{output}:env:meta", "executions"); got != "2" {
		t.Errorf("meta executions = %s", got)
	}
	d.awaitMetric(`eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="keyspace"}`, 2)
	if v := d.metric(`eventrt_output_value{field="percent_network_egress",function="handler_module.handler"}`); v != 16.74 {
		t.Errorf("output gauge = %v", v)
	}
	if v := d.metric(`eventrt_keyspace_notifications{function="handler_module.handler"}`); v != 1 {
		t.Errorf("keyspace_notifications = %v", v)
	}
	if code := d.stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

func TestPubSubTrigger(t *testing.T) {
	srv := redistest.Start(t)
	startDaemon(t, srv, map[string]string{"HANDLER_PATH": writeHandler(t, `
		input.kind == "ping" ? {"pong": input.n, "trigger": context.trigger} : {"value": input.v, "trigger": context.trigger}`)})
	out := watchOutput(t, srv, "output")
	srv.Do("SET", "metrics", `{"v": 1}`)
	if o := out.next(); o["value"] != 1.0 || o["trigger"] != "keyspace" {
		t.Fatalf("keyspace output %v", o)
	}
	srv.Do("PUBLISH", "eventrt:trigger:metrics", `{"kind":"ping","n":7}`)
	if o := out.next(); o["pong"] != 7.0 || o["trigger"] != "pubsub" {
		t.Fatalf("ad-hoc output %v", o)
	}
	srv.Do("PUBLISH", "eventrt:trigger:metrics", "run")
	if o := out.next(); o["value"] != 1.0 || o["trigger"] != "pubsub" {
		t.Fatalf("forced output %v", o)
	}
}

func writeHandler(t *testing.T, src string) string {
	t.Helper()
	// Named after the default function, so that the function is handler_module.handler.
	p := filepath.Join(t.TempDir(), "handler_module.expr")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPollFallbackWhenConfigIsRefused(t *testing.T) {
	srv := redistest.Start(t, `notify-keyspace-events ""`, `rename-command CONFIG ""`)
	d := startDaemon(t, srv, map[string]string{"MONITORING_PERIOD": "100ms"})
	d.awaitLog("relying on polling")
	if v := d.metric(`eventrt_keyspace_notifications{function="handler_module.handler"}`); v != 0 {
		t.Fatalf("keyspace_notifications = %v, want 0", v)
	}
	srv.Do("SET", "metrics", string(sampleMetrics(t)))
	d.awaitMetric(`eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="poll"}`, 1)
	if got := srv.Do("GET", "output"); !strings.Contains(got, `"percent_network_egress":16.74`) {
		t.Fatalf("output %s", got)
	}
	// Later ticks see the same value and skip it.
	d.awaitMetric(`eventrt_runs_skipped_total{function="handler_module.handler",reason="unchanged"}`, 2)
	if v := d.metric(`eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="poll"}`); v != 1 {
		t.Fatalf("the same value ran %v times", v)
	}
	if n := strings.Count(d.logs.String(), "relying on polling"); n != 1 {
		t.Errorf("%d polling warnings, want 1:\n%s", n, d.logs.String())
	}
}

func TestEnvSurvivesRestartOfEventrt(t *testing.T) {
	srv := redistest.Start(t)
	d := startDaemon(t, srv, nil)
	out := watchOutput(t, srv, "output")
	srv.Do("SET", "metrics", string(sampleMetrics(t)))
	out.next()
	if code := d.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	d2 := startDaemon(t, srv, nil)
	// The catch-up read at start sees the executed value and must not run it again.
	d2.awaitMetric(`eventrt_runs_skipped_total{function="handler_module.handler",reason="unchanged"}`, 1)
	if got := srv.Do("HGET", "{output}:env:meta", "executions"); got != "1" {
		t.Fatalf("value re-ran after restart: executions = %s", got)
	}
	second := strings.Replace(string(sampleMetrics(t)), `"cpu_percent-0": 32.4`, `"cpu_percent-0": 92.4`, 1)
	srv.Do("SET", "metrics", second)
	o := out.next()
	if o["avg-util-cpu0-60sec"] != 33.4 || o["executions"] != 2.0 {
		t.Fatalf("state lost across restart: %v", o)
	}
}

func TestRecoversAfterRedisRestart(t *testing.T) {
	srv := redistest.Start(t, `notify-keyspace-events ""`)
	d := startDaemon(t, srv, nil)
	srv.Restart() // forgets notify-keyspace-events
	d.awaitMetric(`eventrt_redis_up`, 1)
	out := watchOutput(t, srv, "output") // subscribes only once Redis is back
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(srv.Do("CONFIG", "GET", "notify-keyspace-events"), "K") {
		if time.Now().After(deadline) {
			t.Fatalf("notification config not restored:\n%s", d.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.Do("SET", "metrics", string(sampleMetrics(t)))
	if o := out.next(); o["executions"] != 1.0 {
		t.Fatalf("output after restart %v", o)
	}
}

func TestBadInputAndFailingHandlerLoseNothing(t *testing.T) {
	srv := redistest.Start(t)
	d := startDaemon(t, srv, map[string]string{"HANDLER_PATH": writeHandler(t,
		`input.n > 0 ? result({"n": input.n}, {"last": input.n}) : input.missing.field`)})
	out := watchOutput(t, srv, "output")
	srv.Do("SET", "metrics", `{"n": 1}`)
	out.next()
	srv.Do("SET", "metrics", `{"n": `)
	d.awaitMetric(`eventrt_errors_total{function="handler_module.handler",kind="decode"}`, 1)
	srv.Do("SET", "metrics", `{"n": 0}`)
	d.awaitMetric(`eventrt_errors_total{function="handler_module.handler",kind="handler"}`, 1)
	// The failing run went to expr's VM, which reports the error; the other reasons stand at 0.
	if v := d.metric(`eventrt_fastpath_fallbacks_total{function="handler_module.handler",reason="error"}`); v != 1 {
		t.Errorf("fallbacks for the failing run: %v, want 1", v)
	}
	if v := d.metric(`eventrt_fastpath_fallbacks_total{function="handler_module.handler",reason="budget"}`); v != 0 {
		t.Errorf("budget fallbacks: %v, want 0 (created at start)", v)
	}
	if got := srv.Do("GET", "output"); got != `{"n":1}` {
		t.Fatalf("a failed run changed the output: %s", got)
	}
	if got := srv.Do("HGET", "{output}:env", "last"); got != "1" {
		t.Fatalf("a failed run changed the state: %s", got)
	}
	logs := d.logs.String()
	if !strings.Contains(logs, `"kind":"decode"`) || !strings.Contains(logs, `"key":"metrics"`) {
		t.Fatalf("decode failure not logged with its key:\n%s", logs)
	}
	srv.Do("SET", "metrics", `{"n": 2}`)
	if o := out.next(); o["n"] != 2.0 {
		t.Fatalf("daemon did not go on: %v", o)
	}
}

func TestRunawayHandlerIsStoppedByTimeout(t *testing.T) {
	srv := redistest.Start(t)
	// 9,000,000 closure calls cannot finish within 10ms (the shortest timeout accepted); the
	// other branch has no loop to check a deadline in, so it always completes.
	d := startDaemon(t, srv, map[string]string{"HANDLER_TIMEOUT": "10ms", "HANDLER_PATH": writeHandler(t,
		`input.spin ? reduce(1..3000, reduce(1..3000, #acc + 1, 0) + #acc, 0) : {"ok": true}`)})
	srv.Do("SET", "metrics", `{"spin": true}`)
	d.awaitMetric(`eventrt_errors_total{function="handler_module.handler",kind="timeout"}`, 1)
	out := watchOutput(t, srv, "output")
	srv.Do("SET", "metrics", `{"spin": false}`)
	if o := out.next(); o["ok"] != true {
		t.Fatalf("output %v", o)
	}
}

func TestNilOutputWritesNothing(t *testing.T) {
	srv := redistest.Start(t)
	d := startDaemon(t, srv, map[string]string{"HANDLER_PATH": writeHandler(t, `input.write ? {"w": 1} : nil`)})
	srv.Do("SET", "metrics", `{"write": false}`)
	d.awaitMetric(`eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="keyspace"}`, 1)
	if got := srv.Do("EXISTS", "output"); got != "0" {
		t.Fatal("nil output wrote the key")
	}
}

func TestCompileErrorStopsStartup(t *testing.T) {
	srv := redistest.Start(t)
	var stderr bytes.Buffer
	p := writeHandler(t, "let a = 1;\n{\"x\": a +* 2}")
	code := run(context.Background(), nil, func(k string) string {
		return map[string]string{"REDIS_PORT": fmt.Sprint(srv.Port), "HANDLER_PATH": p, "HTTP_ADDR": "127.0.0.1:0", "LOG_FORMAT": "json"}[k]
	}, io.Discard, &stderr)
	if code == 0 {
		t.Fatal("started with a broken handler")
	}
	if !strings.Contains(stderr.String(), p+":2:") {
		t.Fatalf("error does not name file:line: %s", stderr.String())
	}
}

func TestInvalidSettingStopsStartup(t *testing.T) {
	var stderr bytes.Buffer
	code := run(context.Background(), nil, func(k string) string {
		return map[string]string{"MONITORING_PERIOD": "often"}[k]
	}, io.Discard, &stderr)
	if code != 2 || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 ||
		!strings.Contains(stderr.String(), `MONITORING_PERIOD="often"`) {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestMetricsExposition(t *testing.T) {
	srv := redistest.Start(t)
	d := startDaemon(t, srv, map[string]string{"REDIS_PASSWORD": ""})
	srv.Do("SET", "metrics", string(sampleMetrics(t)))
	d.awaitMetric(`eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="keyspace"}`, 1)
	if n := d.streamed.Load(); n != 0 {
		t.Errorf("streaming hook called %d times in key mode (the GC percent stays Go's)", n)
	}
	if got, _ := d.running.Load().([2]int); got != [2]int{1, 0} {
		t.Errorf("running hook reported %v, want one key-mode function and no stream (main gives it one P)", got)
	}
	_, body := d.get("/metrics")
	for _, want := range []string{
		"eventrt_execution_duration_seconds_bucket{function=\"handler_module.handler\"",
		"eventrt_trigger_lag_seconds_count{function=\"handler_module.handler\",trigger=\"keyspace\"} 1",
		"eventrt_last_success_timestamp_seconds{function=\"handler_module.handler\"}",
		"eventrt_redis_up 1",
		"eventrt_handler_info{function=\"handler_module.handler\",hash=",
		"eventrt_handler_mtime_seconds{function=\"handler_module.handler\"}",
		"eventrt_build_info{goversion=",
		"eventrt_events_total{function=\"handler_module.handler\",trigger=\"keyspace\"}",
		"go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, _ := d.get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
}

func TestReadinessFollowsRedis(t *testing.T) {
	srv := redistest.Start(t)
	d := startDaemon(t, srv, nil)
	srv.Stop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := d.get("/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(body, "redis") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz stayed %d with Redis down", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := d.get("/healthz"); code != 200 {
		t.Fatalf("/healthz %d with Redis down: liveness must not follow Redis", code)
	}
	srv.StartAgain()
	d.awaitReady()
}

func TestSecretsStayOutOfLogs(t *testing.T) {
	srv := redistest.Start(t, "requirepass hunter2-secret")
	d := startDaemon(t, srv, map[string]string{"REDIS_PASSWORD": "hunter2-secret"})
	_, body := d.get("/metrics")
	if strings.Contains(d.logs.String(), "hunter2") || strings.Contains(body, "hunter2") {
		t.Fatal("password leaked into logs or metrics")
	}
}

func renameFile(from, to string) error { return os.Rename(from, to) }

func TestUndecodableStateStopsStartup(t *testing.T) {
	srv := redistest.Start(t)
	srv.Do("HSET", "{output}:env", "avg", "1e400") // valid JSON, but no float64 holds it
	var stderr bytes.Buffer
	code := run(context.Background(), nil, func(k string) string {
		return map[string]string{"REDIS_PORT": fmt.Sprint(srv.Port), "HANDLER_PATH": "../../examples/classic",
			"HTTP_ADDR": "127.0.0.1:0", "LOG_FORMAT": "json"}[k]
	}, io.Discard, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), `{output}:env field \"avg\"`) {
		t.Fatalf("exit %d, log:\n%s", code, stderr.String())
	}
	if got := srv.Do("HGET", "{output}:env", "avg"); got != "1e400" {
		t.Fatalf("state was overwritten: %s", got)
	}
}

func TestShutdownBoundExceededExitsNonZero(t *testing.T) {
	srv := redistest.Start(t)
	d := startDaemon(t, srv, map[string]string{"HANDLER_RUNTIME": "python", "PYTHON": python(t), "HANDLER_TIMEOUT": "20s",
		"SHUTDOWN_TIMEOUT": "300ms", "PYFILE_PATH": writePython(t, `
import time
def handler(input, context):
    print("slow run started")
    time.sleep(3)
    return {"ok": True}
`)})
	srv.Do("SET", "metrics", `{"n": 1}`)
	d.awaitLog("slow run started")
	if code := d.stop(); code != 1 {
		t.Fatalf("exit %d after exceeding SHUTDOWN_TIMEOUT, want 1", code)
	}
}
