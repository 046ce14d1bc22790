// Package health owns eventrt's liveness and readiness: a background Redis health check that
// feeds eventrt_redis_up, and the /healthz and /readyz handlers.
//
// /healthz answers 200 while the process serves HTTP: Kubernetes restarts the pod only when it
// is wedged, never because Redis is away (a restart would not bring Redis back). /readyz
// answers 200 only when Redis answered the last PING and every function's triggers are in
// place; otherwise 503 with one line per reason.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/clock"
)

// DefaultPeriod is how often Redis is pinged.
const DefaultPeriod = 2 * time.Second

// Options configure a Checker.
type Options struct {
	Period  time.Duration
	Timeout time.Duration // of one PING; default Period/2
	// OnRedis is told each check's result (wired to eventrt_redis_up).
	OnRedis func(up bool)
	Clock   clock.Clock
	Logger  *slog.Logger
}

// Checker tracks Redis reachability and readiness conditions.
type Checker struct {
	o       Options
	redisUp atomic.Bool
	checked atomic.Bool

	mu     sync.Mutex
	client rueidis.Client
	checks map[string]func() error
}

// SetClient sets the Redis client to check.
func (c *Checker) SetClient(cl rueidis.Client) {
	c.mu.Lock()
	c.client = cl
	c.mu.Unlock()
}

// Remove drops the readiness check registered under name.
func (c *Checker) Remove(name string) {
	c.mu.Lock()
	delete(c.checks, name)
	c.mu.Unlock()
}

// New returns a Checker. The client is set with SetClient once it exists (Redis may be
// unreachable at start); until then the Checker reports Redis down.
func New(o Options) *Checker {
	if o.Period <= 0 {
		o.Period = DefaultPeriod
	}
	if o.Timeout <= 0 {
		o.Timeout = o.Period / 2
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.OnRedis == nil {
		o.OnRedis = func(bool) {}
	}
	return &Checker{o: o, checks: map[string]func() error{}}
}

// AddCheck adds a readiness condition; fn returns nil when ready.
func (c *Checker) AddCheck(name string, fn func() error) {
	c.mu.Lock()
	c.checks[name] = fn
	c.mu.Unlock()
}

// Run pings Redis every Period until ctx ends.
func (c *Checker) Run(ctx context.Context) error {
	t := c.o.Clock.NewTicker(c.o.Period)
	defer t.Stop()
	c.check(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			c.check(ctx)
		}
	}
}

func (c *Checker) check(ctx context.Context) {
	c.mu.Lock()
	cl := c.client
	c.mu.Unlock()
	err := errors.New("no client yet")
	if cl != nil {
		pctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
		err = cl.Do(pctx, cl.B().Ping().Build()).Error()
		cancel()
	}
	if ctx.Err() != nil {
		return
	}
	up := err == nil
	was := c.redisUp.Swap(up)
	first := !c.checked.Swap(true)
	c.o.OnRedis(up)
	switch {
	case !up && (was || first):
		c.o.Logger.Warn("redis unreachable", "kind", "redis", "err", err)
	case up && !was && !first:
		c.o.Logger.Info("redis reachable again")
	}
}

// RedisUp reports the last check's result.
func (c *Checker) RedisUp() bool { return c.redisUp.Load() }

// Ready returns nil when Redis is up and every check passes, else an error listing why not.
func (c *Checker) Ready() error {
	var reasons []string
	if !c.redisUp.Load() {
		reasons = append(reasons, "redis: not reachable")
	}
	c.mu.Lock()
	for name, fn := range c.checks {
		if err := fn(); err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: %v", name, err))
		}
	}
	c.mu.Unlock()
	if len(reasons) == 0 {
		return nil
	}
	sort.Strings(reasons)
	return fmt.Errorf("%s", strings.Join(reasons, "\n"))
}

// Healthz is the liveness handler.
func (c *Checker) Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// Readyz is the readiness handler.
func (c *Checker) Readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := c.Ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "%v\n", err)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}
