package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/bundle"
	"github.com/eventrt/eventrt/internal/exec/exprengine"
	"github.com/eventrt/eventrt/internal/redisconn"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	o, err := Parse(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.RedisHost != "localhost" || o.RedisPort != 6379 || o.InputKey != "metrics" || o.OutputKey != "output" {
		t.Errorf("redis defaults: %+v", o)
	}
	if o.Period != 5*time.Second || o.HandlerTimeout != time.Second || o.PollMode != PollChanged {
		t.Errorf("period/timeout defaults: %v %v %v", o.Period, o.HandlerTimeout, o.PollMode)
	}
	if o.TriggerChannel != "eventrt:trigger:metrics" {
		t.Errorf("trigger channel = %q", o.TriggerChannel)
	}
	if o.OutputMaxLen != 0 {
		t.Errorf("OUTPUT_MAXLEN default %d, want 0 (uncapped)", o.OutputMaxLen)
	}
	if o.StateKey != "{output}:env" {
		t.Errorf("state key = %q", o.StateKey)
	}
	if o.HandlerPath != DefaultHandlerPath || o.HandlerFunction != "handler_module.handler" {
		t.Errorf("handler defaults: %q %q", o.HandlerPath, o.HandlerFunction)
	}
	if o.LogLevel != slog.LevelInfo || o.LogFormat != "text" || o.HTTPAddr != ":8080" {
		t.Errorf("log/http defaults: %v %v %v", o.LogLevel, o.LogFormat, o.HTTPAddr)
	}
	if o.HandlerMemory != exprengine.DefaultMaxRunBytes || MinHandlerMemory != exprengine.MinMaxRunBytes {
		t.Errorf("HANDLER_MEMORY: default %d, minimum %d; the engine's are %d and %d", o.HandlerMemory, MinHandlerMemory, exprengine.DefaultMaxRunBytes, exprengine.MinMaxRunBytes)
	}
	o, err = Parse(nil, env(map[string]string{"HANDLER_MEMORY": "48Mi"}), io.Discard)
	if err != nil || o.HandlerMemory != 48<<20 {
		t.Errorf("HANDLER_MEMORY=48Mi: %d %v", o.HandlerMemory, err)
	}
}

