package redisconn

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/redistest"
)

// slotKeys are keys whose slots are cross-checked against CLUSTER KEYSLOT, covering the hash
// tag rules: first '{' and the next '}', empty tags, nested braces, binary bytes.
var slotKeys = []string{
	"", "metrics", "output", "{output}:env", "{output}:env:meta", "123456789", "foo", "bar",
	"{user1000}.following", "{user1000}.followers", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}",
	"{", "}", "{}", "a}b{c}", "\x00\xff{\x80}", "fn:{user1}:x", strings.Repeat("k", 300),
}

func TestKeySlotKnownValues(t *testing.T) {
	// From the Redis Cluster specification and CLUSTER KEYSLOT's documentation.
	cases := map[string]int{"123456789": 12739, "foo": 12182, "bar": 5061, "somekey": 11058, "foo{hash_tag}": 2515}
	for key, want := range cases {
		if got := KeySlot(key); got != want {
			t.Errorf("KeySlot(%q) = %d, want %d", key, got, want)
		}
	}
	if KeySlot("{user1000}.following") != KeySlot("{user1000}.followers") {
		t.Error("keys with the same hash tag land in different slots")
	}
	if KeySlot("foo{}{bar}") == KeySlot("bar") {
		t.Error("an empty first tag must hash the whole key")
	}
	if KeySlot("foo{{bar}}zap") != KeySlot("{bar") {
		t.Error("the tag runs from the first '{' to the next '}'")
	}
}

func TestSameSlot(t *testing.T) {
	if err := SameSlot("output", "{output}:env", "{output}:env:meta", ""); err != nil {
		t.Fatalf("derived keys: %v", err)
	}
	if err := SameSlot(); err != nil {
		t.Fatalf("no keys: %v", err)
	}
	err := SameSlot("out", "{output}:env", "", "{output}:env:meta")
	if !IsCrossSlot(err) {
		t.Fatalf("err = %v, want ErrCrossSlot", err)
	}
	msg := err.Error()
	for _, want := range []string{`"out" (slot 16101)`, `"{output}:env" (slot 15865)`, `"{output}:env:meta" (slot 15865)`, "{out}"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %s", msg, want)
		}
	}
	if strings.Contains(msg, "\n") || strings.Contains(msg, `""`) {
		t.Errorf("error %q is not one line naming only the set keys", msg)
	}
}

// testSlotsOnCluster runs on the cluster of TestNewDetectsCluster (starting one takes ~2 s).
func testSlotsOnCluster(t *testing.T, cl *redistest.Cluster, c rueidis.Client) {
	t.Run("KeySlot matches CLUSTER KEYSLOT", func(t *testing.T) {
		for _, k := range slotKeys {
			got, err := c.Do(context.Background(), c.B().ClusterKeyslot().Key(k).Build()).AsInt64()
			if err != nil {
				t.Fatalf("CLUSTER KEYSLOT %q: %v", k, err)
			}
			if KeySlot(k) != int(got) {
				t.Errorf("KeySlot(%q) = %d, CLUSTER KEYSLOT = %d", k, KeySlot(k), got)
			}
		}
	})
	t.Run("CheckSameSlot on a cluster", func(t *testing.T) {
		if err := CheckSameSlot(c, "output", "{output}:env", "{output}:env:meta"); err != nil {
			t.Fatalf("derived keys: %v", err)
		}
		err := CheckSameSlot(c, "output", "state", "state:meta")
		if !IsCrossSlot(err) || !strings.Contains(err.Error(), `"output" (slot 15865)`) ||
			!strings.Contains(err.Error(), `"state" (slot 12053)`) {
			t.Fatalf("err = %v, want ErrCrossSlot naming output and state with their slots", err)
		}
		// What the error predicts is what the cluster does (rueidis' builder would panic
		// before sending, hence a raw command on the node owning the first key).
		owner := cl.NodeClient(cl.NodeForKey("output"))
		err = owner.Do(context.Background(), owner.B().Arbitrary("EVAL", "return 1", "2", "output", "state").Build()).Error()
		if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
			t.Fatalf("the cluster accepted a cross-slot script: %v", err)
		}
	})
	t.Run("CheckSameSlot on a standalone client", func(t *testing.T) {
		single := cl.NodeClient(cl.Masters()[0])
		if single.Mode() == rueidis.ClientModeCluster {
			t.Fatal("node client is a cluster client")
		}
		if err := CheckSameSlot(single, "output", "state"); err != nil {
			t.Fatalf("standalone: %v, want nil", err)
		}
		if err := CheckSameSlot(nil, "output", "state"); err != nil {
			t.Fatalf("nil client: %v, want nil", err)
		}
	})
}
