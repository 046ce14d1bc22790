package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Manifest is a parsed and validated eventrt.yaml: the functions one process runs. Empty
// fields mean "the runtime's default", the same default the environment variable of the
// single-function configuration has.
type Manifest struct {
	// Version is the format version; 1 (the default) is the only one.
	Version   int            `json:"version,omitempty"`
	Functions []FunctionSpec `json:"functions"`
}

// InputMode says how a function reads its input key.
type InputMode string

const (
	InputAuto   InputMode = ""       // detected with TYPE at start
	InputKey    InputMode = "key"    // a string (or hash) key, run when it changes
	InputStream InputMode = "stream" // a stream read through a consumer group
	// InputPattern: every string key matching the input key, a glob, each run with its own
	// state (package pattern).
	InputPattern InputMode = "pattern"
)

// OutputMode says how a function writes its output.
type OutputMode string

const (
	OutputDefault OutputMode = ""        // set for key input, xadd for stream input
	OutputSet     OutputMode = "set"     // SET output_key
	OutputXAdd    OutputMode = "xadd"    // XADD to the stream output_key
	OutputPublish OutputMode = "publish" // PUBLISH on the channel output_key
)

// PollMode says when a poll tick runs the function.
type PollMode string

const (
	PollDefault PollMode = ""        // changed
	PollChanged PollMode = "changed" // only when the value differs from the last one executed
	PollAlways  PollMode = "always"  // on every tick, as the course runtime did
)

// FunctionSpec is one function of a manifest.
type FunctionSpec struct {
	// Name is the function to run, "module.function"; required and unique.
	Name string `json:"name"`
	// InputKey is the key or stream that triggers the function; required.
	InputKey  string    `json:"input_key"`
	InputMode InputMode `json:"input_mode,omitempty"`
	// OutputKey is the key, stream or channel written; required.
	OutputKey  string     `json:"output_key"`
	OutputMode OutputMode `json:"output_mode,omitempty"`
	// StateKey is the hash holding context.env; derived from OutputKey when empty. Two
	// functions cannot share one.
	StateKey string `json:"state_key,omitempty"`
	// TriggerChannel is the pub/sub channel that triggers a run (key input only).
	TriggerChannel string `json:"trigger_channel,omitempty"`
	// PollPeriod is the polling fallback period (key input only); seconds or a Go duration.
	PollPeriod Duration `json:"poll_period,omitempty"`
	PollMode   PollMode `json:"poll_mode,omitempty"`
	// Timeout is the deadline of one execution; seconds or a Go duration.
	Timeout Duration `json:"timeout,omitempty"`
	// Stream configures stream input.
	Stream *StreamSpec `json:"stream,omitempty"`
}

// StreamSpec configures the consumer group of a stream input. Empty fields take the
// runtime's defaults (group "eventrt", consumer = host name, data field "data").
type StreamSpec struct {
	Group     string `json:"group,omitempty"`
	Consumer  string `json:"consumer,omitempty"`
	DataField string `json:"data_field,omitempty"`
}

// MinPeriod is the shortest poll_period or timeout a manifest accepts (0 means unset): the
// floor of the daemon's own settings (config.MinPeriod), for the same reasons.
const MinPeriod = 10 * time.Millisecond

// Duration is a time.Duration written in YAML as a Go duration ("500ms", "1m") or as a
// number of seconds (5, 0.5, "5"), like MONITORING_PERIOD.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalJSON accepts a number of seconds or a string holding either form.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if bytes.HasPrefix(b, []byte(`"`)) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else {
		s = string(b)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d *Duration) set(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return d.UnmarshalJSON(raw)
}

// MarshalJSON writes the Go duration form.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// ParseDuration reads a Go duration ("500ms") or a number of seconds ("5", "0.5").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || f > float64(1<<63-1)/float64(time.Second) {
			return 0, fmt.Errorf("%q: out of range", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want seconds (5, 0.5) or a Go duration (500ms, 1m)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q: must not be negative", s)
	}
	return v, nil
}

