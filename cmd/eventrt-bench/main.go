// Command eventrt-bench is `make bench`: it measures eventrt side by side with the legacy
// course runtime and with minimal Go programs, in one run, on this machine, against one
// private redis-server on a free loopback port, and writes the figures as a markdown table
// (printed, and saved to bench/results.md). It owns measurement only: it starts the programs
// it compares as separate processes and observes them from outside, the way a user would.
//
// Sections: SET-to-output latency seen by a client waiting for the output key's keyspace
// notification; stream throughput through eventrt's stream mode; handler cost from the
// go test benchmarks of internal/exec/exprengine and internal/exec/pyengine; memory (VmRSS, VmHWM) of the
// processes measured. It reads nothing from outside the repository (peers.go lists what it
// reads). A row whose peer is missing on this machine (python3, or the redis module of the
// legacy runtime's interpreter) is skipped and says what is missing; any other failure is
// shown with its reason and makes the run exit non-zero. The pass marks are one table
// (targets.go), printed in the report.
//
// The same binary also provides the two reference programs, run as child processes:
//
//	eventrt-bench floor -addr HOST:PORT -in KEY -out KEY        notification -> GET -> SET
//	eventrt-bench streamloop -addr HOST:PORT -in KEY -out KEY   XREADGROUP -> XADD -> XACK
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Defaults of the driver's settings.
const (
	DefaultTrials        = 1000
	DefaultBlocks        = 4
	DefaultWarmup        = 50
	DefaultLegacyTrials  = 20
	DefaultStreamEntries = 200000
	// DefaultStreamMaxLen caps the output of every stream row (eventrt's OUTPUT_MAXLEN, the
	// reference loop's too), so that a run of 200k entries does not hold them all in Redis;
	// eventrt's own default leaves an output uncapped.
	DefaultStreamMaxLen   = 10000
	DefaultOut            = "bench/results.md"
	DefaultEventrt        = "bin/eventrt"
	DefaultLegacyInterval = 5 * time.Second // legacy_runtime.py's default INTERVAL, which we keep
	DefaultTrialTimeout   = 7 * time.Second // above eventrt's 5 s polling fallback
	DefaultStreamTimeout  = 3 * time.Minute
	DefaultStallTimeout   = 10 * time.Second
	DefaultGoBenchTimeout = 5 * time.Minute
	// DefaultGoBenchCount is how many times each go test benchmark runs; the table has each
	// metric's median, so that one slow moment of a shared machine does not make the row.
	DefaultGoBenchCount = 3
)

// Options configures one run of the driver.
type Options struct {
	Repo           string // repository root; relative paths below are resolved against it
	Eventrt        string // the eventrt binary (built by make build)
	Out            string // markdown results file; "" writes none
	Trials         int    // measured trials per latency row (floor, eventrt)
	Warmup         int    // unmeasured trials before them
	LegacyTrials   int
	LegacyInterval time.Duration
	TrialTimeout   time.Duration
	StreamEntries  int
	StreamMaxLen   int           // approximate MAXLEN of every stream row's output
	StreamTimeout  time.Duration // bound on one stream row
	StallTimeout   time.Duration // a stream row without progress this long ends
	GoBenchTimeout time.Duration
	GoBenchCount   int // runs of each go test benchmark (-count); the median is reported
	SkipGoBench    bool
	Python         string // interpreter for the legacy runtime (needs the redis module)
	// LatencyRows names the latency rows to measure, interleaved (see latencyRowNames);
	// DefaultLatencyRows gives make bench's table.
	LatencyRows []string
	// LatencyOnly skips every section but latency: for attributing latency to its causes.
	LatencyOnly bool
	// StreamRows names the stream throughput rows to measure (see streamRowNames);
	// DefaultStreamRows gives make bench's table.
	StreamRows []string
	// StreamsOnly skips every section but the stream rows.
	StreamsOnly bool
	// BaseEventrt is a second eventrt binary (an older build, say) for the "base-" rows, so
	// two builds are compared in one interleaved run.
	BaseEventrt string
	// Blocks is the number of interleaved blocks the latency trials are split into; as many
	// as Trials alternates the rows trial by trial.
	Blocks int
}

