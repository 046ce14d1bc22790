package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/pattern"
	"github.com/eventrt/eventrt/internal/state"
)

const stateUsage = `Usage: eventrt state reset [flags]

Deletes the function's state hash (STATE_KEY, default {<output key>}:env) and its bookkeeping
(<STATE_KEY>:meta), with the daemon's settings (environment variables or the same flags): the
next run sees an empty env. Safe while eventrt runs. See docs/reliability.md.
`

// runState is "eventrt state reset": the state lives in Redis, so this command takes the
// daemon's configuration rather than a handler.
func runState(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "reset" {
		fmt.Fprint(stderr, stateUsage)
		return 2
	}
	o, err := config.Parse(args[1:], getenv, stderr)
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprint(stdout, stateUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "eventrt state reset: %v\n", err)
		return 2
	}
	if o.InputMode == "pattern" || (o.InputMode == "auto" && pattern.IsGlob(o.InputKey)) {
		fmt.Fprintf(stderr, "eventrt state reset: %s is a pattern: each input key has a state of its own, "+
			"{<its output key>}:env and its :meta (see docs/patterns.md); delete those of the keys to reset with DEL\n", o.InputKey)
		return 2
	}
	co, err := redisOptions(o)
	if err != nil {
		fmt.Fprintf(stderr, "eventrt state reset: %v\n", err)
		return 2
	}
	client, err := rueidis.NewClient(co)
	if err != nil {
		fmt.Fprintf(stderr, "eventrt state reset: connect to Redis: %v\n", err)
		return 1
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := state.Reset(ctx, client, o.StateKey)
	if err != nil {
		fmt.Fprintf(stderr, "eventrt state reset: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "reset %s (%d of its 2 keys existed): the next run sees an empty env\n", o.StateKey, n)
	return 0
}
