package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// streams measures throughput over pre-filled streams: the reference loop, then eventrt's
// stream mode with the stateless mapping, the stateful classic handler, and the classic handler
// in Python.
func (s *session) streams(ctx context.Context) {
	n := s.o.StreamEntries
	const group = "eventrt"
	eventrtStream := func(handler string, settings ...string) func(in, out string) (*child, error) {
		return func(in, out string) (*child, error) {
			return s.startEventrt(ctx, "eventrt ("+strings.TrimPrefix(handler, "examples/")+", stream mode)", s.o.Eventrt, false, append([]string{
				"REDIS_INPUT_KEY=" + in, "REDIS_OUTPUT_KEY=" + out, "HANDLER_PATH=" + s.repoPath(handler),
				"INPUT_MODE=stream", "OUTPUT_MODE=xadd", "OUTPUT_MAXLEN=" + strconv.Itoa(s.o.StreamMaxLen),
				"STREAM_GROUP=" + group, "STREAM_CONSUMER=bench", "STREAM_START=0", "STREAM_DATA_FIELD=data"}, settings...)...)
		}
	}
	for _, c := range streamRowSpecs {
		if !slices.Contains(s.o.StreamRows, c.key) {
			continue
		}
		var start func(in, out string) (*child, error)
		if c.handler == "" {
			start = func(in, out string) (*child, error) {
				return startChild("stream loop", s.o.Repo, baseEnv(), s.self, "streamloop",
					"-addr", s.srv.Addr, "-in", in, "-out", out, "-group", group, "-maxlen", strconv.Itoa(s.o.StreamMaxLen))
			}
		} else {
			start = eventrtStream(c.handler, c.settings...)
		}
		row := streamRow{Name: c.name, Target: c.target}
		if c.python {
			if err := needPython(); err != nil {
				row.Status = statusOf(err)
				s.logf("%s: %s", c.name, row.Status)
				s.rep.Streams = append(s.rep.Streams, row)
				continue
			}
		}
		in, out := "{bench-"+c.key+"}:in", "{bench-"+c.key+"}:out"
		fillStart := time.Now()
		if err := fillStream(ctx, s.rc, in, s.tpl, s.ts, n); err != nil {
			row.Status = statusOf(err)
			s.rep.Streams = append(s.rep.Streams, row)
			continue
		}
		s.logf("%s: %d entries filled in %v", c.name, n, time.Since(fillStart).Round(time.Millisecond))
		started := time.Now()
		proc, err := start(in, out)
		if err != nil {
			row.Status = statusOf(err)
		} else {
			res, err := watchStream(ctx, s.rc, proc, in, out, group, n, started, s.o.StreamTimeout, s.o.StallTimeout)
			if err != nil {
				row.Status = statusOf(err)
			} else {
				row.Result = res
				if _, hwm, err := proc.Memory(); err == nil {
					row.PeakRSS = hwm
					s.rep.Memory = append(s.rep.Memory, memRow{Process: proc.name,
						When: fmt.Sprintf("peak over %d stream entries", n), HWM: hwm})
				}
			}
			proc.Stop(5 * time.Second)
		}
		s.logf("%s: %s", c.name, streamSummary(row))
		s.rep.Streams = append(s.rep.Streams, row)
		// Each row starts on an empty Redis; a synchronous flush keeps the freeing out of the
		// next row's time.
		if err := s.rc.Do(ctx, s.rc.B().Flushall().Sync().Build()).Error(); err != nil {
			s.rep.note("FLUSHALL SYNC after %s: %v", c.name, err)
		}
	}
}

// streamRowSpec is one stream throughput row: the reference loop (no handler) or eventrt
// running handler (a path in the repository) with settings.
type streamRowSpec struct {
	key, name string
	target    *target // nil: none
	handler   string
	settings  []string
	python    bool // needs eventrt's Python interpreter
}

// streamRowSpecs are the stream rows, in the order they run.
var streamRowSpecs = []streamRowSpec{
	{key: "loop", name: "minimal Go loop: XREADGROUP → XADD → XACK, 256 per batch, pipelined, no decoding"},
	{key: "stateless", name: "eventrt, stateless mapping (" + statelessExprPath + ")", target: &targetStreamStateless,
		handler: statelessExprPath},
	{key: "classic", name: "eventrt, stateful classic handler (" + classicExprPath + ")", target: &targetStreamClassic,
		handler: classicExprPath},
	{key: "python", name: "eventrt, Python engine, the course's classic handler (" + classicPythonPath + ")",
		handler: classicPythonPath, settings: []string{"HANDLER_RUNTIME=python"}, python: true},
}

// streamRowNames are the keys of the stream rows, in the order they run.
func streamRowNames() []string {
	names := make([]string, len(streamRowSpecs))
	for i, r := range streamRowSpecs {
		names[i] = r.key
	}
	return names
}

func streamSummary(r streamRow) string {
	if r.Status.Outcome != measured {
		return r.Status.String()
	}
	return fmt.Sprintf("%s entries/s", count(r.Result.Rate))
}
