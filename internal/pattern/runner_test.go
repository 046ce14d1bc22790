package pattern

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/exprengine"
	"github.com/eventrt/eventrt/internal/redistest"
	"github.com/eventrt/eventrt/internal/trigger"
)

// More keys signalled than the pending set holds: the signals beyond it are dropped, one
// catch-up scan is asked for, and it runs every key anyway, each once.
func TestOverflowIsCoveredByAScan(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	srv := redistest.Start(t)
	p, err := exprengine.Compile("h.expr", []byte(`let c = (env.c ?? 0) + 1; result({c: c}, {c: c})`), exprengine.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLayout("m:*", "o:*", OutputSet, "fn")
	if err != nil {
		t.Fatal(err)
	}
	const keys = 40
	ran := make(chan string, 4*keys)
	r, err := New(Options{Name: "fn", Client: srv.Client(), Layout: l, MaxPending: 10,
		Observe: func(key string, _ trigger.Kind, outcome string) {
			if outcome == "success" {
				ran <- key
			}
		}}, exec.Version{Handler: p, Runtime: "expr"})
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys {
		srv.Do("SET", fmt.Sprintf("m:%d", k), `{}`)
		r.NotifyKey(fmt.Sprintf("m:%d", k), trigger.KindKeyspace)
	}
	r.mu.Lock()
	pending, req := len(r.pending), r.scanReq
	r.mu.Unlock()
	if pending != 10 || req != 1 {
		t.Fatalf("%d keys pending and %d scans asked for; want 10 and 1", pending, req)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	seen := map[string]int{}
	timeout := time.After(20 * time.Second)
	for len(seen) < keys {
		select {
		case k := <-ran:
			seen[k]++
		case <-timeout:
			t.Fatalf("%d of %d keys ran", len(seen), keys)
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s ran %d times", k, n)
		}
	}
	if got := srv.Do("HGET", "{o:7}:env:meta", "executions"); got != "1" {
		t.Fatalf("executions of m:7: %s", got)
	}
}