// ParseManifest parses and validates a manifest. Unknown fields are errors; every error
// names the file, the function and the field, and all of them are reported at once.
func ParseManifest(name string, data []byte) (*Manifest, error) {
	js, err := yamlToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", name, err, ErrManifest)
	}
	var top struct {
		Version   int               `json:"version"`
		Functions []json.RawMessage `json:"functions"`
	}
	if err := strictJSON(js, &top); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", name, err, ErrManifest)
	}
	if top.Version != 0 && top.Version != 1 {
		return nil, fmt.Errorf("%s: version %d: only version 1 exists: %w", name, top.Version, ErrManifest)
	}
	if len(top.Functions) == 0 {
		return nil, fmt.Errorf("%s: functions: the list is empty; add at least one function: %w", name, ErrManifest)
	}
	m := &Manifest{Version: 1}
	var errs []error
	fail := func(i int, fn, field, format string, args ...any) {
		who := fmt.Sprintf("functions[%d]", i)
		if fn != "" {
			who = fmt.Sprintf("function %q", fn)
		}
		if field != "" {
			field += ": "
		}
		errs = append(errs, fmt.Errorf("%s: %s: %s%s: %w", name, who, field, fmt.Sprintf(format, args...), ErrManifest))
	}
	names := map[string]bool{}
	stateKeys := map[string]string{}
	groups := map[string]string{}
	for i, raw := range top.Functions {
		var peek struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(raw, &peek) // only to name the function in errors
		// Durations arrive raw so that a bad one is reported with its field name, which
		// encoding/json does not add to an Unmarshaler's error.
		var w struct {
			FunctionSpec
			PollPeriod json.RawMessage `json:"poll_period,omitempty"`
			Timeout    json.RawMessage `json:"timeout,omitempty"`
		}
		if err := strictJSON(raw, &w); err != nil {
			fail(i, peek.Name, "", "%v", err)
			continue
		}
		f := w.FunctionSpec
		if err := f.PollPeriod.set(w.PollPeriod); err != nil {
			fail(i, f.Name, "poll_period", "%v", err)
		} else if f.PollPeriod != 0 && f.PollPeriod.D() < MinPeriod {
			fail(i, f.Name, "poll_period", "%v: must be at least %v", f.PollPeriod.D(), MinPeriod)
		}
		if err := f.Timeout.set(w.Timeout); err != nil {
			fail(i, f.Name, "timeout", "%v", err)
		} else if f.Timeout != 0 && f.Timeout.D() < MinPeriod {
			fail(i, f.Name, "timeout", "%v: must be at least %v", f.Timeout.D(), MinPeriod)
		}
		switch {
		case f.Name == "":
			fail(i, "", "name", "required (module.function)")
		case !validFunctionName(f.Name):
			fail(i, f.Name, "name", "want module.function, each of letters, digits, '_' and '-'")
		case names[f.Name]:
			fail(i, f.Name, "name", "listed twice")
		}
		names[f.Name] = true
		if f.InputKey == "" {
			fail(i, f.Name, "input_key", "required")
		}
		if f.OutputKey == "" {
			fail(i, f.Name, "output_key", "required")
		}
		switch f.InputMode {
		case InputAuto, InputKey, InputStream, InputPattern:
		default:
			fail(i, f.Name, "input_mode", "%q is not one of key, stream, pattern (or omit it to detect)", f.InputMode)
		}
		switch f.OutputMode {
		case OutputDefault, OutputSet, OutputXAdd, OutputPublish:
		default:
			fail(i, f.Name, "output_mode", "%q is not one of set, xadd, publish", f.OutputMode)
		}
		switch f.PollMode {
		case PollDefault, PollChanged, PollAlways:
		default:
			fail(i, f.Name, "poll_mode", "%q is not one of changed, always", f.PollMode)
		}
		if f.InputMode == InputStream {
			if f.PollPeriod != 0 || f.PollMode != PollDefault {
				fail(i, f.Name, "poll_period", "polling applies to key input, not to a stream")
			}
			if f.TriggerChannel != "" {
				fail(i, f.Name, "trigger_channel", "applies to key input, not to a stream")
			}
		}
		if f.Stream != nil && f.InputMode == InputKey {
			fail(i, f.Name, "stream", "set, but input_mode is key")
		}
		if f.StateKey != "" {
			if prev, ok := stateKeys[f.StateKey]; ok {
				fail(i, f.Name, "state_key", "%q is also the state key of %s; each function needs its own", f.StateKey, prev)
			}
			stateKeys[f.StateKey] = f.Name
		}
		if f.InputMode == InputStream {
			group := ""
			if f.Stream != nil {
				group = f.Stream.Group
			}
			k := f.InputKey + "\x00" + group
			if prev, ok := groups[k]; ok {
				fail(i, f.Name, "stream.group", "%s reads stream %q with the same consumer group, so each would see only part of it; give one a group of its own",
					prev, f.InputKey)
			}
			groups[k] = f.Name
		}
		m.Functions = append(m.Functions, f)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return m, nil
}

func validFunctionName(s string) bool {
	mod, fn, ok := strings.Cut(s, ".")
	return ok && nameRE.MatchString(mod) && nameRE.MatchString(fn)
}

// strictJSON decodes one JSON document, refusing unknown fields and trailing data.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return cleanJSONError(err)
	}
	if dec.More() {
		return errors.New("trailing data after the document")
	}
	return nil
}

// cleanJSONError rewords encoding/json's messages, which speak of Go types, in YAML terms.
func cleanJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := strings.TrimPrefix(te.Field, "FunctionSpec.")
		if field == "" {
			field = "document"
		}
		return fmt.Errorf("%s: got %s, want %s", field, yamlValue(te.Value), yamlKind(te.Type.Kind().String()))
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	return errors.New(msg)
}

func yamlValue(jsonKind string) string {
	if strings.HasPrefix(jsonKind, "number") {
		return "a number"
	}
	switch jsonKind {
	case "array":
		return "a list"
	case "object":
		return "a mapping"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	}
	return jsonKind
}

func yamlKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int64", "float64":
		return "a number"
	case "slice":
		return "a list"
	case "struct", "map":
		return "a mapping"
	case "bool":
		return "true or false"
	}
	return goKind
}
