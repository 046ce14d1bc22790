package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// docTemplate is the metrics document (examples/classic/metrics-sample.json) with a hole
// where the timestamp goes, so each trial or stream entry gets its own timestamp without a
// JSON encode per document.
type docTemplate struct{ prefix, suffix []byte }

// placeholder is a timestamp no sample carries; it marks where the hole is.
const placeholder = 123456789.987654321

func loadTemplate(path string) (docTemplate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return docTemplate{}, fmt.Errorf("sample %s: %w", path, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return docTemplate{}, fmt.Errorf("sample %s: %w", path, err)
	}
	if _, ok := doc["timestamp"].(float64); !ok {
		return docTemplate{}, fmt.Errorf("sample %s: no numeric \"timestamp\" field", path)
	}
	doc["timestamp"] = placeholder
	enc, err := json.Marshal(doc)
	if err != nil {
		return docTemplate{}, fmt.Errorf("sample %s: %w", path, err)
	}
	mark := []byte(strconv.FormatFloat(placeholder, 'f', -1, 64)) // encoding/json's form in this range
	i := bytes.Index(enc, mark)
	if i < 0 {
		return docTemplate{}, fmt.Errorf("sample %s: timestamp placeholder %s not found after encoding", path, mark)
	}
	return docTemplate{prefix: enc[:i], suffix: enc[i+len(mark):]}, nil
}

// Doc is the document with timestamp ts.
func (t docTemplate) Doc(ts float64) []byte {
	b := make([]byte, 0, len(t.prefix)+len(t.suffix)+24)
	b = append(b, t.prefix...)
	b = strconv.AppendFloat(b, ts, 'f', -1, 64)
	return append(b, t.suffix...)
}

// timestamps hands out distinct timestamps (now, then 1 ms apart), so every trial's input
// differs from every earlier one and its output can be told apart.
type timestamps struct{ next float64 }

func newTimestamps() *timestamps {
	return &timestamps{next: float64(time.Now().UnixMilli()) / 1000}
}

func (t *timestamps) Next() float64 {
	t.next = math.Round((t.next+0.001)*1000) / 1000
	return t.next
}

// probe is the measuring client for one input/output pair: it SETs the input and waits for
// the output key's own keyspace notification, then GETs the output to check the run was this
// trial's (its timestamp is the one written).
type probe struct {
	c       rueidis.Client
	in, out string
	events  chan time.Time
	cancel  context.CancelFunc
	done    chan error
}

func newProbe(ctx context.Context, c rueidis.Client, in, out string) (*probe, error) {
	ctx, cancel := context.WithCancel(ctx)
	p := &probe{c: c, in: in, out: out, events: make(chan time.Time, 64), cancel: cancel, done: make(chan error, 1)}
	ch := "__keyspace@0__:" + out
	go func() {
		p.done <- c.Receive(ctx, c.B().Subscribe().Channel(ch).Build(), func(m rueidis.PubSubMessage) {
			if m.Message != "set" {
				return
			}
			// The arrival time is taken here, on rueidis' reader goroutine, so the time the
			// measuring goroutine takes to wake up is not counted. Never block the reader.
			select {
			case p.events <- time.Now():
			default:
			}
		})
	}()
	if err := waitSubscribed(ctx, c, nil, ch, 5*time.Second); err != nil {
		cancel()
		return nil, err
	}
	return p, nil
}

func (p *probe) Close() {
	p.cancel()
	<-p.done
}

// errTrialTimeout is a trial whose output did not come in time.
var errTrialTimeout = errors.New("no output in time")

// Trial writes doc (carrying timestamp ts) to the input and returns the time until the
// output key's notification of the run that carries ts.
func (p *probe) Trial(ctx context.Context, doc []byte, ts float64, timeout time.Duration) (time.Duration, error) {
	for drained := false; !drained; {
		select {
		case <-p.events:
		default:
			drained = true
		}
	}
	start := time.Now()
	if err := p.c.Do(ctx, p.c.B().Set().Key(p.in).Value(rueidis.BinaryString(doc)).Build()).Error(); err != nil {
		return 0, fmt.Errorf("SET %s: %w", p.in, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case at := <-p.events:
			if at.Before(start) {
				continue // a notification from before this trial, left in the channel
			}
			raw, err := p.c.Do(ctx, p.c.B().Get().Key(p.out).Build()).AsBytes()
			if err != nil {
				return 0, fmt.Errorf("GET %s: %w", p.out, err)
			}
			if got, ok := outputTimestamp(raw); ok && got == ts {
				return at.Sub(start), nil
			}
		case <-t.C:
			return 0, fmt.Errorf("%w: %s carried no output with timestamp %s within %v", errTrialTimeout,
				p.out, strconv.FormatFloat(ts, 'f', -1, 64), timeout)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func outputTimestamp(raw []byte) (float64, bool) {
	var v struct {
		Timestamp *float64 `json:"timestamp"`
	}
	if json.Unmarshal(raw, &v) != nil || v.Timestamp == nil {
		return 0, false
	}
	return *v.Timestamp, true
}

// latencyStats summarises one row's trials.
type latencyStats struct {
	N             int
	P50, P99, Max time.Duration
}

// summarize uses nearest-rank percentiles: p99 of 20 trials is the largest.
func summarize(d []time.Duration) latencyStats {
	if len(d) == 0 {
		return latencyStats{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return latencyStats{N: len(s), P50: rank(0.50), P99: rank(0.99), Max: s[len(s)-1]}
}

// floorMain is the floor program: on each keyspace notification of the input key it GETs the
// input and SETs it unchanged as the output. No decoding, no evaluation, no state: what any
// notification-driven runtime costs at least on this machine.
func floorMain(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "redis host:port")
	in := fs.String("in", "", "input key")
	out := fs.String("out", "", "output key")
	maxRun := fs.Duration("max-duration", 30*time.Minute, "stop by itself after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *addr == "" || *in == "" || *out == "" || *in == *out {
		fmt.Fprintln(stderr, "floor: -addr, -in and -out are required, and -in must differ from -out")
		return 2
	}
	c, err := newClient(*addr)
	if err != nil {
		fmt.Fprintf(stderr, "floor: %v\n", err)
		return 1
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, *maxRun)
	defer cancel()
	if err := floorLoop(ctx, c, *in, *out); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "floor: %v\n", err)
		return 1
	}
	return 0
}

func floorLoop(ctx context.Context, c rueidis.Client, in, out string) error {
	wake := make(chan struct{}, 1)
	subErr := make(chan error, 1)
	go func() {
		subErr <- c.Receive(ctx, c.B().Subscribe().Channel("__keyspace@0__:"+in).Build(), func(m rueidis.PubSubMessage) {
			if m.Message == "set" {
				select { // coalesce: one pending wake-up is enough
				case wake <- struct{}{}:
				default:
				}
			}
		})
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-subErr:
			return fmt.Errorf("subscribe to %s: %w", in, err)
		case <-wake:
			v, err := c.Do(ctx, c.B().Get().Key(in).Build()).AsBytes()
			if rueidis.IsRedisNil(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("GET %s: %w", in, err)
			}
			if err := c.Do(ctx, c.B().Set().Key(out).Value(rueidis.BinaryString(v)).Build()).Error(); err != nil {
				return fmt.Errorf("SET %s: %w", out, err)
			}
		}
	}
}
