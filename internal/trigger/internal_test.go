package trigger

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/redisconn"
)

func TestMergeFlags(t *testing.T) {
	cases := []struct{ current, merged, missing string }{
		{"", "Kg$h", "Kg$h"},
		{"AKE", "AKE", ""},
		{"AE", "AEK", "K"},
		{"K$", "K$gh", "gh"},
		{"Ex", "ExKg$h", "Kg$h"},
		{"Kg$hn", "Kg$hn", ""},
		{"KA", "KA", ""},
	}
	for _, c := range cases {
		merged, missing := mergeFlags(c.current, "Kg$h")
		if merged != c.merged || missing != c.missing {
			t.Errorf("mergeFlags(%q) = %q, %q; want %q, %q", c.current, merged, missing, c.merged, c.missing)
		}
	}
	if merged, missing := mergeFlags("", "Khh"); merged != "Kh" || missing != "Kh" {
		t.Errorf("duplicate required flags: %q, %q", merged, missing)
	}
	if merged, _ := mergeFlags("A", "Kt"); merged != "AK" {
		t.Errorf("A covers t: got %q", merged)
	}
}

func TestIsWriteEvent(t *testing.T) {
	for _, ev := range []string{"set", "hset", "hdel", "hincrby", "append", "incrby", "setrange",
		"rename_to", "copy_to", "restore", "move_to", "hexpired", "some_module_event"} {
		if !isWriteEvent(ev) {
			t.Errorf("%s: not a write, want write", ev)
		}
	}
	for _, ev := range []string{"del", "expired", "evicted", "rename_from", "move_from", "expire", "persist", "new"} {
		if isWriteEvent(ev) {
			t.Errorf("%s: a write, want ignored", ev)
		}
	}
}

func TestIsJSONObject(t *testing.T) {
	yes := []string{`{}`, ` {"a":[1,{"b":null}]}`, "\n{\"a\":1}\t"}
	no := []string{``, ` `, `run`, `[]`, `"{}"`, `{`, `{"a":1}}`, `{"a":1} {}`, `null`, `12`}
	for _, s := range yes {
		if !isJSONObject(s) {
			t.Errorf("%q: want object", s)
		}
	}
	for _, s := range no {
		if isJSONObject(s) {
			t.Errorf("%q: want not an object", s)
		}
	}
}

func TestHashTag(t *testing.T) {
	cases := map[string]string{
		"metrics":      "{metrics}",
		"fn:{user1}:x": "{user1}",
		"a{b":          "{a{b}",
		"a{}b":         "",
		"a}b":          "",
		"{x}":          "{x}",
	}
	for key, want := range cases {
		if got := hashTag(key); got != want {
			t.Errorf("hashTag(%q) = %q, want %q", key, got, want)
		}
	}
	if k := probeKey("{m}", 255); k != "eventrt:probe:{m}:ff" {
		t.Errorf("probeKey = %q", k)
	}
}

func TestIsTransient(t *testing.T) {
	if !isTransient(errors.New("dial tcp: connection refused")) {
		t.Error("network error: want transient")
	}
	if isTransient(fmt.Errorf("CONFIG GET: %w", errUnexpectedReply)) {
		t.Error("unexpected reply: want permanent")
	}
}

type nopSink struct{ n, i int }

func (s *nopSink) Notify(Kind)   { s.n++ }
func (s *nopSink) Invoke([]byte) { s.i++ }

// noClient satisfies rueidis.Client for benchmarks of code that never calls the client
// (besides Mode, which New asks).
type noClient struct{ rueidis.Client }

func (noClient) Mode() rueidis.ClientMode { return rueidis.ClientModeStandalone }

func benchWatcher(b *testing.B, sink Sink) *Watcher {
	b.Helper()
	opts := DefaultOptions()
	opts.Client, opts.InputKey, opts.Channel = noClient{}, "metrics", "eventrt:trigger:metrics"
	w, err := New(opts, sink)
	if err != nil {
		b.Fatal(err)
	}
	return w
}

// BenchmarkOnMessageKeyspace is the pipeline-goroutine cost of one keyspace event.
func BenchmarkOnMessageKeyspace(b *testing.B) {
	s := &nopSink{}
	w := benchWatcher(b, s)
	m := rueidis.PubSubMessage{Channel: w.keyspaceChannel, Message: "set"}
	b.ReportAllocs()
	for b.Loop() {
		w.onMessage(m)
	}
	if s.n == 0 {
		b.Fatal("no Notify")
	}
}

// BenchmarkOnMessageJSONObject is the pipeline-goroutine cost of an ad-hoc invocation with the
// metrics sample as payload (validation plus the copy handed to the Sink).
func BenchmarkOnMessageJSONObject(b *testing.B) {
	payload, err := os.ReadFile("../../examples/classic/metrics-sample.json")
	if err != nil {
		b.Fatalf("sample: %v", err)
	}
	s := &nopSink{}
	w := benchWatcher(b, s)
	m := rueidis.PubSubMessage{Channel: w.opts.Channel, Message: string(payload)}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		w.onMessage(m)
	}
	if s.i == 0 {
		b.Fatal("no Invoke")
	}
}

func TestTagForSlot(t *testing.T) {
	for _, slot := range []int{0, 1, 5460, 11235, redisconn.ClusterSlots - 1} {
		tag := tagForSlot(slot)
		if tag == "" || redisconn.KeySlot(probeKey(tag, 7)) != slot {
			t.Errorf("tagForSlot(%d) = %q, whose probe key is in slot %d", slot, tag, redisconn.KeySlot(probeKey(tag, 7)))
		}
	}
	// A key with a '}' but no tag cannot be wrapped: the probe key needs a found tag.
	if hashTag("a}b") != "" || redisconn.KeySlot(probeKey(tagForSlot(redisconn.KeySlot("a}b")), 1)) != redisconn.KeySlot("a}b") {
		t.Error("no probe tag in the slot of a}b")
	}
}