func TestFlagsWinOverEnv(t *testing.T) {
	o, err := Parse([]string{"--redis-port", "7000", "--monitoring-period", "500ms"},
		env(map[string]string{"REDIS_PORT": "6000", "MONITORING_PERIOD": "9", "REDIS_INPUT_KEY": "in"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.RedisPort != 7000 || o.Period != 500*time.Millisecond || o.InputKey != "in" {
		t.Fatalf("got port %d period %v input %q", o.RedisPort, o.Period, o.InputKey)
	}
}

func TestIntervalAlias(t *testing.T) {
	o, err := Parse(nil, env(map[string]string{"INTERVAL": "2"}), io.Discard)
	if err != nil || o.Period != 2*time.Second {
		t.Fatalf("INTERVAL=2: %v %v", o.Period, err)
	}
	o, err = Parse(nil, env(map[string]string{"INTERVAL": "2", "MONITORING_PERIOD": "3"}), io.Discard)
	if err != nil || o.Period != 3*time.Second {
		t.Fatalf("MONITORING_PERIOD wins: %v %v", o.Period, err)
	}
	_, err = Parse(nil, env(map[string]string{"INTERVAL": "soon"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), `INTERVAL="soon"`) {
		t.Fatalf("bad INTERVAL error: %v", err)
	}
}

func TestInvalidValuesNameVariableAndValue(t *testing.T) {
	cases := []struct{ name, value, want string }{
		{"REDIS_PORT", "70000", `invalid REDIS_PORT="70000": must be between 1 and 65535`},
		{"REDIS_PORT", "abc", `invalid REDIS_PORT="abc": not an integer`},
		{"REDIS_DB", "-1", `invalid REDIS_DB="-1"`},
		{"MONITORING_PERIOD", "0", `invalid MONITORING_PERIOD="0": must be positive`},
		{"MONITORING_PERIOD", "fast", `invalid MONITORING_PERIOD="fast"`},
		{"HANDLER_TIMEOUT", "-1s", `invalid HANDLER_TIMEOUT="-1s"`},
		{"HANDLER_MEMORY", "1000", `invalid HANDLER_MEMORY="1000": must be between 1048576 (1Mi) and 17179869184 (16Gi) bytes`},
		{"HANDLER_MEMORY", "lots", `invalid HANDLER_MEMORY="lots": not a number of bytes`},
		{"HANDLER_MEMORY", "32Ti", `invalid HANDLER_MEMORY="32Ti": not a number of bytes`},
		{"HANDLER_FUNCTION", "handler", `invalid HANDLER_FUNCTION="handler": must be module.function`},
		{"LOG_LEVEL", "loud", `invalid LOG_LEVEL="loud"`},
		{"LOG_FORMAT", "xml", `invalid LOG_FORMAT="xml": must be one of text, json`},
		{"POLL_MODE", "sometimes", `invalid POLL_MODE="sometimes"`},
		{"HTTP_ADDR", "8080", `invalid HTTP_ADDR="8080"`},
		{"NOTIFY_CONFIG", "maybe", `invalid NOTIFY_CONFIG="maybe"`},
		{"REDIS_URL", "http://u:hunter2@h", `invalid REDIS_URL="http://u:[redacted]@h"`},
		{"REDIS_OUTPUT_KEY", "metrics", `invalid REDIS_OUTPUT_KEY="metrics": must differ from REDIS_INPUT_KEY`},
		{"PYTHON_SPIN_WAIT", "20ms", `invalid PYTHON_SPIN_WAIT="20ms": must be at most 10ms`},
		{"PYTHON_SPIN_WAIT", "-5us", `invalid PYTHON_SPIN_WAIT="-5us": must be positive`},
		{"PYTHON_SPIN_WAIT", "0", ``},
		{"REDIS_INPUT_KEY", "", ``}, // empty means unset: the default applies
		// Periods and timeouts have a floor: a 1ns poll burns a core.
		{"MONITORING_PERIOD", "1ns", `invalid MONITORING_PERIOD="1ns": must be at least 10ms`},
		{"MONITORING_PERIOD", "0.001", `invalid MONITORING_PERIOD="0.001": must be at least 10ms`},
		{"MONITORING_PERIOD", "10ms", ``},
		{"INTERVAL", "1ns", `invalid INTERVAL="1ns": must be at least 10ms`},
		{"HANDLER_TIMEOUT", "1ns", `invalid HANDLER_TIMEOUT="1ns": must be at least 10ms`},
		{"HANDLER_TIMEOUT", "9ms", `must be at least 10ms`},
		{"HANDLER_TIMEOUT", "2h", `invalid HANDLER_TIMEOUT="2h0m0s": must be at most 1h`},
		{"STREAM_CLAIM_IDLE", "1us", `invalid STREAM_CLAIM_IDLE="1us": must be at least 10ms`},
		{"SHUTDOWN_TIMEOUT", "1ns", `invalid SHUTDOWN_TIMEOUT="1ns": must be at least 10ms`},
		{"LEASE_TTL", "100ms", `invalid LEASE_TTL="100ms": must be at least 500ms`},
		{"OUTPUT_MAXLEN", "0", ``},
		{"OUTPUT_MAXLEN", "-1", `invalid OUTPUT_MAXLEN="-1": must be between 0 and`},
		// A huge value is quoted by its first bytes and its length only.
		{"REDIS_PORT", strings.Repeat("9", 100000), `…" (100000 bytes): not an integer`},
	}
	for _, c := range cases {
		t.Run(c.name+"="+c.value, func(t *testing.T) {
			_, err := Parse(nil, env(map[string]string{c.name: c.value}), io.Discard)
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
			if !IsInvalid(err) {
				t.Fatalf("IsInvalid(%v) = false", err)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error leaks a secret or spans lines: %q", err)
			}
		})
	}
}

func TestFlagErrorNamesFlag(t *testing.T) {
	_, err := Parse([]string{"--redis-port=0"}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), `--redis-port="0"`) {
		t.Fatalf("error = %v", err)
	}
	_, err = Parse([]string{"--no-such-flag"}, env(nil), io.Discard)
	if err == nil {
		t.Fatal("unknown flag accepted")
	}
	_, err = Parse([]string{"-h"}, env(nil), io.Discard)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	o, err := Parse(nil, env(map[string]string{"REDIS_PASSWORD": "hunter2", "REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("cfg", "opts", o, "pw", o.RedisPassword, "url", o.RedisURL)
	fmt.Fprintf(&b, "%v %+v %#v %s", o, o, o, o.RedisPassword)
	if strings.Contains(b.String(), "hunter2") {
		t.Fatalf("secret printed: %s", b.String())
	}
	if string(o.RedisPassword) != "hunter2" {
		t.Fatal("secret value lost")
	}
}

func TestDefaultStateKeySharesSlotWithOutput(t *testing.T) {
	for out, want := range map[string]string{
		"output":     "{output}:env",
		"fn{a}:out":  "fn{a}:out:env",
		"x{}y":       "x{}y:env",
		"course-out": "{course-out}:env",
	} {
		got := DefaultStateKey(out)
		if got != want {
			t.Errorf("DefaultStateKey(%q) = %q, want %q", out, got, want)
		}
		if !strings.Contains(out, "{}") && redisconn.KeySlot(got) != redisconn.KeySlot(out) {
			t.Errorf("state key %q slot %d differs from output %q slot %d", got, redisconn.KeySlot(got), out, redisconn.KeySlot(out))
		}
	}
}

func TestEnvNamesHaveFlags(t *testing.T) {
	names := EnvNames()
	if len(names) < 20 {
		t.Fatalf("only %d settings", len(names))
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("duplicate %s", n)
		}
		seen[n] = true
		if FlagName(n) != strings.ToLower(strings.ReplaceAll(n, "_", "-")) {
			t.Errorf("flag for %s", n)
		}
	}
}

// A manifest's poll_period and timeout have the same floor as the settings.
func TestManifestSharesMinPeriod(t *testing.T) {
	if MinPeriod != bundle.MinPeriod {
		t.Fatalf("config.MinPeriod %v, bundle.MinPeriod %v", MinPeriod, bundle.MinPeriod)
	}
}
