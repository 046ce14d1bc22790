package pattern

import (
	"context"
	"testing"

	"github.com/eventrt/eventrt/internal/redistest"
)

// The per-slot fence: a tenure's claim makes every later commit of an earlier tenure a no-op,
// and an earlier tenure cannot claim the slot back.
func TestFenceRefusesAnEarlierTenure(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	srv := redistest.Start(t)
	c := srv.Client()
	ctx := context.Background()
	l, err := NewLayout("metrics:*", "avg:*", OutputSet, "fn")
	if err != nil {
		t.Fatal(err)
	}
	k := l.Keys("metrics:a")
	fence := l.FenceKey(k.Slot, 64)
	claim := func(tok string) int64 {
		n, err := doScripts(ctx, c, nil, []scriptCall{{claimScript, []string{fence}, []string{tok}}})[0].AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	commit := func(tok, out string) int64 {
		args := []string{"set", out, "2026-12-07T00:00:00Z", "h", "id-" + out, tok, "0", "0", k.Input, k.Output, "0", "f", `"` + out + `"`}
		n, err := doScripts(ctx, c, nil, []scriptCall{{commitScript, []string{k.State, k.Meta, k.Output, fence}, args}})[0].AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if claim("1") != 1 || commit("1", "one") != 1 {
		t.Fatal("the first tenure could not claim and commit")
	}
	if claim("2") != 1 {
		t.Fatal("a later tenure could not claim the slot")
	}
	if commit("1", "stale") != 0 {
		t.Fatal("the earlier tenure committed after the later one's claim")
	}
	if got := srv.Do("GET", k.Output); got != "one" {
		t.Fatalf("output %q: a refused commit wrote", got)
	}
	if got := srv.Do("HGET", k.State, "f"); got != `"one"` {
		t.Fatalf("state %q: a refused commit wrote", got)
	}
	if claim("1") != 0 {
		t.Fatal("the earlier tenure claimed the slot back")
	}
	if commit("2", "two") != 1 || srv.Do("HGET", k.Meta, "fence") != "2" || srv.Do("HGET", k.Meta, "executions") != "2" {
		t.Fatalf("the later tenure's commit: meta %s", srv.Do("HGETALL", k.Meta))
	}
}
