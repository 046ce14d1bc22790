// Package config owns eventrt's daemon configuration: the table of settings, each an
// environment variable that is also a command-line flag (flags win), their defaults, their
// parsing and their validation. Parse returns one validated Options or an error naming the
// variable and the value; nothing else in eventrt reads the environment.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/eventrt/eventrt/internal/quote"
)

// Defaults of the settings that have one.
const (
	DefaultRedisHost       = "localhost"
	DefaultRedisPort       = 6379
	DefaultInputKey        = "metrics"
	DefaultOutputKey       = "output"
	DefaultPeriod          = 5 * time.Second
	DefaultHandlerPath     = "/opt/eventrt"
	DefaultHandlerFunction = "handler_module.handler"
	DefaultHandlerTimeout  = time.Second
	DefaultMaxOutputBytes  = 1 << 20
	DefaultHTTPAddr        = ":8080"
	DefaultShutdownTimeout = 10 * time.Second
	DefaultTriggerPrefix   = "eventrt:trigger:"
	DefaultPythonFile      = "/opt/usermodule.py"
	DefaultPythonSpinWait  = 200 * time.Microsecond
	DefaultLeaseTTL        = 10 * time.Second
	// DefaultPatternPartitions and DefaultPatternCacheKeys mirror package pattern's defaults.
	DefaultPatternPartitions = 64
	DefaultPatternCacheKeys  = 10000
	// MinLeaseTTL leaves a renewal (every third of the TTL) time for a Redis round trip.
	MinLeaseTTL = 500 * time.Millisecond
	// MinPeriod is the shortest period or timeout a setting accepts (MONITORING_PERIOD,
	// HANDLER_TIMEOUT, STREAM_CLAIM_IDLE, SHUTDOWN_TIMEOUT): a 1ns poll would keep a core busy,
	// and a deadline shorter than a Redis round trip or a scheduler tick fails every run.
	MinPeriod = 10 * time.Millisecond
	// MaxStreamBatch bounds STREAM_BATCH: a batch is held in memory and committed in one
	// script call.
	MaxStreamBatch = 10000
)

// HANDLER_MEMORY, the byte budget of one run of an expr handler.
const (
	// DefaultHandlerMemory: the shipped Deployment's 128Mi limit holds the daemon's ~20 MB at
	// rest plus twice the budget (the garbage collector lets the heap reach about twice what
	// is live) with room to spare. The same as exprengine.DefaultMaxRunBytes.
	DefaultHandlerMemory = 32 << 20
	// MinHandlerMemory is the smallest accepted (exprengine.MinMaxRunBytes).
	MinHandlerMemory = 1 << 20
)

// DefaultPyfilePath is the custom course runtime's PYFILE_PATH: a Python file without the .py
// suffix, loaded as the module HANDLER_FUNCTION names (handler_module.handler). With nothing
// naming a handler eventrt looks there after DefaultHandlerPath, and then at
// DefaultPythonFile, where the course runtime (lucasmsp/serverless:redis) mounts the handler
// it runs as usermodule.handler.
const DefaultPyfilePath = "/app/pyfile/pyfile"

// Poll modes.
const (
	PollChanged = "changed" // run on a tick only when the value differs from the last one executed
	PollAlways  = "always"  // run on every tick, like the course runtime
)

// Secret is a string that never prints: fmt, slog and JSON see "[redacted]".
type Secret string

