package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/redistest"
)

// countingHandler keeps a per-key count and sum of input.n and says which key it ran for.
const countingHandler = `
	let c = (env.count ?? 0) + 1;
	let s = (env.sum ?? 0) + input.n;
	result({"n": input.n, "count": c, "sum": s, "key": context.input_key, "out": context.output_key}, {"count": c, "sum": s})`

const patternSuccess = `eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="keyspace"}`

func patternEnv(t *testing.T, extra map[string]string) map[string]string {
	env := map[string]string{"REDIS_INPUT_KEY": "metrics:*", "REDIS_OUTPUT_KEY": "avg:*", "LEASE": "false",
		"HANDLER_PATH": writeHandler(t, countingHandler)}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// Two keys of one pattern function keep their own state: their counts and sums never mix,
// each output goes to the key's own output key, and context.input_key names the key.
func TestPatternKeysKeepTheirOwnState(t *testing.T) {
	srv := redistest.Start(t)
	d := startDaemon(t, srv, patternEnv(t, nil))
	a, b := watchOutput(t, srv, "avg:web-1"), watchOutput(t, srv, "avg:web-2")
	for i := 1; i <= 3; i++ {
		srv.Do("SET", "metrics:web-1", fmt.Sprintf(`{"n": %d}`, i))
		if o := a.next(); o["count"] != float64(i) || o["key"] != "metrics:web-1" || o["out"] != "avg:web-1" {
			t.Fatalf("web-1 output %v after value %d", o, i)
		}
		srv.Do("SET", "metrics:web-2", fmt.Sprintf(`{"n": %d}`, 100*i))
		if o := b.next(); o["count"] != float64(i) || o["key"] != "metrics:web-2" {
			t.Fatalf("web-2 output %v after value %d", o, 100*i)
		}
	}
	if got := srv.Do("HGET", "{avg:web-1}:env", "sum"); got != "6" {
		t.Fatalf("web-1 state sum %s, want 6", got)
	}
	if got := srv.Do("HGET", "{avg:web-2}:env", "sum"); got != "600" {
		t.Fatalf("web-2 state sum %s, want 600", got)
	}
	if got := srv.Do("HGET", "{avg:web-2}:env:meta", "executions"); got != "3" {
		t.Fatalf("web-2 meta executions %s", got)
	}
	// A new key is picked up by its notification.
	c := watchOutput(t, srv, "avg:web-3")
	srv.Do("SET", "metrics:web-3", `{"n": 7}`)
	if o := c.next(); o["count"] != 1.0 || o["sum"] != 7.0 {
		t.Fatalf("new key's output %v", o)
	}
	d.awaitMetric(patternSuccess, 7)
	// A deleted key is dropped; its state stays.
	srv.Do("DEL", "metrics:web-1")
	if got := srv.Do("HGET", "{avg:web-1}:env", "count"); got != "3" {
		t.Fatalf("state of a deleted key: count %q", got)
	}
	// A key outside the pattern runs nothing.
	srv.Do("SET", "other:web-1", `{"n": 1}`)
	srv.Do("SET", "metrics:web-2", `{"n": 1000}`)
	if o := b.next(); o["count"] != 4.0 {
		t.Fatalf("web-2 output %v", o)
	}
	if got := srv.Do("EXISTS", "avg:other:web-1"); got != "0" {
		t.Fatal("a key outside the pattern ran")
	}
}

// Values written while eventrt is down run at start (catch-up per key); values already
// executed do not run again after a restart.
func TestPatternCatchUpAndNoRerunAfterRestart(t *testing.T) {
	srv := redistest.Start(t)
	env := patternEnv(t, nil)
	d := startDaemon(t, srv, env)
	a := watchOutput(t, srv, "avg:a")
	srv.Do("SET", "metrics:a", `{"n": 1}`)
	a.next()
	d.stop()
	srv.Do("SET", "metrics:b", `{"n": 2}`) // written while down
	d2 := startDaemon(t, srv, env)
	// Ready means the catch-up ran: b's output is there, a did not run again.
	if got := srv.Do("HGET", "{avg:b}:env", "count"); got != "1" {
		t.Fatalf("b not caught up at start: count %q", got)
	}
	if got := srv.Do("HGET", "{avg:a}:env:meta", "executions"); got != "1" {
		t.Fatalf("a ran again after the restart: executions %s", got)
	}
	catchups := `eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="catchup"}`
	if got := d2.metric(catchups); got != 1 {
		t.Fatalf("catch-up executions %v, want 1", got)
	}
}

// With keyspace notifications off and CONFIG refused, SCAN polling finds changed keys.
func TestPatternPollingWithoutNotifications(t *testing.T) {
	srv := redistest.Start(t, `notify-keyspace-events ""`, `rename-command CONFIG ""`)
	d := startDaemon(t, srv, patternEnv(t, map[string]string{"MONITORING_PERIOD": "100ms"}))
	for i := range 20 {
		srv.Do("SET", fmt.Sprintf("metrics:h%d", i), `{"n": 1}`)
	}
	poll := `eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="poll"}`
	d.awaitMetric(poll, 20)
	srv.Do("SET", "metrics:h3", `{"n": 5}`)
	d.awaitMetric(poll, 21)
	if got := srv.Do("HGET", "{avg:h3}:env", "sum"); got != "6" {
		t.Fatalf("h3 sum %s, want 6", got)
	}
	// Unchanged keys did not run again on later ticks.
	if got := srv.Do("HGET", "{avg:h4}:env:meta", "executions"); got != "1" {
		t.Fatalf("an unchanged key ran again: executions %s", got)
	}
}

// A trigger message naming a key runs it on its current value, even unchanged.
func TestPatternTriggerChannelNamesAKey(t *testing.T) {
	srv := redistest.Start(t)
	startDaemon(t, srv, patternEnv(t, nil))
	a := watchOutput(t, srv, "avg:a")
	srv.Do("SET", "metrics:a", `{"n": 1}`)
	a.next()
	srv.Do("PUBLISH", config.DefaultTriggerPrefix+"metrics:*", `{"key": "metrics:a"}`)
	if o := a.next(); o["count"] != 2.0 {
		t.Fatalf("output after the trigger message %v", o)
	}
}

// Fan-in: a fixed output stream receives every key's output with the key beside it; each key
// still has its own state, in the stream's slot.
func TestPatternFanInToOneStream(t *testing.T) {
	srv := redistest.Start(t)
	d := startDaemon(t, srv, patternEnv(t, map[string]string{"REDIS_OUTPUT_KEY": "all", "OUTPUT_MODE": "xadd"}))
	srv.Do("SET", "metrics:a", `{"n": 1}`)
	srv.Do("SET", "metrics:b", `{"n": 2}`)
	d.awaitMetric(patternSuccess, 2)
	got := srv.Do("XRANGE", "all", "-", "+")
	if !strings.Contains(got, "metrics:a") || !strings.Contains(got, "metrics:b") {
		t.Fatalf("stream entries %s lack the input keys", got)
	}
	if got := srv.Do("HGET", "{all}:env:metrics:b", "sum"); got != "2" {
		t.Fatalf("fan-in state of b: sum %q", got)
	}
}

// A fixed output key in SET mode is refused at start: every key would overwrite it.
func TestPatternFixedSetOutputIsRefused(t *testing.T) {
	srv := redistest.Start(t)
	env := patternEnv(t, map[string]string{"REDIS_OUTPUT_KEY": "avg"})
	base := map[string]string{"REDIS_PORT": fmt.Sprint(srv.Port), "HTTP_ADDR": "127.0.0.1:0"}
	for k, v := range env {
		base[k] = v
	}
	o, err := config.Parse(nil, func(k string) string { return base[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	if code := runDaemon(t.Context(), o, logs, nil); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(logs.String(), "fixed output key in SET mode") {
		t.Fatalf("logs do not explain the refusal:\n%s", logs.String())
	}
}

// More keys than the cache holds: the process keeps at most PATTERN_CACHE_KEYS states, and a
// key whose state was evicted reads it back (its count goes on). STATE_TTL puts a TTL on every
// state written.
func TestPatternBoundedMemoryAndStateTTL(t *testing.T) {
	srv := redistest.Start(t)
	d := startDaemon(t, srv, patternEnv(t, map[string]string{"PATTERN_CACHE_KEYS": "50", "STATE_TTL": "1h"}))
	const keys = 200
	for k := range keys {
		srv.Do("SET", fmt.Sprintf("metrics:k%d", k), `{"n": 1}`)
	}
	d.awaitMetric(patternSuccess, keys)
	if got := d.metric(`eventrt_pattern_keys{function="handler_module.handler"}`); got > 50 || got < 1 {
		t.Fatalf("keys held %v, want at most the cache's 50", got)
	}
	srv.Do("SET", "metrics:k0", `{"n": 2}`) // evicted long ago
	d.awaitMetric(patternSuccess, keys+1)
	if got := srv.Do("HGET", "{avg:k0}:env", "count"); got != "2" {
		t.Fatalf("evicted key's count %q after reloading, want 2", got)
	}
	for _, k := range []string{"{avg:k0}:env", "{avg:k0}:env:meta"} {
		if ttl := srv.Do("PTTL", k); strings.HasPrefix(ttl, "-") || ttl == "0" {
			t.Fatalf("PTTL %s = %s with STATE_TTL=1h", k, ttl)
		}
	}
}

// The classic handler over metrics:* through TLS as an ACL user that may not run CONFIG: the
// server's own notification config (K$ here) serves the pattern subscription, and each host's
// moving averages are its own.
func TestPatternClassicOverTLSWithACL(t *testing.T) {
	srv, files := redistest.StartTLS(t, `notify-keyspace-events Kg$x`, `user eventrt on >s3cret-pw ~* &* +@all -config`)
	d := startDaemon(t, srv, map[string]string{
		"REDIS_URL":        "rediss://eventrt:s3cret-pw@127.0.0.1:" + fmt.Sprint(srv.Port),
		"REDIS_CA_FILE":    files.CAFile,
		"REDIS_INPUT_KEY":  "metrics:*",
		"REDIS_OUTPUT_KEY": "avg:*",
	})
	a, b := watchOutput(t, srv, "avg:web-1"), watchOutput(t, srv, "avg:web-2")
	srv.Do("SET", "metrics:web-1", string(sampleMetrics(t)))
	if o := a.next(); o["avg-util-cpu0-60sec"] != 32.4 || o["executions"] != 1.0 {
		t.Fatalf("web-1 output %v", o)
	}
	second := strings.Replace(string(sampleMetrics(t)), `"cpu_percent-0": 32.4`, `"cpu_percent-0": 92.4`, 1)
	srv.Do("SET", "metrics:web-2", second)
	if o := b.next(); o["avg-util-cpu0-60sec"] != 92.4 || o["executions"] != 1.0 {
		t.Fatalf("web-2 output %v: its average mixed with web-1's", o)
	}
	srv.Do("SET", "metrics:web-1", second)
	if o := a.next(); o["avg-util-cpu0-60sec"] != 33.4 || o["executions"] != 2.0 {
		t.Fatalf("web-1 second output %v", o)
	}
	d.awaitMetric(patternSuccess, 3)
}

// A changed handler is swapped into a running pattern function: the keys' next values run the
// new version, with the state the old one left.
func TestPatternHotReload(t *testing.T) {
	srv := redistest.Start(t)
	cm := newConfigMapDir(t, map[string]string{"handler_module.expr": `let c = (env.c ?? 0) + 1; result({"v": 1, "c": c}, {"c": c})`})
	d := startDaemon(t, srv, patternEnv(t, map[string]string{"HANDLER_PATH": cm.root}))
	a := watchOutput(t, srv, "avg:a")
	srv.Do("SET", "metrics:a", `{"n": 1}`)
	if o := a.next(); o["v"] != 1.0 || o["c"] != 1.0 {
		t.Fatalf("output %v", o)
	}
	cm.update(map[string]string{"handler_module.expr": `let c = (env.c ?? 0) + 1; result({"v": 2, "c": c}, {"c": c})`})
	d.awaitMetric(`eventrt_reloads_total{function="handler_module.handler",outcome="success"}`, 1)
	srv.Do("SET", "metrics:a", `{"n": 2}`)
	if o := a.next(); o["v"] != 2.0 || o["c"] != 2.0 {
		t.Fatalf("output after the reload %v", o)
	}
}

// eventrt state reset names no single state for a pattern function: it says so instead of
// deleting a key that does not exist.
func TestStateResetRefusesAPattern(t *testing.T) {
	env := map[string]string{"REDIS_INPUT_KEY": "metrics:*", "REDIS_OUTPUT_KEY": "avg:*"}
	var out, errOut strings.Builder
	if code := runState(t.Context(), []string{"reset"}, func(k string) string { return env[k] }, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), "each input key has a state of its own") {
		t.Fatalf("message %q", errOut.String())
	}
}
