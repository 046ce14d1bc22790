package pattern

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/exprengine"
	"github.com/eventrt/eventrt/internal/redistest"
	"github.com/eventrt/eventrt/internal/trigger"
)

// BenchmarkBatch is the runner's side of a pattern function: b.N keys (in rounds of 1,000)
// get a new value, NotifyKey is called for each as the watcher would, and the round ends
// when every key's run has committed. It covers read, decode, evaluate and commit, batched,
// against a real redis-server; ns/op is per key run.
func BenchmarkBatch(b *testing.B) {
	srv := redistest.Start(b)
	c := srv.Client()
	raw, err := os.ReadFile("../../examples/classic/metrics-sample.json")
	if err != nil {
		b.Fatal(err)
	}
	src, err := os.ReadFile("../../examples/classic/handler_module.expr")
	if err != nil {
		b.Fatal(err)
	}
	p, err := exprengine.Compile("bench.expr", src, exprengine.DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	l, err := NewLayout("m:*", "o:*", OutputSet, "bench")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{}, 1)
	var left int
	r, err := New(Options{Name: "bench", Client: c, Layout: l, Observe: func(string, trigger.Kind, string) {
		left--
		if left == 0 {
			done <- struct{}{}
		}
	}}, exec.Version{Handler: p, Runtime: "expr"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	const round = 1000
	doc := string(raw)
	if !strings.Contains(doc, `"timestamp":`) {
		b.Fatal("the sample has no timestamp to vary")
	}
	b.ResetTimer()
	for n := 0; n < b.N; n += round {
		k := min(round, b.N-n)
		cmds := make(rueidis.Commands, k)
		for i := range k {
			// A new value each round: a field of its own before the timestamp.
			v := strings.Replace(doc, `"timestamp":`, `"round": `+strconv.Itoa(n+i)+`, "timestamp":`, 1)
			cmds[i] = c.B().Set().Key(fmt.Sprintf("m:%d", i)).Value(v).Build()
		}
		for _, res := range c.DoMulti(ctx, cmds...) {
			if err := res.Error(); err != nil {
				b.Fatal(err)
			}
		}
		left = k
		for i := range k {
			r.NotifyKey(fmt.Sprintf("m:%d", i), trigger.KindKeyspace)
		}
		select {
		case <-done:
		case <-time.After(time.Minute):
			b.Fatal("round never completed")
		}
	}
}