func (s Secret) String() string               { return redact(string(s)) }
func (s Secret) GoString() string             { return redact(string(s)) }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(redact(string(s))) }
func (s Secret) MarshalText() ([]byte, error) { return []byte(redact(string(s))), nil }

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Options is the validated daemon configuration.
type Options struct {
	RedisHost     string
	RedisPort     int
	RedisUsername string
	RedisPassword Secret
	RedisDB       int
	// RedisURL overrides the five fields above when set; it may embed a password.
	RedisURL    Secret
	RedisCAFile string

	InputKey  string
	OutputKey string
	// StateKey is the hash holding context.env; bookkeeping lives in StateKey+":meta".
	StateKey       string
	TriggerChannel string
	Period         time.Duration
	PollMode       string
	// NotifyConfig allows eventrt to CONFIG SET notify-keyspace-events.
	NotifyConfig bool

	HandlerPath     string
	HandlerFunction string
	HandlerRuntime  string // "", "expr" or "python"; "" picks by file extension
	HandlerTimeout  time.Duration
	MaxOutputBytes  int
	// HandlerMemory is the byte budget of one run of an expr handler (HANDLER_MEMORY).
	HandlerMemory int
	PythonFile    string
	Python        string
	// PythonMemoryLimit is the Python worker's address-space limit in bytes (0: none).
	PythonMemoryLimit uint64
	// PythonSpinWait is how long eventrt and the Python worker poll for each other's next
	// message before sleeping (0: never).
	PythonSpinWait time.Duration
	ZipURL         string
	ZipSHA256      string
	ZipAllowHTTP   bool
	OutputMetrics  bool
	Reload         bool
	// Lease makes replicas of a key-mode function share one lease, so exactly one runs it;
	// LeaseTTL bounds how long a dead holder blocks the others.
	Lease    bool
	LeaseTTL time.Duration

	// Pattern functions (a glob input key, or INPUT_MODE=pattern).
	// StateTTL expires a key's state when no run committed for that long (0: never).
	StateTTL          time.Duration
	PatternPartitions int
	PatternCacheKeys  int

	// Stream mode (INPUT_MODE=stream, or auto-detected).
	InputMode       string // auto, key or stream
	OutputMode      string // "" (set for key input, xadd for stream input), set, xadd or publish
	OutputMaxLen    int
	StreamGroup     string
	StreamConsumer  string
	StreamStart     string
	StreamDataField string
	StreamBatch     int
	StreamWorkers   int
	StreamClaimIdle time.Duration
	// StreamHeartbeatTTL: a consumer not heartbeating for this long is dead, and its pending
	// entries are taken over by a live one.
	StreamHeartbeatTTL time.Duration
	StreamMaxAttempts  int
	DeadLetterKey      string
	// KeyMaxAttempts is how many runs of one key value may kill the process before the value
	// goes to the dead-letter stream (key mode).
	KeyMaxAttempts int

	HTTPAddr        string
	LogLevel        slog.Level
	LogFormat       string
	ShutdownTimeout time.Duration

	// given records the settings set by the environment or a flag, as opposed to defaulted.
	given map[string]bool
}

// Given reports whether the setting env (an environment variable name) was set in the
// environment or by its flag rather than left to its default: handler discovery looks at the
// course layouts only when nothing names the handler.
func (o Options) Given(env string) bool { return o.given[env] }

// SetGiven marks env as set, for callers (tests) that build Options by hand.
func (o *Options) SetGiven(env string) {
	if o.given == nil {
		o.given = map[string]bool{}
	}
	o.given[env] = true
}

// LogValue lists the settings worth logging at start-up; secrets are left out, and so is the
// handler, which the daemon logs once it has found it (the file and runtime really running).
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("input_key", o.InputKey),
		slog.String("output_key", o.OutputKey),
		slog.String("state_key", o.StateKey),
		slog.String("trigger_channel", o.TriggerChannel),
		slog.Duration("period", o.Period),
		slog.String("poll_mode", o.PollMode),
		slog.Duration("handler_timeout", o.HandlerTimeout),
		slog.Int("handler_memory", o.HandlerMemory),
		slog.Bool("lease", o.Lease),
		slog.Duration("lease_ttl", o.LeaseTTL),
		slog.String("http_addr", o.HTTPAddr),
	)
}

// setting is one row of the configuration table.
type setting struct {
	env   string
	usage string
	def   string
	set   func(o *Options, v string) error
}

