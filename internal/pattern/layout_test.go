package pattern

import (
	"testing"

	"github.com/eventrt/eventrt/internal/redisconn"
)

func TestMatchFollowsRedisGlob(t *testing.T) {
	for _, c := range []struct {
		pattern, key string
		want         bool
	}{
		{"metrics:*", "metrics:web-1", true},
		{"metrics:*", "metrics:", true},
		{"metrics:*", "metric", false},
		{"m?trics:*", "matrics:x", true},
		{"metrics:[ab]", "metrics:a", true},
		{"metrics:[ab]", "metrics:c", false},
		{"metrics:[^ab]", "metrics:c", true},
		{"metrics:[a-c]x", "metrics:bx", true},
		{"metrics:\\*", "metrics:*", true},
		{"metrics:\\*", "metrics:a", false},
		{"*:cpu", "host:1:cpu", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
	} {
		if got := Match(c.pattern, c.key); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.key, got, c.want)
		}
	}
}

func TestLayoutKeys(t *testing.T) {
	l, err := NewLayout("metrics:*", "avg:*", OutputSet, "fn")
	if err != nil {
		t.Fatal(err)
	}
	k := l.Keys("metrics:web-1")
	if k.Output != "avg:web-1" || k.State != "{avg:web-1}:env" || k.Meta != "{avg:web-1}:env:meta" {
		t.Fatalf("keys %+v", k)
	}
	if k.Slot != redisconn.KeySlot("avg:web-1") {
		t.Fatalf("slot %d is not the output's", k.Slot)
	}
	// Braces keep their hash-tag meaning.
	l, _ = NewLayout("m:?:*", "avg:{*}", OutputSet, "fn")
	if k := l.Keys("m:x:web{1}"); k.Output != "avg:{web{1}}" || redisconn.KeySlot(k.State) != redisconn.KeySlot(k.Output) {
		t.Fatalf("tagged keys %+v", k)
	}
	// Fan-in: every state in the stream's slot.
	l, _ = NewLayout("metrics:*", "all", OutputXAdd, "fn")
	if k := l.Keys("metrics:a"); k.State != "{all}:env:metrics:a" || k.Slot != redisconn.KeySlot("all") {
		t.Fatalf("fan-in keys %+v", k)
	}
}

func TestLayoutRefusals(t *testing.T) {
	for _, c := range []struct {
		pattern, output string
		mode            OutputMode
	}{
		{"metrics:*", "avg", OutputSet},           // fixed output in SET mode
		{"metrics:*:*", "avg:*", OutputSet},       // two stars: what would '*' be?
		{"metrics:*", "metrics:avg:*", OutputSet}, // outputs would be inputs
		{"*", "all", OutputXAdd},                  // so would the state
	} {
		if _, err := NewLayout(c.pattern, c.output, c.mode, "fn"); err == nil {
			t.Errorf("NewLayout(%q, %q, %s) accepted", c.pattern, c.output, c.mode)
		}
	}
	if _, err := NewLayout("metrics:*", "avg", OutputSet, "fn"); !IsFixedOutput(err) {
		t.Errorf("fixed output: %v", err)
	}
}

func TestSlotTagsAndPartitions(t *testing.T) {
	for _, s := range []int{0, 1, 8191, 16383} {
		if got := redisconn.KeySlot(SlotTag(s) + "x"); got != s {
			t.Errorf("SlotTag(%d) hashes to %d", s, got)
		}
	}
	for _, n := range []int{1, 3, 64, 16384} {
		for p := range n {
			if got := PartitionOf(FirstSlot(p, n), n); got != p {
				t.Fatalf("n=%d: first slot of partition %d is in %d", n, p, got)
			}
		}
	}
}

func TestAssignIsBalancedAndStable(t *testing.T) {
	live := []string{"a", "b", "c"}
	one := Assign(live, 64)
	count := map[string]int{}
	for _, m := range one {
		count[m]++
	}
	for _, m := range live {
		if count[m] < 21 || count[m] > 22 {
			t.Fatalf("shares %v of 64 partitions", count)
		}
	}
	four := Assign(append(live, "d"), 64)
	moved := 0
	for p := range one {
		if one[p] != four[p] {
			moved++
		}
	}
	if moved > 32 {
		t.Fatalf("a fourth member moved %d of 64 partitions", moved)
	}
}
