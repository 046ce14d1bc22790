package main

import (
	"cmp"
	"fmt"
	"time"

	"github.com/eventrt/eventrt/internal/bundle"
	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/pattern"
)

// function is the resolved configuration of one function the daemon runs: from the
// environment for a single function, or from the bundle's manifest (whose empty fields take
// the environment's values).
type function struct {
	Name       string
	InputKey   string
	OutputKey  string
	StateKey   string
	Channel    string
	Period     time.Duration
	PollAlways bool
	Timeout    time.Duration
	InputMode  bundle.InputMode
	OutputMode bundle.OutputMode
	Stream     bundle.StreamSpec
}

// functions lists what the daemon runs. Without a manifest it is the one function the
// environment describes, called name.
func functions(o config.Options, b *bundle.Bundle, name string) []function {
	streamDefaults := bundle.StreamSpec{Group: o.StreamGroup, Consumer: o.StreamConsumer, DataField: o.StreamDataField}
	if b == nil || b.Manifest == nil {
		mode := bundle.InputAuto
		if o.InputMode != "auto" {
			mode = bundle.InputMode(o.InputMode)
		} else if pattern.IsGlob(o.InputKey) {
			mode = bundle.InputPattern
		}
		return []function{{
			Name: name, InputKey: o.InputKey, OutputKey: o.OutputKey, StateKey: o.StateKey,
			Channel: o.TriggerChannel, Period: o.Period, PollAlways: o.PollMode == config.PollAlways,
			Timeout: o.HandlerTimeout, InputMode: mode, OutputMode: bundle.OutputMode(o.OutputMode),
			Stream: streamDefaults,
		}}
	}
	fns := make([]function, 0, len(b.Manifest.Functions))
	for _, s := range b.Manifest.Functions {
		f := function{
			Name: s.Name, InputKey: s.InputKey, OutputKey: s.OutputKey,
			StateKey:   cmp.Or(s.StateKey, config.DefaultStateKey(s.OutputKey)),
			Channel:    cmp.Or(s.TriggerChannel, config.DefaultTriggerPrefix+s.InputKey),
			Period:     cmp.Or(s.PollPeriod.D(), o.Period),
			PollAlways: s.PollMode == bundle.PollAlways || (s.PollMode == bundle.PollDefault && o.PollMode == config.PollAlways),
			Timeout:    cmp.Or(s.Timeout.D(), o.HandlerTimeout),
			InputMode:  cmp.Or(s.InputMode, globMode(s.InputKey)),
			OutputMode: s.OutputMode,
			Stream:     streamDefaults,
		}
		if s.Stream != nil {
			f.Stream.Group = cmp.Or(s.Stream.Group, f.Stream.Group)
			f.Stream.Consumer = cmp.Or(s.Stream.Consumer, f.Stream.Consumer)
			f.Stream.DataField = cmp.Or(s.Stream.DataField, f.Stream.DataField)
		}
		fns = append(fns, f)
	}
	return fns
}

// globMode is the input mode of a manifest function that names none: pattern for a glob.
func globMode(key string) bundle.InputMode {
	if pattern.IsGlob(key) {
		return bundle.InputPattern
	}
	return bundle.InputAuto
}

// batches reports whether f pipelines many commands at once: a stream consumer or a pattern
// function (an auto-detected input may still turn out to be a stream when it starts).
func (f function) batches() bool {
	return f.InputMode == bundle.InputStream || f.isPattern()
}

// check refuses configurations that cannot work, before anything connects.
func (f function) check() error {
	if f.isPattern() {
		_, err := f.patternLayout()
		return err
	}
	if f.InputMode == bundle.InputKey && f.OutputMode != bundle.OutputDefault && f.OutputMode != bundle.OutputSet {
		return fmt.Errorf("function %s: output_mode %q needs stream input (key input writes with SET)", f.Name, f.OutputMode)
	}
	if f.InputKey == f.OutputKey || f.StateKey == f.InputKey || f.StateKey == f.OutputKey {
		return fmt.Errorf("function %s: input key %q, output key %q and state key %q must all differ", f.Name, f.InputKey, f.OutputKey, f.StateKey)
	}
	return nil
}
