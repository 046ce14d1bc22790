// Command eventrt runs small handler programs when Redis data changes.
//
//	eventrt                      run the daemon (configured by environment variables / flags)
//	eventrt check PATH           compile every function of a file, directory or zip
//	eventrt eval  ... PATH       run a function once on a JSON input, without Redis
//	eventrt test  PATH           run the test cases a bundle ships
//	eventrt version              print the version
//	eventrt healthcheck          exit 0 when the local daemon's /healthz answers (for images)
//	eventrt state reset          delete the function's state (env) in Redis
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/eventrt/eventrt/internal/buildinfo"
	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/quote"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// DefaultGCPercent replaces the Go runtime's GOGC=100 once a stream consumer starts, unless
// GOGC is set. eventrt's live heap is a few MiB, so at 100 a busy consumer collects every few
// hundred entries; at 400 the collector's share of CPU per entry falls by a fifth to a third
// (docs/performance.md) for a heap that peaks some 25 MiB higher. Key mode keeps Go's default: a
// run every few seconds hardly collects, and there the memory is worth more. GOGC and
// GOMEMLIMIT still work as usual.
const DefaultGCPercent = 400

func gcDefault(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}

// procsDefault sizes GOMAXPROCS for what the process runs, unless GOMAXPROCS is set. One
// function in key mode gets one P: a run hands work between a few goroutines (the
// notification, the runner, the Redis replies), one after another, and on one P those
// hand-offs wake no other thread; interleaved latency runs measured a lower p99 in every run
// and a lower p50 in most (docs/performance.md). Anything more (several functions, a
// stream consumer, whose decoding and Redis I/O overlap) gets Go's default back, which also
// follows the container's CPU limit.
func procsDefault(getenv func(string) string, key, stream int) {
	if getenv("GOMAXPROCS") != "" {
		return
	}
	if key == 1 && stream == 0 {
		runtime.GOMAXPROCS(1)
	} else {
		runtime.SetDefaultGOMAXPROCS()
	}
}

const usage = `eventrt runs small functions when Redis data changes.

Usage:
  eventrt [flags]                 run the daemon (see eventrt -h for every setting)
  eventrt check PATH              compile every function of a file, directory or .zip
                                  (Python: a .py file or .py modules; imports the handler)
  eventrt eval --input FILE [--env FILE] [--function module.function] PATH
                                  run one function once, without Redis, and print output and env
  eventrt test PATH               run the test cases shipped beside the functions (expr or Python)
  eventrt version, --version      print version, revision and Go version
  eventrt healthcheck             exit 0 when this host's daemon answers /healthz (image HEALTHCHECK)
  eventrt state reset [flags]     delete the function's state (env) in Redis; safe while it runs
`

// run is main without the exit, so tests can drive every command in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		args = []string{"version"}
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "check", "eval", "test":
			return runCLI(args[0], args[1:], stdout, stderr)
		case "version":
			bi := buildinfo.Get()
			fmt.Fprintf(stdout, "eventrt %s (revision %s, %s)\n", bi.Version, bi.Revision, bi.GoVersion)
			return 0
		case "healthcheck":
			return healthcheck(ctx, getenv, stderr)
		case "state":
			return runState(ctx, args[1:], getenv, stdout, stderr)
		case "help":
			fmt.Fprint(stdout, usage)
			return 0
		default:
			fmt.Fprintf(stderr, "eventrt: unknown command %s\n\n%s", quote.Value(args[0]), usage)
			return 2
		}
	}
	opts, err := config.Parse(args, getenv, stderr)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "eventrt: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP means "reload" (see watchHandlers); it must never take the default action of
	// terminating the process, also while starting or with RELOAD=false.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return runDaemon(ctx, opts, stderr, &hooks{
		streaming: func() { gcDefault(getenv) },
		running:   func(key, stream int) { procsDefault(getenv, key, stream) },
		memory:    func(log *slog.Logger) { containerMemoryLimit(log, getenv) },
	})
}

// healthcheck asks the daemon on this host for /healthz; the image's HEALTHCHECK runs it, so
// it needs no shell or curl.
func healthcheck(ctx context.Context, getenv func(string) string, stderr io.Writer) int {
	addr := getenv("HTTP_ADDR")
	if addr == "" {
		addr = config.DefaultHTTPAddr
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(stderr, "eventrt healthcheck: invalid HTTP_ADDR=%s: %v\n", quote.Value(addr), err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+"/healthz", nil)
	if err != nil {
		fmt.Fprintf(stderr, "eventrt healthcheck: %v\n", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "eventrt healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "eventrt healthcheck: /healthz answered %s\n", resp.Status)
		return 1
	}
	return 0
}
