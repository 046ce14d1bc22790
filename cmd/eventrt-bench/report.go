package main

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// outcome is how a row ended.
type outcome int

const (
	measured outcome = iota
	skipped          // a peer the row needs is missing here (python3, the redis module): not a failure
	failed           // it ran and broke: make bench exits non-zero
)

// rowStatus is how a row ended and why, in words the table prints.
type rowStatus struct {
	Outcome outcome
	Msg     string
}

// errMissing marks a row that could not run because something it needs is not on this machine.
var errMissing = errors.New("missing")

// missingf is the error of a row whose peer is missing; the text says what and how to get it.
func missingf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errMissing}, args...)...)
}

// statusOf is the status of a row that ended with err: skipped when a peer is missing,
// failed otherwise; either way with the reason.
func statusOf(err error) rowStatus {
	if errors.Is(err, errMissing) {
		return rowStatus{skipped, strings.TrimPrefix(err.Error(), errMissing.Error()+": ")}
	}
	return rowStatus{failed, err.Error()}
}

func (s rowStatus) String() string {
	switch s.Outcome {
	case skipped:
		return "skipped: " + s.Msg
	case failed:
		return "FAILED: " + s.Msg
	}
	return s.Msg
}

// Row kinds of the latency section, for the targets.
const (
	latFloor = iota
	latEventrt
	latOther
)

type latencyRow struct {
	Name   string
	Kind   int
	Stats  latencyStats
	Status rowStatus
}

type streamRow struct {
	Name    string
	Target  *target // nil for none
	Result  streamResult
	PeakRSS int64
	Status  rowStatus
}

type benchSection struct {
	Title   string
	Command string
	Rows    []goBench
	Status  rowStatus
	// Target, when set, judges the one row it names (the others are there for comparison).
	Target *target
}

type memRow struct {
	Process, When string
	RSS, HWM      int64
}

type machine struct {
	NProc                           int
	CPU, Mem, Go, Redis, Python, OS string
	Eventrt                         string
	// Load averages (1, 5, 15 min) at the start and the end: other work on the machine
	// skews every row, and this is how a reader can tell.
	LoadStart, LoadEnd string
}

// report is everything one run measured.
type report struct {
	Date    time.Time
	Machine machine
	Opts    Options

	Latency []latencyRow
	Streams []streamRow
	Benches []benchSection
	Memory  []memRow
	Notes   []string
}

// Failed reports whether a row broke (as opposed to being skipped for a missing peer).
func (r *report) Failed() bool {
	for _, l := range r.Latency {
		if l.Status.Outcome == failed {
			return true
		}
	}
	for _, s := range r.Streams {
		if s.Status.Outcome == failed {
			return true
		}
	}
	for _, b := range r.Benches {
		if b.Status.Outcome == failed {
			return true
		}
	}
	return false
}

