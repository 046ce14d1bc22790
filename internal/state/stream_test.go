package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/redistest"
)

// newStreamStore starts Redis with stream "in" holding n entries delivered to consumer "c"
// of group "g", and returns a store for it with the given output mode.
func newStreamStore(t *testing.T, mode OutputMode, n int) (*StreamStore, *redistest.Server, []string) {
	t.Helper()
	s := redistest.Start(t)
	st, err := NewStreamStore(StreamOptions{Client: s.Client(), Stream: "in", Group: "g", StateKey: "{out}:env",
		Output: "out", OutputMode: mode, OutputMaxLen: 100, DeadLetter: "{in}:dead", DeadLetterMaxLen: 0})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range n {
		ids[i] = s.Do("XADD", "in", "*", "data", fmt.Sprintf(`{"v":%d}`, i))
	}
	s.Do("XGROUP", "CREATE", "in", "g", "0")
	if n > 0 {
		s.Do("XREADGROUP", "GROUP", "g", "c", "COUNT", "100", "STREAMS", "in", ">")
	}
	return st, s, ids
}

func xrange(t *testing.T, s *redistest.Server, key string) []rueidis.XRangeEntry {
	t.Helper()
	c := s.Client()
	es, err := c.Do(context.Background(), c.B().Xrange().Key(key).Start("-").End("+").Build()).AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestNewStreamStoreValidates(t *testing.T) {
	s := redistest.Start(t)
	good := StreamOptions{Client: s.Client(), Stream: "in", Group: "g", StateKey: "k", Output: "o", OutputMode: OutputXAdd, DeadLetter: "d"}
	for name, mutate := range map[string]func(*StreamOptions){
		"client": func(o *StreamOptions) { o.Client = nil },
		"stream": func(o *StreamOptions) { o.Stream = "" },
		"state":  func(o *StreamOptions) { o.StateKey = "" },
		"output": func(o *StreamOptions) { o.Output = "" },
		"dead":   func(o *StreamOptions) { o.DeadLetter = "" },
		"mode":   func(o *StreamOptions) { o.OutputMode = "append" },
		"maxlen": func(o *StreamOptions) { o.OutputMaxLen = -1 },
	} {
		o := good
		mutate(&o)
		if _, err := NewStreamStore(o); err == nil {
			t.Errorf("%s: invalid options accepted", name)
		}
	}
	st, err := NewStreamStore(good)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(st.Keys(), " "); got != "in k k:meta d o" {
		t.Fatalf("keys = %s", got)
	}
	good.OutputMode = OutputPublish
	st, _ = NewStreamStore(good)
	if got := strings.Join(st.Keys(), " "); got != "in k k:meta d" {
		t.Fatalf("publish keys = %s (a channel is not a key)", got)
	}
}

func TestStreamCommitAndLoad(t *testing.T) {
	st, s, ids := newStreamStore(t, OutputXAdd, 3)
	ctx := context.Background()
	snap, pending, err := st.Load(ctx, "c", ids)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != 0 || len(snap.Fields) != 0 || len(pending) != 3 || !pending[0] || !pending[2] {
		t.Fatalf("fresh load: %+v pending %v", snap, pending)
	}
	at := time.Date(2026, 11, 25, 18, 0, 0, 5, time.UTC)
	res, err := st.Commit(ctx, StreamCommit{
		CheckVersion: true, Version: 0,
		Entries:    []StreamEntry{{ID: ids[0], Output: []byte(`{"o":0}`)}, {ID: ids[1]}},
		Dead:       []DeadEntry{{ID: ids[2], Fields: []string{"data", `{"v":2}`}, Error: "boom", Attempts: 5}},
		Set:        map[string][]byte{"n": []byte("2"), "s": []byte(`"x"`)},
		Executions: 2, LastEntry: ids[2], At: at, Handler: "h1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 1 || res.Acked != 2 || res.DeadLettered != 1 {
		t.Fatalf("committed %+v", res)
	}
	out := xrange(t, s, "out")
	if len(out) != 1 || out[0].FieldValues["data"] != `{"o":0}` || out[0].FieldValues["source"] != ids[0] {
		t.Fatalf("output stream %+v (a nil output writes nothing)", out)
	}
	dead := xrange(t, s, "{in}:dead")
	if len(dead) != 1 || dead[0].FieldValues["data"] != `{"v":2}` || dead[0].FieldValues[DeadFieldSource] != ids[2] ||
		dead[0].FieldValues[DeadFieldError] != "boom" || dead[0].FieldValues[DeadFieldAttempts] != "5" {
		t.Fatalf("dead letters %+v", dead)
	}
	if got := s.Do("XPENDING", "in", "g"); !strings.HasPrefix(got, "[0 ") {
		t.Fatalf("still pending: %s", got)
	}
	snap, pending, err = st.Load(ctx, "c", ids[:1])
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != 1 || snap.Fields["s"] != `"x"` || snap.Executions != 2 || !snap.LastExecution.Equal(at) ||
		snap.LastEntry != ids[2] || pending[0] {
		t.Fatalf("loaded %+v pending %v", snap, pending)
	}

	// A commit against an old version writes nothing.
	id := s.Do("XADD", "in", "*", "data", "{}")
	s.Do("XREADGROUP", "GROUP", "g", "c", "STREAMS", "in", ">")
	_, err = st.Commit(ctx, StreamCommit{CheckVersion: true, Version: 0, Del: []string{"s"},
		Entries: []StreamEntry{{ID: id, Output: []byte(`1`)}}, At: at})
	if !IsVersionConflict(err) || !strings.Contains(err.Error(), "found 1") {
		t.Fatalf("stale commit = %v", err)
	}
	if len(xrange(t, s, "out")) != 1 || s.Do("HGET", "{out}:env", "s") != `"x"` || s.Do("HGET", "{out}:env:meta", "version") != "1" {
		t.Fatal("a conflicting commit wrote something")
	}
	if _, pending, _ := st.Load(ctx, "c", []string{id}); !pending[0] {
		t.Fatal("a conflicting commit acknowledged its entry")
	}
}

// TestStreamCommitCapsOutput: an xadd output stays near OutputMaxLen (100 here) however many
// entries the commits add, and every commit's outputs are added.
func TestStreamCommitCapsOutput(t *testing.T) {
	st, s, _ := newStreamStore(t, OutputXAdd, 1)
	ctx := context.Background()
	c := s.Client()
	for batch := range 3 {
		var entries []StreamEntry
		for i := range 100 {
			id, err := c.Do(ctx, c.B().Xadd().Key("in").Id("*").FieldValue().FieldValue("data", "{}").Build()).ToString()
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, StreamEntry{ID: id, Output: []byte(strconv.Itoa(batch*100 + i))})
		}
		s.Do("XREADGROUP", "GROUP", "g", "c", "COUNT", "100", "STREAMS", "in", ">")
		if _, err := st.Commit(ctx, StreamCommit{Entries: entries, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	out := xrange(t, s, "out")
	if len(out) < 100 || len(out) >= 300 || out[len(out)-1].FieldValues["data"] != "299" {
		t.Fatalf("%d outputs, the last %v: want at least the cap (100), fewer than the 300 added, the newest kept",
			len(out), out[len(out)-1].FieldValues)
	}
	if added := s.Do("XINFO", "STREAM", "out"); !strings.Contains(added, "entries-added:300") {
		t.Fatalf("XINFO STREAM out: %s, want 300 entries added", added)
	}
}

func TestStreamCommitSkipsEntriesAckedElsewhere(t *testing.T) {
	st, s, ids := newStreamStore(t, OutputXAdd, 2)
	s.Do("XACK", "in", "g", ids[0]) // another replica committed it
	res, err := st.Commit(context.Background(), StreamCommit{
		Entries: []StreamEntry{{ID: ids[0], Output: []byte(`"dup"`)}, {ID: ids[1], Output: []byte(`"ok"`)}},
		Dead:    []DeadEntry{{ID: ids[0], Error: "x", Attempts: 1}},
		At:      time.Now(), Executions: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked != 1 || res.DeadLettered != 0 {
		t.Fatalf("committed %+v", res)
	}
	out := xrange(t, s, "out")
	if len(out) != 1 || out[0].FieldValues["source"] != ids[1] {
		t.Fatalf("outputs %+v: an entry acknowledged elsewhere was written again", out)
	}
	if s.Do("EXISTS", "{in}:dead") != "0" {
		t.Fatal("an entry acknowledged elsewhere was dead-lettered")
	}
}

func TestStreamCommitSetWritesLastOutput(t *testing.T) {
	st, s, ids := newStreamStore(t, OutputSet, 3)
	_, err := st.Commit(context.Background(), StreamCommit{
		Entries: []StreamEntry{{ID: ids[0], Output: []byte(`1`)}, {ID: ids[1], Output: []byte(`2`)}, {ID: ids[2]}},
		At:      time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Do("GET", "out"); got != "2" {
		t.Fatalf("out = %q, want the last non-nil output", got)
	}
}

func TestStreamLoadReportsOwnership(t *testing.T) {
	st, s, ids := newStreamStore(t, OutputXAdd, 3)
	s.Do("XCLAIM", "in", "g", "other", "0", ids[1])
	s.Do("XACK", "in", "g", ids[2])
	_, pending, err := st.Load(context.Background(), "c", ids)
	if err != nil {
		t.Fatal(err)
	}
	if !pending[0] || pending[1] || pending[2] {
		t.Fatalf("pending = %v, want [true false false]", pending)
	}
	s.Do("HSET", "{out}:env", "bad", "{")
	if _, _, err := st.Load(context.Background(), "c", nil); !IsCorrupt(err) {
		t.Fatalf("corrupt state loaded: %v", err)
	}
}

// fullCommit is a commit touching every key the script writes, so that a write made before
// a failing one would show.
func fullCommit(ids []string) StreamCommit {
	return StreamCommit{
		Entries:    []StreamEntry{{ID: ids[0], Output: []byte(`{"o":0}`)}, {ID: ids[1], Output: []byte(`{"o":1}`)}},
		Dead:       []DeadEntry{{ID: ids[2], Fields: []string{"data", `{"v":2}`}, Error: "boom", Attempts: 5}},
		Set:        map[string][]byte{"n": []byte("2")},
		Executions: 2, LastEntry: ids[2], At: time.Now(), Handler: "h1",
	}
}

func TestStreamCommitRefusedWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name, key string
		mode      OutputMode
		setup     []string // the command that breaks the key
		want      string   // in the error
	}{
		{"xadd output holds a string", "out", OutputXAdd, []string{"SET", "out", "from key mode"}, "WRONGTYPE eventrt: output key 'out' holds a string, not a stream"},
		{"set output holds a hash", "out", OutputSet, []string{"HSET", "out", "f", "v"}, "holds a hash, not a string"},
		{"dead letter holds a list", "{in}:dead", OutputXAdd, []string{"RPUSH", "{in}:dead", "x"}, "dead-letter key '{in}:dead' holds a list, not a stream"},
		{"state holds a string", "{out}:env", OutputPublish, []string{"SET", "{out}:env", "x"}, "state key '{out}:env' holds a string"},
		{"meta holds a set", "{out}:env:meta", OutputXAdd, []string{"SADD", "{out}:env:meta", "x"}, "meta key '{out}:env:meta' holds a set"},
		{"meta counter not an integer", "{out}:env:meta", OutputXAdd, []string{"HSET", "{out}:env:meta", "executions", "+5"}, "field executions is not an integer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, s, ids := newStreamStore(t, tc.mode, 3)
			s.Do(tc.setup...)
			before := s.Do("DUMP", tc.key)
			_, err := st.Commit(context.Background(), fullCommit(ids))
			var re *RefusedError
			if !IsRefused(err) || !errors.As(err, &re) || re.Key != tc.key || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Commit = %v, want a refusal naming %s (%q)", err, tc.key, tc.want)
			}
			if got := s.Do("XPENDING", "in", "g"); !strings.HasPrefix(got, "[3 ") {
				t.Fatalf("XPENDING = %s: a refused commit acknowledged entries", got)
			}
			if s.Do("DUMP", tc.key) != before {
				t.Fatalf("the offending key %s changed", tc.key)
			}
			for _, k := range []string{"out", "{out}:env", "{out}:env:meta", "{in}:dead"} {
				if k != tc.key && s.Do("EXISTS", k) != "0" {
					t.Fatalf("a refused commit wrote %s", k)
				}
			}
		})
	}
}

func TestStreamCommitFoldsLargeDeadEntry(t *testing.T) {
	st, s, ids := newStreamStore(t, OutputXAdd, 4)
	huge := make([]string, 0, 2*5000+2)
	huge = append(huge, "data", `{"v":`)
	for i := range 5000 {
		huge = append(huge, fmt.Sprintf("f%d", i), fmt.Sprintf("<v%d>", i))
	}
	atLimit := make([]string, 0, 2*DeadFoldFields)
	for i := range DeadFoldFields {
		atLimit = append(atLimit, fmt.Sprintf("g%d", i), "x")
	}
	res, err := st.Commit(context.Background(), StreamCommit{
		Entries: []StreamEntry{{ID: ids[0], Output: []byte(`0`)}, {ID: ids[2], Output: []byte(`2`)}},
		Dead: []DeadEntry{
			{ID: ids[1], Fields: huge, Error: "decode", Attempts: 1},
			{ID: ids[3], Fields: atLimit, Error: "boom", Attempts: 5},
		},
		At: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked != 2 || res.DeadLettered != 2 {
		t.Fatalf("committed %+v", res)
	}
	if out := xrange(t, s, "out"); len(out) != 2 || out[0].FieldValues["source"] != ids[0] || out[1].FieldValues["source"] != ids[2] {
		t.Fatalf("outputs %+v", out)
	}
	dead := xrange(t, s, "{in}:dead")
	if len(dead) != 2 {
		t.Fatalf("%d dead letters", len(dead))
	}
	d := dead[0].FieldValues
	if len(d) != 4 || d[DeadFieldSource] != ids[1] || d[DeadFieldError] != "decode" || d[DeadFieldAttempts] != "1" {
		t.Fatalf("folded dead letter has fields %d: source %q error %q attempts %q", len(d), d[DeadFieldSource], d[DeadFieldError], d[DeadFieldAttempts])
	}
	var folded []string
	if err := json.Unmarshal([]byte(d[DeadFieldFields]), &folded); err != nil {
		t.Fatalf("%s: %v", DeadFieldFields, err)
	}
	if !slices.Equal(folded, huge) {
		t.Fatalf("%s holds %d strings, want the entry's %d in order", DeadFieldFields, len(folded), len(huge))
	}
	if strings.Contains(d[DeadFieldFields], `\u003c`) {
		t.Fatal("folded fields are HTML-escaped")
	}
	d = dead[1].FieldValues
	if len(d) != DeadFoldFields+3 || d["g0"] != "x" || d[DeadFieldFields] != "" || d[DeadFieldSource] != ids[3] {
		t.Fatalf("an entry of %d pairs was folded or mangled: %d fields", DeadFoldFields, len(d))
	}
	if got := s.Do("XPENDING", "in", "g"); !strings.HasPrefix(got, "[0 ") {
		t.Fatalf("still pending: %s", got)
	}
}

// The script's own bound on a dead entry holds even for a caller that does not fold.
func TestStreamCommitScriptBoundsDeadFields(t *testing.T) {
	st, s, ids := newStreamStore(t, OutputXAdd, 2)
	args := []string{"g", "", "xadd", "", "0", "0", "", "", "0", "", "", "1", ids[0], "out", "0", "0", "1",
		ids[1], "err", "1", strconv.Itoa(2*DeadFoldFields + 2)}
	for i := range DeadFoldFields + 1 {
		args = append(args, fmt.Sprintf("f%d", i), "v")
	}
	err := commitScript.Exec(context.Background(), s.Client(), st.Keys(), args).Error()
	if err == nil || !strings.Contains(err.Error(), "eventrt: dead-letter entry "+ids[1]) {
		t.Fatalf("script = %v, want a refusal of the dead entry", err)
	}
	if st.refusedKey(err) != "{in}:dead" {
		t.Fatalf("refused key = %q", st.refusedKey(err))
	}
	if got := s.Do("XPENDING", "in", "g"); !strings.HasPrefix(got, "[2 ") || s.Do("EXISTS", "out") != "0" {
		t.Fatalf("a refused script wrote something: XPENDING %s", got)
	}
}