func table() []setting {
	return []setting{
		{"REDIS_HOST", "Redis host", DefaultRedisHost, func(o *Options, v string) error { return nonEmpty(&o.RedisHost, v) }},
		{"REDIS_PORT", "Redis port", strconv.Itoa(DefaultRedisPort), func(o *Options, v string) error { return intIn(&o.RedisPort, v, 1, 65535) }},
		{"REDIS_USERNAME", "Redis ACL user", "", func(o *Options, v string) error { o.RedisUsername = v; return nil }},
		{"REDIS_PASSWORD", "Redis password (never logged)", "", func(o *Options, v string) error { o.RedisPassword = Secret(v); return nil }},
		{"REDIS_DB", "Redis database number", "0", func(o *Options, v string) error { return intIn(&o.RedisDB, v, 0, 1<<20) }},
		{"REDIS_URL", "redis:// or rediss:// URL; overrides REDIS_HOST/PORT/USERNAME/PASSWORD/DB", "", setURL},
		{"REDIS_CA_FILE", "PEM CA bundle trusted for rediss:// in addition to the system store", "", func(o *Options, v string) error { o.RedisCAFile = v; return nil }},
		{"REDIS_INPUT_KEY", "key whose changes trigger runs", DefaultInputKey, func(o *Options, v string) error { return nonEmpty(&o.InputKey, v) }},
		{"REDIS_OUTPUT_KEY", "key the JSON result is written to", DefaultOutputKey, func(o *Options, v string) error { return nonEmpty(&o.OutputKey, v) }},
		{"STATE_KEY", "hash holding context.env (default: derived from the output key, in its hash slot)", "", func(o *Options, v string) error { o.StateKey = v; return nil }},
		{"TRIGGER_CHANNEL", "pub/sub channel that triggers a run (default eventrt:trigger:<input key>)", "", func(o *Options, v string) error { o.TriggerChannel = v; return nil }},
		{"MONITORING_PERIOD", "polling fallback period: seconds or a Go duration (500ms)", "5", func(o *Options, v string) error { return period(&o.Period, v) }},
		{"INTERVAL", "alias of MONITORING_PERIOD (course runtime); MONITORING_PERIOD wins", "", func(o *Options, v string) error { return nil }},
		{"POLL_MODE", "changed: a tick runs only a new value; always: every tick runs (course behaviour)", PollChanged, func(o *Options, v string) error {
			return oneOf(&o.PollMode, v, PollChanged, PollAlways)
		}},
		{"NOTIFY_CONFIG", "allow CONFIG SET notify-keyspace-events (true/false)", "true", func(o *Options, v string) error { return boolean(&o.NotifyConfig, v) }},
		{"HANDLER_PATH", "the handler: a program file, a bundle directory or a .zip (expr, or Python modules)", DefaultHandlerPath, func(o *Options, v string) error { return nonEmpty(&o.HandlerPath, v) }},
		{"HANDLER_FUNCTION", "function to run, module.function; its name in logs and metrics too", DefaultHandlerFunction, setFunction},
		{"HANDLER_RUNTIME", "handler engine: expr or python (default: from the handler's files)", "", func(o *Options, v string) error {
			if v == "" {
				o.HandlerRuntime = ""
				return nil
			}
			return oneOf(&o.HandlerRuntime, v, "expr", "python")
		}},
		{"HANDLER_TIMEOUT", "deadline of one execution: seconds or a Go duration", "1s", func(o *Options, v string) error { return period(&o.HandlerTimeout, v) }},
		{"HANDLER_MAX_OUTPUT_BYTES", "largest encoded output (and env) a run may produce", strconv.Itoa(DefaultMaxOutputBytes), func(o *Options, v string) error {
			return intIn(&o.MaxOutputBytes, v, 64, 512<<20)
		}},
		{"HANDLER_MEMORY", "bytes the strings and collections of one run of an expr handler may add up to (suffix Ki, Mi or Gi allowed); Python workers use PYTHON_MEMORY_LIMIT", strconv.Itoa(DefaultHandlerMemory), func(o *Options, v string) error {
			return byteSize(&o.HandlerMemory, v, MinHandlerMemory, 16<<30)
		}},
		{"PYTHON", "interpreter for Python handlers", "python3", func(o *Options, v string) error { return nonEmpty(&o.Python, v) }},
		{"PYTHON_MEMORY_LIMIT", "address-space limit of a Python worker, in bytes (0 = none)", strconv.Itoa(1 << 30), func(o *Options, v string) error {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return errors.New("not a number of bytes")
			}
			o.PythonMemoryLimit = n
			return nil
		}},
		{"PYTHON_SPIN_WAIT", "how long eventrt and a Python worker poll for each other's next message before sleeping (0 = never poll)", DefaultPythonSpinWait.String(), func(o *Options, v string) error {
			if strings.TrimSpace(v) == "0" {
				o.PythonSpinWait = 0
				return nil
			}
			d, err := ParsePeriod(v)
			if err != nil {
				return err
			}
			if d > 10*time.Millisecond {
				return errors.New("must be at most 10ms (it is CPU spent polling)")
			}
			o.PythonSpinWait = d
			return nil
		}},
		{"ZIP_URL", "download the handler bundle (a zip) from this URL at start; replaces HANDLER_PATH", "", func(o *Options, v string) error {
			if v != "" && !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") {
				return errors.New("must be an https:// URL")
			}
			o.ZipURL = v
			return nil
		}},
		{"ZIP_SHA256", "expected SHA-256 (hex) of the ZIP_URL archive; a mismatch stops start-up", "", func(o *Options, v string) error { o.ZipSHA256 = v; return nil }},
		{"ZIP_ALLOW_HTTP", "allow a plain http:// ZIP_URL (true/false)", "false", func(o *Options, v string) error { return boolean(&o.ZipAllowHTTP, v) }},
		{"PYFILE_PATH", "Python handler file, with or without .py (course runtime compatibility)", "", func(o *Options, v string) error { o.PythonFile = v; return nil }},
		{"OUTPUT_METRICS", "export numeric top-level output fields as eventrt_output_value (true/false)", "true", func(o *Options, v string) error { return boolean(&o.OutputMetrics, v) }},
		{"RELOAD", "recompile the handler when its files change (true/false)", "true", func(o *Options, v string) error { return boolean(&o.Reload, v) }},
		{"INPUT_MODE", "auto (a glob input key is a pattern, else TYPE of the input key), key, stream (consumer group) or pattern (every string key matching the glob)", "auto", func(o *Options, v string) error {
			return oneOf(&o.InputMode, v, "auto", "key", "stream", "pattern")
		}},
		{"OUTPUT_MODE", "set, xadd (stream) or publish (channel); default set for key input, xadd for stream input", "", func(o *Options, v string) error {
			if v == "" {
				o.OutputMode = ""
				return nil
			}
			return oneOf(&o.OutputMode, v, "set", "xadd", "publish")
		}},
		{"OUTPUT_MAXLEN", "approximate MAXLEN of an xadd output stream (0 = uncapped: outputs no consumer has read are never trimmed)", "0", func(o *Options, v string) error {
			return intIn(&o.OutputMaxLen, v, 0, 1<<40)
		}},
		{"STREAM_GROUP", "consumer group of a stream input", "eventrt", func(o *Options, v string) error { return nonEmpty(&o.StreamGroup, v) }},
		{"STREAM_CONSUMER", "consumer name in the group (default: host name, the pod name on Kubernetes)", "", func(o *Options, v string) error { o.StreamConsumer = v; return nil }},
		{"STREAM_START", "where a new group starts: 0 (oldest entry) or $ (new entries only)", "0", func(o *Options, v string) error { return oneOf(&o.StreamStart, v, "0", "$") }},
		{"STREAM_DATA_FIELD", "entry field holding a JSON document to use as the input", "data", func(o *Options, v string) error { o.StreamDataField = v; return nil }},
		{"STREAM_BATCH", "entries read and committed together", "256", func(o *Options, v string) error { return intIn(&o.StreamBatch, v, 1, MaxStreamBatch) }},
		{"STREAM_WORKERS", "goroutines running a batch of a handler that does not use state (0: GOMAXPROCS - 1, at least 1)", "0", func(o *Options, v string) error { return intIn(&o.StreamWorkers, v, 0, 1024) }},
		{"STREAM_CLAIM_IDLE", "reclaim entries pending this long from any consumer (failed entries are retried so; a dead consumer's are taken over sooner, see STREAM_HEARTBEAT_TTL)", "30s", func(o *Options, v string) error { return period(&o.StreamClaimIdle, v) }},
		{"STREAM_HEARTBEAT_TTL", "a stream consumer that stops heartbeating for this long is dead: a live consumer takes over its pending entries", "5s", func(o *Options, v string) error {
			if err := period(&o.StreamHeartbeatTTL, v); err != nil {
				return err
			}
			if o.StreamHeartbeatTTL < MinLeaseTTL {
				return fmt.Errorf("must be at least %v", MinLeaseTTL)
			}
			return nil
		}},
		{"STREAM_MAX_ATTEMPTS", "failed deliveries before an entry goes to the dead-letter stream", "5", func(o *Options, v string) error { return intIn(&o.StreamMaxAttempts, v, 1, 1000) }},
		{"DEAD_LETTER_KEY", "dead-letter stream (default: {<input stream>}:dead in stream mode, <STATE_KEY>:dead in key mode: the slot of the keys committed with it)", "", func(o *Options, v string) error { o.DeadLetterKey = v; return nil }},
		{"KEY_MAX_ATTEMPTS", "key and pattern mode: runs of one value that may end with the process dying (OOM, crash) before the value goes to the dead-letter stream; a run that fails cleanly is not counted", "3", func(o *Options, v string) error {
			return intIn(&o.KeyMaxAttempts, v, 1, 1000)
		}},
		{"LEASE", "key mode: replicas share a lease in Redis so exactly one runs each function (true/false)", "true", func(o *Options, v string) error { return boolean(&o.Lease, v) }},
		{"LEASE_TTL", "lease time: a replica that dies is replaced within it (renewed every third of it)", DefaultLeaseTTL.String(), func(o *Options, v string) error {
			if err := period(&o.LeaseTTL, v); err != nil {
				return err
			}
			if o.LeaseTTL < MinLeaseTTL {
				return fmt.Errorf("must be at least %v", MinLeaseTTL)
			}
			return nil
		}},
		{"STATE_TTL", "pattern functions: expire a key's state when no run committed for that long (0 = keep it)", "0", func(o *Options, v string) error {
			if strings.TrimSpace(v) == "0" {
				o.StateTTL = 0
				return nil
			}
			return period(&o.StateTTL, v)
		}},
		{"PATTERN_PARTITIONS", "pattern functions: partitions of the key space shared among replicas (the most replicas that share the work); the same on every replica", strconv.Itoa(DefaultPatternPartitions), func(o *Options, v string) error {
			return intIn(&o.PatternPartitions, v, 1, 16384)
		}},
		{"PATTERN_CACHE_KEYS", "pattern functions: keys whose state the process keeps in memory (others are read back from Redis)", strconv.Itoa(DefaultPatternCacheKeys), func(o *Options, v string) error {
			return intIn(&o.PatternCacheKeys, v, 1, 1<<24)
		}},
		{"HTTP_ADDR", "address serving /metrics, /healthz, /readyz", DefaultHTTPAddr, setAddr},
		{"LOG_LEVEL", "debug, info, warn or error", "info", setLevel},
		{"LOG_FORMAT", "text (tint; colour only on a terminal) or json", "text", func(o *Options, v string) error { return oneOf(&o.LogFormat, v, "text", "json") }},
		{"SHUTDOWN_TIMEOUT", "bound on a graceful stop after SIGTERM", "10s", func(o *Options, v string) error { return period(&o.ShutdownTimeout, v) }},
	}
}

