package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// latTarget is one program under the latency test.
type latTarget struct {
	key     string
	row     latencyRow
	proc    *child
	probe   *probe
	samples []time.Duration
}

func (t *latTarget) fail(err error) {
	if t.row.Status.Outcome == measured {
		t.row.Status = statusOf(err)
	}
}

func (t *latTarget) ok() bool { return t.row.Status.Outcome == measured && t.probe != nil }

// basePrefix marks a latency row run with Options.BaseEventrt instead of Options.Eventrt.
const basePrefix = "base-"

// latencyRowSpec is one program the latency section can measure. Besides make bench's rows,
// the catalogue holds variants that attribute eventrt's latency to its parts: the lease (a
// fenced commit is a Lua script), state (a commit writes the env hash) and the handler itself.
type latencyRowSpec struct {
	name string
	kind int
	// handler is an expr program written to a file of its own ("" for a row that brings its
	// own HANDLER_PATH in settings, or is not eventrt).
	handler  string
	settings []string // eventrt settings besides the keys, relative to the repository
	python   bool     // needs eventrt's Python interpreter
}

// Trivial handlers: the probe recognises a trial's output by its timestamp field.
const (
	trivialStateful  = `result({timestamp: input.timestamp}, {n: (env.n ?? 0) + 1})`
	trivialStateless = `{timestamp: input.timestamp}`
)

var latencyRowSpecs = map[string]latencyRowSpec{
	"floor": {name: "floor: minimal Go program, notification → GET → SET, no evaluation", kind: latFloor},
	"expr": {name: "eventrt, expr engine, " + classicExprPath, kind: latEventrt,
		settings: []string{"HANDLER_PATH=" + classicExprPath}},
	"python": {name: "eventrt, Python engine, " + classicPythonPath, kind: latEventrt, python: true,
		settings: []string{"HANDLER_RUNTIME=python", "PYFILE_PATH=" + classicPythonPath, "HANDLER_PATH=" + classicPythonPath}},
	"expr-nolease": {name: "eventrt, expr engine, " + classicExprPath + ", LEASE=false", kind: latEventrt,
		settings: []string{"HANDLER_PATH=" + classicExprPath, "LEASE=false"}},
	"stateful": {name: "eventrt, trivial stateful handler", kind: latEventrt, handler: trivialStateful},
	"stateful-nolease": {name: "eventrt, trivial stateful handler, LEASE=false", kind: latEventrt,
		handler: trivialStateful, settings: []string{"LEASE=false"}},
	"stateless": {name: "eventrt, trivial stateless handler", kind: latEventrt, handler: trivialStateless},
	"stateless-nolease": {name: "eventrt, trivial stateless handler, LEASE=false", kind: latEventrt,
		handler: trivialStateless, settings: []string{"LEASE=false"}},
}

func latencyRowNames() []string {
	names := make([]string, 0, len(latencyRowSpecs))
	for n := range latencyRowSpecs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// startLatencyRow starts the program of row name (see latencyRowSpecs) on in and out.
func (s *session) startLatencyRow(ctx context.Context, name, in, out, handlerDir string) (*child, error) {
	base, isBase := strings.CutPrefix(name, basePrefix)
	spec := latencyRowSpecs[base]
	if base == "floor" {
		return startChild("floor", s.o.Repo, baseEnv(), s.self, "floor", "-addr", s.srv.Addr, "-in", in, "-out", out)
	}
	if spec.python {
		if err := needPython(); err != nil {
			return nil, err
		}
	}
	settings := []string{"REDIS_INPUT_KEY=" + in, "REDIS_OUTPUT_KEY=" + out}
	for _, kv := range spec.settings {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasSuffix(k, "_PATH") {
			v = filepath.Join(s.o.Repo, v)
		}
		settings = append(settings, k+"="+v)
	}
	if spec.handler != "" {
		file := filepath.Join(handlerDir, base+".expr")
		if err := os.WriteFile(file, []byte(spec.handler+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("handler of row %s: %w", name, err)
		}
		settings = append(settings, "HANDLER_PATH="+file)
	}
	bin := s.o.Eventrt
	if isBase {
		bin = s.o.BaseEventrt
	}
	return s.startEventrt(ctx, "eventrt ("+name+")", bin, true, settings...)
}

// latency measures the rows of Options.LatencyRows (by default the floor and eventrt with the
// expr and the Python engine) in interleaved blocks, so a slow phase of the machine is shared
// by all rows.
func (s *session) latency(ctx context.Context) {
	handlerDir, err := os.MkdirTemp("", "eventrt-bench-handlers-")
	if err != nil {
		s.rep.note("latency: %v", err)
		return
	}
	defer os.RemoveAll(handlerDir)
	var targets []*latTarget
	for _, name := range s.o.LatencyRows {
		base, isBase := strings.CutPrefix(name, basePrefix)
		row := latencyRow{Name: latencyRowSpecs[base].name, Kind: latencyRowSpecs[base].kind}
		if isBase {
			row.Name += " (" + filepath.Base(s.o.BaseEventrt) + ")"
		}
		targets = append(targets, &latTarget{key: name, row: row})
	}
	defer func() {
		for _, t := range targets {
			if t.probe != nil {
				t.probe.Close()
			}
			if t.proc != nil {
				t.proc.Stop(5 * time.Second)
			}
			s.rep.Latency = append(s.rep.Latency, t.row)
		}
	}()
	for _, t := range targets {
		in, out := "bench:"+t.key+":metrics", "bench:"+t.key+":output"
		s.logf("starting %s", t.row.Name)
		proc, err := s.startLatencyRow(ctx, t.key, in, out, handlerDir)
		if err != nil {
			t.fail(err)
			continue
		}
		t.proc = proc
		if err := waitSubscribed(ctx, s.rc, proc, "__keyspace@0__:"+in, 10*time.Second); err != nil {
			t.fail(err)
			continue
		}
		if t.probe, err = newProbe(ctx, s.rc, in, out); err != nil {
			t.fail(err)
			continue
		}
		for range s.o.Warmup {
			ts := s.ts.Next()
			if _, err := t.probe.Trial(ctx, s.tpl.Doc(ts), ts, s.o.TrialTimeout); err != nil {
				t.fail(fmt.Errorf("warm-up: %w", err))
				break
			}
		}
	}
	blocks := min(s.o.Blocks, s.o.Trials)
	per := (s.o.Trials + blocks - 1) / blocks
	for range blocks {
		for _, t := range targets {
			if !t.ok() {
				continue
			}
			if per > 1 {
				s.logf("%s: trials %d-%d", t.row.Name, len(t.samples)+1, min(s.o.Trials, len(t.samples)+per))
			}
			for n := min(per, s.o.Trials-len(t.samples)); n > 0; n-- {
				ts := s.ts.Next()
				d, err := t.probe.Trial(ctx, s.tpl.Doc(ts), ts, s.o.TrialTimeout)
				if err != nil {
					t.fail(fmt.Errorf("trial %d: %w", len(t.samples)+1, err))
					break
				}
				t.samples = append(t.samples, d)
			}
		}
	}
	for _, t := range targets {
		if !t.ok() {
			continue
		}
		t.row.Stats = summarize(t.samples)
		if rss, hwm, err := t.proc.Memory(); err == nil {
			s.rep.Memory = append(s.rep.Memory, memRow{Process: t.proc.name + ", key mode",
				When: fmt.Sprintf("idle, after %d runs", s.o.Warmup+len(t.samples)), RSS: rss, HWM: hwm})
		}
	}
}
