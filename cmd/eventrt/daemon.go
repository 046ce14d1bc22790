package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/buildinfo"
	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/health"
	"github.com/eventrt/eventrt/internal/logging"
	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/runner"
	"github.com/eventrt/eventrt/internal/state"
	"github.com/eventrt/eventrt/internal/trigger"
)

// hooks let tests observe the daemon; all fields are optional.
type hooks struct {
	// listening receives the HTTP address once the server listens.
	listening func(addr string)
	// started is called once the triggers and the runner are running.
	started func()
}

// component is one long-running piece of the daemon, stopped in the reverse of start order.
type component struct {
	name   string
	cancel context.CancelFunc
	done   chan error
}

// daemon runs eventrt until ctx ends. Start order: handler (compiled before anything else, so a
// bad program fails loudly before any event), HTTP server, Redis connection, health checks,
// state load, runner, triggers, reload watcher. Stop order is the reverse for the components
// that produce work: triggers first (no new signals), then the runner (it finishes the
// execution in progress), then the reload watcher and health checks, then HTTP and Redis.
func daemon(ctx context.Context, o config.Options, logOut io.Writer, h *hooks) int {
	if h == nil {
		h = &hooks{}
	}
	log, err := logging.New(logOut, o.LogFormat, o.LogLevel)
	if err != nil {
		fmt.Fprintf(logOut, "eventrt: %v\n", err)
		return 2
	}
	bi := buildinfo.Get()
	log.Info("starting eventrt", "version", bi.Version, "revision", bi.Revision, "function", o.HandlerFunction, "config", o)
	clk := clock.Real()
	m := metrics.New()

	ver, err := loadHandler(ctx, o, log)
	if err != nil {
		log.Error("handler failed to load", "function", o.HandlerFunction, "err", err)
		return 1
	}

	hc := health.New(health.Options{OnRedis: m.SetRedisUp, Clock: clk, Logger: log})
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/healthz", hc.Healthz)
	mux.HandleFunc("/readyz", hc.Readyz)
	ln, err := net.Listen("tcp", o.HTTPAddr)
	if err != nil {
		log.Error("cannot listen", "variable", "HTTP_ADDR", "addr", o.HTTPAddr, "err", err)
		return 1
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()
	if h.listening != nil {
		h.listening(ln.Addr().String())
	}
	log.Info("serving /metrics, /healthz, /readyz", "addr", ln.Addr().String())

	exit := 0
	var stack []component
	start := func(name string, fn func(context.Context) error) {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c := component{name: name, cancel: cancel, done: make(chan error, 1)}
		go func() { c.done <- fn(cctx) }()
		stack = append(stack, c)
	}
	defer func() {
		// Stop everything within the shutdown bound, then close HTTP and Redis.
		deadline := time.Now().Add(o.ShutdownTimeout)
		for i := len(stack) - 1; i >= 0; i-- {
			c := stack[i]
			c.cancel()
			select {
			case err := <-c.done:
				if err != nil {
					log.Warn("component stopped with an error", "component", c.name, "err", err)
				}
			case <-time.After(time.Until(deadline)):
				log.Error("shutdown bound exceeded", "component", c.name, "variable", "SHUTDOWN_TIMEOUT", "bound", o.ShutdownTimeout)
				exit = 1
			}
		}
		sctx, cancel := context.WithDeadline(context.Background(), deadline.Add(time.Second))
		_ = srv.Shutdown(sctx)
		cancel()
		log.Info("stopped")
	}()

	client, err := connect(ctx, o, log)
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		log.Error("cannot create the Redis client", "err", err)
		return 1
	}
	defer client.Close()
	hc.SetClient(client)
	start("health", hc.Run)

	fm := m.Function(o.HandlerFunction)
	store, err := state.New(state.Options{Client: client, StateKey: o.StateKey, OutputKey: o.OutputKey})
	if err != nil {
		log.Error("state", "err", err)
		return 1
	}
	rn, err := runner.New(runner.Options{
		Name: o.HandlerFunction, Client: client, Store: store,
		InputKey: o.InputKey, OutputKey: o.OutputKey, Host: o.RedisHost, Port: o.RedisPort,
		PollAlways: o.PollMode == config.PollAlways,
		Metrics:    fm, Logger: log, Clock: clk,
	}, ver)
	if err != nil {
		log.Error("runner", "err", err)
		return 1
	}
	if err := retry(ctx, log, "load state "+o.StateKey, func() error { return rn.Load(ctx) }, state.IsCorrupt); err != nil {
		if ctx.Err() != nil {
			return 0
		}
		log.Error("cannot load state", "key", o.StateKey, "err", err)
		return 1
	}
	start("runner", rn.Run)

	to := trigger.DefaultOptions()
	to.Client, to.DB, to.InputKey, to.Channel = client, o.RedisDB, o.InputKey, o.TriggerChannel
	to.PollPeriod, to.ConfigureNotifications, to.Clock = o.Period, o.NotifyConfig, clk
	to.Logger = log.With("function", o.HandlerFunction)
	w, err := trigger.New(to, rn)
	if err != nil {
		log.Error("trigger", "err", err)
		return 1
	}
	hc.OnTick(func() { fm.Notifications(w.Status().Notifications) })
	hc.AddCheck("triggers "+o.HandlerFunction, func() error {
		if !w.Status().Subscribed {
			return errors.New("not subscribed")
		}
		return nil
	})
	start("triggers", w.Run)
	if o.Reload {
		start("reload", func(ctx context.Context) error { return watchHandler(ctx, o, log, rn, fm) })
	}
	if h.started != nil {
		h.started()
	}
	log.Info("running", "function", o.HandlerFunction, "input_key", o.InputKey, "output_key", o.OutputKey, "state_key", o.StateKey)

	select {
	case <-ctx.Done():
		log.Info("stopping", "bound", o.ShutdownTimeout)
	case err := <-srvDone:
		log.Error("HTTP server failed", "err", err)
		exit = 1
	}
	return exit
}

// connect creates the Redis client, retrying with backoff while Redis is unreachable so that
// a pod started before its Redis waits (not ready) instead of crash-looping.
func connect(ctx context.Context, o config.Options, log *slog.Logger) (rueidis.Client, error) {
	co, err := redisOptions(o)
	if err != nil {
		return nil, err
	}
	var c rueidis.Client
	err = retry(ctx, log, "connect to Redis", func() error {
		var err error
		c, err = rueidis.NewClient(co)
		return err
	}, nil)
	return c, err
}

// retry calls fn until it succeeds, ctx ends, or fatal(err) says the error will not go away.
// Backoff doubles from 100ms to 5s; each failure is logged once per attempt at warn.
func retry(ctx context.Context, log *slog.Logger, what string, fn func() error, fatal func(error) bool) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if fatal != nil && fatal(err) {
			return err
		}
		log.Warn("retrying", "op", what, "attempt", attempt, "in", backoff, "kind", metrics.ErrRedis, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