// EnvNames lists every environment variable eventrt reads, in table order.
func EnvNames() []string {
	t := table()
	names := make([]string, len(t))
	for i, s := range t {
		names[i] = s.env
	}
	return names
}

// FlagName is the command-line flag for an environment variable: REDIS_HOST -> redis-host.
func FlagName(env string) string { return strings.ToLower(strings.ReplaceAll(env, "_", "-")) }

// ErrHelp is returned by Parse when -h or --help was asked for; usage has been printed.
var ErrHelp = flag.ErrHelp

// InvalidError names a setting and the value it refused.
type InvalidError struct {
	Name   string // the environment variable (or flag) name
	Value  string // the refused value; "[redacted]" for secrets
	Reason error
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid %s=%s: %v", e.Name, quote.Value(e.Value), e.Reason)
}
func (e *InvalidError) Unwrap() error { return e.Reason }

// IsInvalid reports whether err is a refused setting.
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}

// Parse builds Options from the environment (getenv, usually os.Getenv) and args (flags,
// which win). Usage goes to usage when -h is given.
func Parse(args []string, getenv func(string) string, usage io.Writer) (Options, error) {
	var o Options
	rows := table()
	fs := flag.NewFlagSet("eventrt", flag.ContinueOnError)
	fs.SetOutput(usage)
	flagVals := make([]*string, len(rows))
	for i, r := range rows {
		flagVals[i] = fs.String(FlagName(r.env), "", fmt.Sprintf("%s (env %s, default %q)", r.usage, r.env, r.def))
	}
	fs.Usage = func() {
		fmt.Fprintf(usage, "Usage: eventrt [flags]            run the daemon\n"+
			"       eventrt check|eval|test|version|healthcheck ...  (see eventrt help)\n\n"+
			"Every flag defaults from the environment variable named beside it; flags win.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %s (subcommands: check, eval, test, version, healthcheck)", quote.Value(fs.Arg(0)))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	// INTERVAL is the course runtime's name for the period; it applies when MONITORING_PERIOD
	// is not set anywhere.
	lookup := func(env string) (string, bool) {
		if given[FlagName(env)] {
			for i, r := range rows {
				if r.env == env {
					return *flagVals[i], true
				}
			}
		}
		if v := getenv(env); v != "" {
			return v, true
		}
		return "", false
	}
	for _, r := range rows {
		v, ok := lookup(r.env)
		name := r.env
		if given[FlagName(r.env)] {
			name = "--" + FlagName(r.env)
		}
		if r.env == "MONITORING_PERIOD" && !ok {
			if iv, iok := lookup("INTERVAL"); iok {
				v, ok, name = iv, true, "INTERVAL"
			}
		}
		if ok {
			o.SetGiven(r.env)
		} else {
			v = r.def
		}
		if err := r.set(&o, v); err != nil {
			shown := v
			if r.env == "REDIS_PASSWORD" || r.env == "REDIS_URL" || r.env == "ZIP_URL" {
				shown = redactURL(v)
			}
			return o, &InvalidError{Name: name, Value: shown, Reason: err}
		}
	}
	o.applyDerived()
	return o, o.Validate()
}

func (o *Options) applyDerived() {
	if o.TriggerChannel == "" {
		o.TriggerChannel = DefaultTriggerPrefix + o.InputKey
	}
	if o.StateKey == "" {
		o.StateKey = DefaultStateKey(o.OutputKey)
	}
}

// DefaultStateKey derives the state hash from the output key so that both land in one hash
// slot (a Redis Cluster requirement for the atomic commit): "output" gives "{output}:env". A
// key that has braces of its own keeps them (its hash tag, if any, then carries over); one
// whose braces make no tag cannot share a slot with a derived key, which start-up reports on
// a cluster.
func DefaultStateKey(outputKey string) string {
	if strings.ContainsAny(outputKey, "{}") {
		return outputKey + ":env"
	}
	return "{" + outputKey + "}:env"
}

// Validate checks the relations between settings.
func (o Options) Validate() error {
	if o.InputKey == o.OutputKey {
		return &InvalidError{Name: "REDIS_OUTPUT_KEY", Value: o.OutputKey, Reason: errors.New("must differ from REDIS_INPUT_KEY (a run would trigger itself)")}
	}
	if o.StateKey == o.InputKey || o.StateKey == o.OutputKey {
		return &InvalidError{Name: "STATE_KEY", Value: o.StateKey, Reason: errors.New("must differ from the input and output keys")}
	}
	if o.HandlerTimeout > time.Hour {
		return &InvalidError{Name: "HANDLER_TIMEOUT", Value: o.HandlerTimeout.String(), Reason: errors.New("must be at most 1h")}
	}
	return nil
}

func nonEmpty(dst *string, v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("must not be empty")
	}
	*dst = v
	return nil
}