func (r *report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Markdown renders the report: the table printed by make bench and kept in bench/results.md.
func (r *report) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.Machine
	w("# eventrt benchmarks (`make bench`)\n\n")
	w("Run %s on this machine: %d vCPU (nproc), %s, %s RAM, %s; %s; redis-server %s; %s (legacy runtime); eventrt %s.\n",
		r.Date.UTC().Format("2006-01-02 15:04 UTC"), m.NProc, m.CPU, m.Mem, m.OS, m.Go, m.Redis, m.Python, m.Eventrt)
	w("Load average (1/5/15 min): %s at the start, %s at the end.\n", m.LoadStart, m.LoadEnd)
	w("Every row ran in this one run against one private redis-server on 127.0.0.1 (no persistence); " +
		"each program measured is its own process, sharing the cores with Redis and the measuring client.\n\n")
	w("## Targets\n\nThe pass marks of every row that has one (cmd/eventrt-bench/targets.go); the result column of each row says met or missed.\n\n%s\n", targetTable())

	w("## 1. SET-to-output latency\n\n")
	w("A client SETs the input key (the metrics document with a new timestamp each trial), waits for the "+
		"*output* key's keyspace notification, then GETs the output to check it carries that timestamp. "+
		"Trials never overlap. Floor and eventrt rows: %d warm-up trials each (not counted), then interleaved "+
		"blocks of trials. The legacy runtime polls every %v (its default INTERVAL), so it gets %d trials, each "+
		"started at a random phase of its polling cycle.\n\n", r.Opts.Warmup, r.Opts.LegacyInterval, r.Opts.LegacyTrials)
	w("| runner | trials | p50 | p99 | max | target | result |\n|---|---:|---:|---:|---:|---|---|\n")
	var floor *latencyRow
	for i := range r.Latency {
		if r.Latency[i].Kind == latFloor && r.Latency[i].Status.Outcome == measured {
			floor = &r.Latency[i]
		}
	}
	for _, l := range r.Latency {
		target, verdict := "", ""
		if l.Kind == latEventrt {
			target = targetLatencyP50.String() + ", " + targetLatencyP99.String()
			if floor != nil && l.Status.Outcome == measured {
				verdict = fmt.Sprintf("p50 %s, p99 %s",
					ratio(l.Stats.P50, floor.Stats.P50, &targetLatencyP50), ratio(l.Stats.P99, floor.Stats.P99, &targetLatencyP99))
			}
		}
		if l.Status.Outcome != measured {
			w("| %s | – | – | – | – | %s | %s |\n", l.Name, target, l.Status)
			continue
		}
		w("| %s | %d | %s | %s | %s | %s | %s |\n", l.Name, l.Stats.N, dur(l.Stats.P50), dur(l.Stats.P99),
			dur(l.Stats.Max), target, verdict)
	}

	w("\n## 2. Stream throughput\n\n")
	w("%d entries in the metrics shape (field `data` = JSON) XADDed to the input stream before the consumer "+
		"starts; every output stream capped with MAXLEN ~ %d (OUTPUT_MAXLEN for eventrt, the loop's too); done "+
		"when as many entries were added to the output (XINFO STREAM entries-added) or the group has read them all with "+
		"none pending. entries/s counts the entries added after the driver first saw one, over the milliseconds between "+
		"the IDs Redis gave to that one and to the last (* where they share a millisecond and the driver's 20 ms polls "+
		"are used), so process start-up is only in the wall time.\n\n",
		r.Opts.StreamEntries, r.Opts.StreamMaxLen)
	w("| pipeline | entries | entries/s | wall (start → last) | peak RSS | target | result |\n|---|---:|---:|---:|---:|---|---|\n")
	for _, s := range r.Streams {
		target := ""
		if s.Target != nil {
			target = s.Target.String()
		}
		if s.Status.Outcome != measured {
			w("| %s | – | – | – | – | %s | %s |\n", s.Name, target, s.Status)
			continue
		}
		verdict := ""
		if s.Target != nil {
			verdict = metOrMissed(s.Target.met(s.Result.Rate))
		}
		rate := count(s.Result.Rate)
		if !s.Result.ByIDs {
			rate += "*"
		}
		w("| %s | %s | %s | %s | %s | %s | %s |\n", s.Name, count(float64(s.Result.Entries)), rate,
			fmt.Sprintf("%.2f s", s.Result.Wall.Seconds()), mib(s.PeakRSS), target, verdict)
	}

	w("\n## 3. Handler cost\n\n")
	for _, sec := range r.Benches {
		w("%s: `%s`\n\n", sec.Title, sec.Command)
		if sec.Status.Outcome != measured {
			w("%s\n\n", sec.Status)
		}
		if len(sec.Rows) == 0 {
			continue
		}
		w("| benchmark | ns/op | B/op | allocs/op | other | target | result |\n|---|---:|---:|---:|---|---|---|\n")
		for _, g := range sec.Rows {
			var other []string
			for _, k := range []string{"direct-ns/op", "direct+json-ns/op", "overhead-ns/op", "entries/s"} {
				if v, ok := g.Metrics[k]; ok {
					other = append(other, fmt.Sprintf("%s %s", count(v), k))
				}
			}
			target, verdict := "", ""
			if t := sec.Target; t != nil && g.Name == t.bench {
				target = t.String()
				if v, ok := g.Metrics[t.metric]; ok {
					verdict = metOrMissed(t.met(v))
				} else {
					verdict = "no " + t.metric + " reported"
				}
			}
			w("| %s | %s | %s | %s | %s | %s | %s |\n", g.Name, count(g.Metrics["ns/op"]), count(g.Metrics["B/op"]),
				count(g.Metrics["allocs/op"]), strings.Join(other, ", "), target, verdict)
		}
		w("\n")
	}

	w("## 4. Memory\n\n| process | when | RSS | peak (VmHWM) |\n|---|---|---:|---:|\n")
	for _, mr := range r.Memory {
		w("| %s | %s | %s | %s |\n", mr.Process, mr.When, mib(mr.RSS), mib(mr.HWM))
	}
	if len(r.Notes) > 0 {
		w("\n## Notes\n\n")
		for _, n := range r.Notes {
			w("- %s\n", n)
		}
	}
	return b.String()
}

// ratio is v as a multiple of the floor's, with t's verdict on it.
func ratio(v, floor time.Duration, t *target) string {
	if floor <= 0 {
		return "n/a"
	}
	x := float64(v) / float64(floor)
	return fmt.Sprintf("%.2f× (%s)", x, metOrMissed(t.met(x)))
}

func metOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

// dur prints a latency in milliseconds (seconds from 10 s), so rows compare at a glance.
func dur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return fmt.Sprintf("%.3f ms", ms)
	case ms < 10000:
		return fmt.Sprintf("%.0f ms", ms)
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

// count prints a number with thousands separators, rounded to an integer (or to one decimal
// below 100).
func count(v float64) string {
	if v < 100 && v != float64(int64(v)) {
		return fmt.Sprintf("%.1f", v)
	}
	s := fmt.Sprintf("%d", int64(v+0.5))
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func mib(n int64) string {
	if n <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