// DefaultLatencyRows are the latency rows of make bench.
var DefaultLatencyRows = []string{"floor", "expr", "python"}

// DefaultStreamRows are the stream throughput rows of make bench.
var DefaultStreamRows = streamRowNames()

func defaultOptions() Options {
	return Options{
		Repo: ".", Eventrt: DefaultEventrt, Out: DefaultOut,
		Trials: DefaultTrials, Warmup: DefaultWarmup, LegacyTrials: DefaultLegacyTrials,
		LegacyInterval: DefaultLegacyInterval, TrialTimeout: DefaultTrialTimeout,
		StreamEntries: DefaultStreamEntries, StreamMaxLen: DefaultStreamMaxLen, StreamTimeout: DefaultStreamTimeout,
		StallTimeout: DefaultStallTimeout, GoBenchTimeout: DefaultGoBenchTimeout, GoBenchCount: DefaultGoBenchCount,
		Python: "/usr/bin/python3", LatencyRows: DefaultLatencyRows, Blocks: DefaultBlocks,
		StreamRows: DefaultStreamRows,
	}
}

// Validate checks the settings and resolves paths against Repo.
func (o *Options) Validate() error {
	switch {
	case o.Trials < 1:
		return fmt.Errorf("-trials=%d: must be at least 1", o.Trials)
	case o.Blocks < 1:
		return fmt.Errorf("-blocks=%d: must be at least 1", o.Blocks)
	case o.Warmup < 0:
		return fmt.Errorf("-warmup=%d: must not be negative", o.Warmup)
	case o.LegacyTrials < 0:
		return fmt.Errorf("-legacy-trials=%d: must not be negative", o.LegacyTrials)
	case o.StreamEntries < 1:
		return fmt.Errorf("-stream-entries=%d: must be at least 1", o.StreamEntries)
	case o.StreamMaxLen < 1:
		return fmt.Errorf("-stream-maxlen=%d: must be at least 1", o.StreamMaxLen)
	case o.GoBenchCount < 1:
		return fmt.Errorf("-gobench-count=%d: must be at least 1", o.GoBenchCount)
	case o.LegacyInterval <= 0 || o.TrialTimeout <= 0 || o.StreamTimeout <= 0 || o.StallTimeout <= 0:
		return errors.New("durations must be positive")
	case len(o.LatencyRows) == 0:
		return errors.New("-latency-rows: empty")
	case len(o.StreamRows) == 0:
		return errors.New("-stream-rows: empty")
	case o.LatencyOnly && o.StreamsOnly:
		return errors.New("-latency-only and -streams-only exclude each other")
	}
	for _, name := range o.StreamRows {
		if !slices.Contains(streamRowNames(), name) {
			return fmt.Errorf("-stream-rows: unknown row %q (want %s)", name, strings.Join(streamRowNames(), ", "))
		}
	}
	for _, name := range o.LatencyRows {
		base, ok := strings.CutPrefix(name, basePrefix)
		if _, known := latencyRowSpecs[base]; !known || (ok && base == "floor") {
			return fmt.Errorf("-latency-rows: unknown row %q (want %s, or %s before an eventrt row)",
				name, strings.Join(latencyRowNames(), ", "), basePrefix)
		}
		if ok && o.BaseEventrt == "" {
			return fmt.Errorf("-latency-rows: row %q needs -eventrt-base", name)
		}
	}
	repo, err := filepath.Abs(o.Repo)
	if err != nil {
		return fmt.Errorf("-repo=%q: %w", o.Repo, err)
	}
	o.Repo = repo
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(repo, p)
	}
	o.Eventrt, o.Out, o.BaseEventrt = abs(o.Eventrt), abs(o.Out), abs(o.BaseEventrt)
	if _, err := os.Stat(o.Eventrt); err != nil {
		return fmt.Errorf("eventrt binary %s: %w (run make build)", o.Eventrt, err)
	}
	if o.BaseEventrt != "" {
		if _, err := os.Stat(o.BaseEventrt); err != nil {
			return fmt.Errorf("-eventrt-base %s: %w", o.BaseEventrt, err)
		}
	}
	return nil
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 {
		switch args[0] {
		case "floor":
			return floorMain(ctx, args[1:], stderr)
		case "streamloop":
			return streamLoopMain(ctx, args[1:], stderr)
		case "patterns":
			return patternsMain(ctx, args[1:], stdout, stderr)
		case "patternfloor":
			return patternFloorMain(ctx, args[1:], stderr)
		}
	}
	o := defaultOptions()
	fs := flag.NewFlagSet("eventrt-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Repo, "repo", o.Repo, "repository root")
	fs.StringVar(&o.Eventrt, "eventrt", o.Eventrt, "eventrt binary (relative to -repo)")
	fs.StringVar(&o.Out, "out", o.Out, "markdown results file (relative to -repo; empty: none)")
	fs.IntVar(&o.Trials, "trials", o.Trials, "measured latency trials per row")
	fs.IntVar(&o.Warmup, "warmup", o.Warmup, "unmeasured trials before them")
	fs.IntVar(&o.LegacyTrials, "legacy-trials", o.LegacyTrials, "latency trials of the legacy runtime (each takes one poll period); 0 skips it")
	fs.IntVar(&o.StreamEntries, "stream-entries", o.StreamEntries, "entries per stream throughput row")
	fs.IntVar(&o.StreamMaxLen, "stream-maxlen", o.StreamMaxLen, "approximate MAXLEN of every stream row's output (OUTPUT_MAXLEN for eventrt; at least -stream-entries keeps every output)")
	fs.DurationVar(&o.StreamTimeout, "stream-timeout", o.StreamTimeout, "bound on one stream row")
	fs.BoolVar(&o.SkipGoBench, "skip-gobench", o.SkipGoBench, "skip the go test benchmarks")
	fs.IntVar(&o.GoBenchCount, "gobench-count", o.GoBenchCount, "runs of each go test benchmark; the table has each metric's median")
	fs.StringVar(&o.Python, "python", o.Python, "interpreter for the legacy runtime (needs the redis module)")
	fs.BoolVar(&o.LatencyOnly, "latency-only", o.LatencyOnly, "measure only the SET-to-output latency rows")
	fs.Func("latency-rows", "comma-separated latency rows, measured interleaved: "+strings.Join(latencyRowNames(), ", ")+
		"; "+basePrefix+"ROW runs an eventrt row with -eventrt-base (default "+strings.Join(DefaultLatencyRows, ",")+")",
		func(v string) error {
			o.LatencyRows = strings.Split(v, ",")
			return nil
		})
	fs.BoolVar(&o.StreamsOnly, "streams-only", o.StreamsOnly, "measure only the stream throughput rows")
	fs.Func("stream-rows", "comma-separated stream throughput rows: "+strings.Join(streamRowNames(), ", ")+" (default all)",
		func(v string) error {
			o.StreamRows = strings.Split(v, ",")
			return nil
		})
	fs.IntVar(&o.Blocks, "blocks", o.Blocks, "interleaved blocks of latency trials (as many as -trials: row by row, trial by trial)")
	fs.StringVar(&o.BaseEventrt, "eventrt-base", o.BaseEventrt, "a second eventrt binary for the "+basePrefix+" latency rows (relative to -repo)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintf(stderr, "eventrt-bench: %v\n", err)
		return 2
	}
	rep, err := bench(ctx, o, stderr)
	if rep != nil {
		md := rep.Markdown()
		fmt.Fprint(stdout, md)
		if o.Out != "" {
			if werr := os.WriteFile(o.Out, []byte(md), 0o644); werr != nil {
				fmt.Fprintf(stderr, "eventrt-bench: write %s: %v\n", o.Out, werr)
				return 1
			}
			fmt.Fprintf(stderr, "eventrt-bench: wrote %s\n", o.Out)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "eventrt-bench: %v\n", err)
		return 1
	}
	if rep.Failed() {
		fmt.Fprintln(stderr, "eventrt-bench: some rows failed (see the table)")
		return 1
	}
	return 0
}
