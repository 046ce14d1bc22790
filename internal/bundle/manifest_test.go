package bundle

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const twoFunctions = `
version: 1
functions:
  - name: metrics.classic
    input_key: metrics
    output_key: out:classic
    state_key: state:classic
    trigger_channel: trigger:classic
    poll_period: 5
    poll_mode: always
    timeout: 250ms
  - name: metrics.stateless
    input_key: metrics-stream
    input_mode: stream
    output_key: out:stateless
    output_mode: xadd
    timeout: "0.5"
    stream:
      group: g1
      consumer: c1
      data_field: payload
`

func TestParseManifest(t *testing.T) {
	m, err := ParseManifest("eventrt.yaml", []byte(twoFunctions))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Functions) != 2 || m.Version != 1 {
		t.Fatalf("%+v", m)
	}
	c, s := m.Functions[0], m.Functions[1]
	if c.Name != "metrics.classic" || c.InputMode != InputAuto || c.PollPeriod.D() != 5*time.Second ||
		c.PollMode != PollAlways || c.Timeout.D() != 250*time.Millisecond || c.StateKey != "state:classic" ||
		c.TriggerChannel != "trigger:classic" || c.Stream != nil {
		t.Fatalf("classic %+v", c)
	}
	if s.InputMode != InputStream || s.OutputMode != OutputXAdd || s.Timeout.D() != 500*time.Millisecond ||
		s.Stream == nil || *s.Stream != (StreamSpec{Group: "g1", Consumer: "c1", DataField: "payload"}) {
		t.Fatalf("stateless %+v", s)
	}
}

