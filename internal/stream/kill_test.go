package stream

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// The helper process: a consumer that commits two batches and then stops before the third
// commit, waiting to be killed.
const helperEnv = "EVENTRT_STREAM_KILL_HELPER"

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		os.Exit(killHelper(addr))
	}
	os.Exit(m.Run())
}

func killHelper(addr string) int {
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		fmt.Println("client:", err)
		return 1
	}
	src := counterSrc
	p, err := compileSource(src)
	if err != nil {
		fmt.Println("compile:", err)
		return 1
	}
	commits := 0
	o := Options{Name: "test.fn", Client: client, Stream: "in", Output: "out", Consumer: "c1", Batch: 50,
		Block: 50 * time.Millisecond,
		BeforeCommit: func(ids []string) error {
			if commits++; commits == 3 {
				fmt.Println("stopped before commit", len(ids))
				select {} // killed here
			}
			return nil
		}}
	c, err := New(o, p)
	if err != nil {
		fmt.Println("new:", err)
		return 1
	}
	fmt.Println("run:", c.Run(context.Background()))
	return 1
}

func TestKill9BetweenReadAndCommit(t *testing.T) {
	h := newHarness(t)
	ids := h.addValues("in", 0, 300)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+h.srv.Addr())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l := <-lines:
		if !strings.HasPrefix(l, "stopped before commit") {
			t.Fatalf("helper: %s", l)
		}
	case <-time.After(waitTimeout):
		t.Fatal("helper never reached its third commit")
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if got := h.counterValue("{out}:env"); got != "100" {
		t.Fatalf("counter after the kill = %s, want the 100 entries of two committed batches", got)
	}
	if n := h.pendingCount("in", DefaultGroup); n < 50 {
		t.Fatalf("%d pending after the kill, want at least the 50 of the uncommitted batch", n)
	}

	// The same consumer name restarts: its pending entries come first.
	h.start(h.newConsumer(h.options("c1"), compile(t, counterSrc)))
	h.await("200 acked", func() bool { return h.total(acked) >= 200 })
	checkExactlyOnce(t, h.outputs("out"), ids)
	if got := h.counterValue("{out}:env"); got != "300" {
		t.Fatalf("counter = %s, want 300", got)
	}
}