func intIn(dst *int, v string, lo, hi int) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return errors.New("not an integer")
	}
	if n < lo || n > hi {
		return fmt.Errorf("must be between %d and %d", lo, hi)
	}
	*dst = n
	return nil
}

// byteSize parses a number of bytes, optionally with a binary suffix (Ki, Mi, Gi), within
// [lo, hi].
func byteSize(dst *int, v string, lo, hi int) error {
	v = strings.TrimSpace(v)
	unit := 1
	for _, u := range []struct {
		suffix string
		n      int
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}} {
		if strings.HasSuffix(v, u.suffix) {
			v, unit = strings.TrimSuffix(v, u.suffix), u.n
			break
		}
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return errors.New("not a number of bytes (e.g. 33554432 or 32Mi)")
	}
	if n > hi/unit || n*unit < lo {
		return fmt.Errorf("must be between %d (%dMi) and %d (%dGi) bytes", lo, lo>>20, hi, hi>>30)
	}
	*dst = n * unit
	return nil
}

func boolean(dst *bool, v string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return errors.New("not a boolean (true or false)")
	}
	*dst = b
	return nil
}

func oneOf(dst *string, v string, allowed ...string) error {
	v = strings.ToLower(strings.TrimSpace(v))
	for _, a := range allowed {
		if v == a {
			*dst = v
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
}

// ParsePeriod reads seconds ("5", "0.5") or a Go duration ("500ms"); it must be positive.
// Settings also require at least MinPeriod (see period).
func ParsePeriod(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	var d time.Duration
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f > float64(1<<62)/float64(time.Second) {
			return 0, errors.New("too large")
		}
		d = time.Duration(f * float64(time.Second))
	} else if pd, err := time.ParseDuration(v); err == nil {
		d = pd
	} else {
		return 0, errors.New("not a number of seconds or a duration such as 500ms")
	}
	if d <= 0 {
		return 0, errors.New("must be positive")
	}
	return d, nil
}

// period reads a period or timeout of at least MinPeriod.
func period(dst *time.Duration, v string) error {
	d, err := ParsePeriod(v)
	if err != nil {
		return err
	}
	if d < MinPeriod {
		return fmt.Errorf("must be at least %v", MinPeriod)
	}
	*dst = d
	return nil
}

func setFunction(o *Options, v string) error {
	mod, fn, ok := strings.Cut(v, ".")
	if !ok || mod == "" || fn == "" {
		return errors.New("must be module.function")
	}
	o.HandlerFunction = v
	return nil
}

func setAddr(o *Options, v string) error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return errors.New("must be host:port or :port")
	}
	o.HTTPAddr = v
	return nil
}

func setLevel(o *Options, v string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		return errors.New("must be debug, info, warn or error")
	}
	o.LogLevel = l
	return nil
}

func setURL(o *Options, v string) error {
	if v == "" {
		o.RedisURL = ""
		return nil
	}
	if !strings.HasPrefix(v, "redis://") && !strings.HasPrefix(v, "rediss://") && !strings.HasPrefix(v, "unix://") {
		return errors.New("must start with redis://, rediss:// or unix://")
	}
	o.RedisURL = Secret(v)
	return nil
}

// redactURL hides the password of a URL (or the whole value when it is not a URL).
func redactURL(v string) string {
	scheme, rest, ok := strings.Cut(v, "://")
	if !ok {
		return redact(v)
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		user, _, hasPass := strings.Cut(rest[:at], ":")
		if hasPass {
			return scheme + "://" + user + ":[redacted]@" + rest[at+1:]
		}
	}
	return v
}

// Getenv is os.Getenv, named so callers can pass the process environment explicitly.
func Getenv(k string) string { return os.Getenv(k) }