func TestManifestErrors(t *testing.T) {
	base := "functions:\n  - name: m.f\n    input_key: in\n    output_key: out\n"
	for name, tc := range map[string]struct {
		yaml string
		want []string
	}{
		"unknown field":     {base + "    inptu_mode: key\n", []string{`function "m.f"`, `unknown field "inptu_mode"`}},
		"unknown top field": {"functoins: []\n", []string{`unknown field "functoins"`}},
		"empty":             {"functions: []\n", []string{"the list is empty"}},
		"bad version":       {"version: 2\n" + base, []string{"version 2"}},
		"not yaml":          {"functions: [\n", []string{"eventrt.yaml: "}},
		"wrong type":        {"functions:\n  - name: m.f\n    input_key: [a]\n    output_key: out\n", []string{`function "m.f"`, "input_key", "list", "want a string"}},
		"missing fields": {"functions:\n  - name: m.f\n", []string{
			`function "m.f": input_key: required`, `function "m.f": output_key: required`}},
		"no name":   {"functions:\n  - input_key: in\n    output_key: out\n", []string{"functions[0]: name: required"}},
		"bad name":  {"functions:\n  - name: justone\n    input_key: in\n    output_key: out\n", []string{`function "justone": name: want module.function`}},
		"duplicate": {base + "  - name: m.f\n    input_key: in2\n    output_key: out2\n", []string{`function "m.f": name: listed twice`}},
		"enums": {base + "    input_mode: queue\n    output_mode: lpush\n    poll_mode: sometimes\n", []string{
			`input_mode: "queue" is not one of`, `output_mode: "lpush" is not one of`, `poll_mode: "sometimes" is not one of`}},
		"bad duration":      {base + "    poll_period: soon\n    timeout: -1s\n", []string{`poll_period: "soon": want seconds`, `timeout: "-1s": must not be negative`}},
		"negative seconds":  {base + "    timeout: -2\n", []string{`timeout: "-2": out of range`}},
		"tiny periods":      {base + "    poll_period: 1ns\n    timeout: 0.001\n", []string{"poll_period: 1ns: must be at least 10ms", "timeout: 1ms: must be at least 10ms"}},
		"stream on key":     {base + "    input_mode: key\n    stream:\n      group: g\n", []string{"stream: set, but input_mode is key"}},
		"poll on stream":    {base + "    input_mode: stream\n    poll_period: 1s\n", []string{"poll_period: polling applies to key input"}},
		"channel on stream": {base + "    input_mode: stream\n    trigger_channel: c\n", []string{"trigger_channel: applies to key input"}},
		"shared state key": {
			"functions:\n  - {name: m.a, input_key: i, output_key: o1, state_key: s}\n  - {name: m.b, input_key: i, output_key: o2, state_key: s}\n",
			[]string{`function "m.b": state_key: "s" is also the state key of m.a`}},
		"shared group": {
			"functions:\n  - {name: m.a, input_key: st, input_mode: stream, output_key: o1}\n  - {name: m.b, input_key: st, input_mode: stream, output_key: o2}\n",
			[]string{`function "m.b": stream.group: m.a reads stream "st" with the same consumer group`}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseManifest("eventrt.yaml", []byte(tc.yaml))
			if !IsManifest(err) {
				t.Fatalf("want ErrManifest, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestManifestNamesUnknownFunction(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{
		"metrics/classic.expr": "1",
		"eventrt.yaml":         "functions:\n  - {name: metrics.clasic, input_key: i, output_key: o}\n",
	})
	_, err := load(t, Source{Path: dir})
	if !IsManifest(err) || !strings.Contains(err.Error(), `"metrics.clasic" is not in the bundle (it has: metrics.classic)`) {
		t.Fatalf("got %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"5": 5 * time.Second, "0.5": 500 * time.Millisecond, "1m30s": 90 * time.Second, " 2s ": 2 * time.Second} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1e300"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepted", in)
		}
	}
}

const suiteYAML = `
tolerance: 0.001
cases:
  - name: first run
    input: {a: 1}
    env: {count: 2}
    context: {trigger: poll, last_execution: "2026-11-25T16:40:00Z"}
    output: {b: 2}
    env_after: {count: 3}
  - name: from a file
    input_file: testdata/sample.json
    output: null
    tolerance: 0
  - name: not json
    input_raw: "{oops"
    error: decode
`

func TestParseTestSuite(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{
		"m/f.expr":               "input",
		"m/f.test.yaml":          suiteYAML,
		"m/testdata/sample.json": `{"a": 7}`,
	})
	b := mustLoad(t, Source{Path: dir})
	f, _ := b.Function("m.f")
	s, err := b.Tests(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Cases) != 3 || s.File != "m/f.test.yaml" {
		t.Fatalf("%+v", s)
	}
	c0, c1, c2 := &s.Cases[0], &s.Cases[1], &s.Cases[2]
	if string(c0.InputBytes()) != `{"a":1}` || string(c0.Env["count"]) != "2" || c0.Context.Trigger != "poll" ||
		string(c0.Output) != `{"b":2}` || string(c0.EnvAfter) != `{"count":3}` {
		t.Fatalf("case 0 %+v", c0)
	}
	if string(c1.InputBytes()) != `{"a": 7}` || string(c1.Output) != "null" || c1.EnvAfter != nil {
		t.Fatalf("case 1 %+v", c1)
	}
	if string(c2.InputBytes()) != "{oops" || c2.Error != "decode" {
		t.Fatalf("case 2 %+v", c2)
	}
	if s.ToleranceFor(c0) != 0.001 || s.ToleranceFor(c1) != 0 {
		t.Fatalf("tolerances %v %v", s.ToleranceFor(c0), s.ToleranceFor(c1))
	}
	if (&TestSuite{}).ToleranceFor(c0) != DefaultTolerance {
		t.Fatal("default tolerance")
	}
}

func TestTestSuiteErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		yaml string
		want string
	}{
		"unknown field":    {"cases:\n  - name: a\n    input: 1\n    ouput: 2\n", `case "a": unknown field "ouput"`},
		"two inputs":       {"cases:\n  - name: a\n    input: 1\n    input_raw: x\n    output: 1\n", `case "a": set exactly one of input`},
		"no input":         {"cases:\n  - name: a\n    output: 1\n", `case "a": set exactly one of input`},
		"nothing checked":  {"cases:\n  - name: a\n    input: 1\n", `case "a": nothing to check`},
		"error and output": {"cases:\n  - name: a\n    input: 1\n    error: x\n    output: 1\n", "cannot be checked too"},
		"no name":          {"cases:\n  - input: 1\n    output: 1\n", "cases[0]: name: required"},
		"duplicate":        {"cases:\n  - {name: a, input: 1, output: 1}\n  - {name: a, input: 1, output: 1}\n", `case "a": name: listed twice`},
		"bad trigger":      {"cases:\n  - {name: a, input: 1, output: 1, context: {trigger: cron}}\n", `context: trigger "cron" is not one of`},
		"bad time":         {"cases:\n  - {name: a, input: 1, output: 1, context: {last_execution: yesterday}}\n", "want RFC 3339"},
		"env_after list":   {"cases:\n  - {name: a, input: 1, env_after: [1]}\n", "env_after: want a mapping"},
		"empty":            {"cases: []\n", "the list is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseTestSuite("m/f.test.yaml", []byte(tc.yaml))
			if !IsTestFile(err) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "m/f.test.yaml") {
				t.Fatalf("want a test-file error containing %q, got %v", tc.want, err)
			}
		})
	}
	dir := writeTree(t, t.TempDir(), map[string]string{
		"m/f.expr":      "input",
		"m/f.test.yaml": "cases:\n  - {name: a, input_file: missing.json, output: 1}\n",
	})
	b := mustLoad(t, Source{Path: dir})
	f, _ := b.Function("m.f")
	if _, err := b.Tests(f); !errors.Is(err, ErrTestFile) || !strings.Contains(err.Error(), "m/missing.json is not in the bundle") {
		t.Fatalf("missing input_file: %v", err)
	}
}

// YAML 1.1 reads the key n as false; a test case {n: 2} would silently expect {"false": 2}.
func TestYAMLBooleanKeysRefused(t *testing.T) {
	_, err := ParseTestSuite("t.test.yaml", []byte("cases:\n  - name: a\n    input: 1\n    output: {n: 2}\n"))
	if !IsTestFile(err) || !strings.Contains(err.Error(), `in .cases[0].output, a key reads as false`) {
		t.Fatalf("got %v", err)
	}
	if _, err := ParseTestSuite("t.test.yaml", []byte("cases:\n  - name: a\n    input: 1\n    output: {\"n\": 2}\n")); err != nil {
		t.Fatalf("quoted key refused: %v", err)
	}
	_, err = ParseManifest("eventrt.yaml", []byte("on: 1\nfunctions: []\n"))
	if !IsManifest(err) || !strings.Contains(err.Error(), "in the top level, a key reads as true") {
		t.Fatalf("got %v", err)
	}
}
