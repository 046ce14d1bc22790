//go:build linux && amd64

package pyengine

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestShmSlotBoundary: messages of every size around a shared-memory slot's, each way (the
// request carries the pad, the reply echoes it), come through whole: those that fit take the
// slot, the others the pipes.
func TestShmSlotBoundary(t *testing.T) {
	e, _ := startEngine(t, `
def handler(input, context):
    return {"echo": input["pad"]}
`, Options{SpinWait: 200 * time.Microsecond})
	// run runs with a pad of n bytes and reports whether the request and the reply took the
	// pipes.
	run := func(n int) (reqPiped, repPiped bool) {
		t.Helper()
		pad := strings.Repeat(string(rune('a'+n%26)), n)
		res := mustRun(t, e, json.RawMessage(`{"pad":"`+pad+`"}`), nil)
		if want := `{"echo":"` + pad + `"}`; string(res.Output) != want {
			t.Fatalf("pad of %d bytes: output of %d bytes, want %d", n, len(res.Output), len(want))
		}
		s := e.w.shm
		return s.word(offReqLen).Load() == inPipe, s.word(offRepLen).Load() == inPipe
	}
	// What a request and a reply hold besides the pad (context, framing), from a run whose pad
	// is long enough to be encoded as a large one is.
	const probe = 1000
	run(probe)
	reqExtra, repExtra := len(e.req.b)-frameHeader-probe, len(e.w.buf)-probe
	if reqExtra <= 0 || repExtra <= 0 {
		t.Fatalf("request and reply hold %d and %d bytes besides the pad, want more than none", reqExtra, repExtra)
	}
	for _, c := range []struct {
		name  string
		extra int
		reply bool
	}{{"request", reqExtra, false}, {"reply", repExtra, true}} {
		var slot, pipe int
		for n := shmSlot - c.extra - 2; n <= shmSlot-c.extra+2; n++ {
			reqPiped, repPiped := run(n)
			piped := reqPiped
			if c.reply {
				piped = repPiped
			}
			if fits := n+c.extra <= shmSlot; piped == fits {
				t.Errorf("%s of %d bytes: piped %v, want %v (slot %d)", c.name, n+c.extra, piped, !fits, shmSlot)
			}
			if piped {
				pipe++
			} else {
				slot++
			}
		}
		if slot == 0 || pipe == 0 {
			t.Errorf("%s sizes around the slot: %d in the slot, %d through the pipes; want both", c.name, slot, pipe)
		}
	}
}

// TestShmRequestToDeadWorkerIsUnsent: a request left for a worker that died while it polled
// for the next one (so it had not asked for a doorbell) is reported as never sent, which lets
// the engine give it to a new worker, not as failed during a run.
func TestShmRequestToDeadWorkerIsUnsent(t *testing.T) {
	e, _ := startEngine(t, modesHandler, Options{SpinWait: 5 * time.Second})
	pid := pidOf(t, mustRun(t, e, map[string]any{}, nil))
	e.mu.Lock()
	defer e.mu.Unlock()
	w := e.w
	if w.shm.word(offPyAwake).Load() != 1 {
		t.Fatal("the worker is not polling for its next request")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the killed worker was not reaped")
	}
	_, _, err := e.roundTrip(w, []byte{0, 0, 0, 0, 'P'}, time.Now().Add(5*time.Second))
	if err == nil || !strings.Contains(err.Error(), "exited before the run") {
		t.Fatalf("request to the dead worker: %v, want it reported as never sent", err)
	}
}

// TestShmUnavailableFallsBackToPipes: where the channel cannot be made (a sandbox refusing
// memfd_create, say), the worker speaks over the pipes, one warning says so, and later workers
// do not try again.
func TestShmUnavailableFallsBackToPipes(t *testing.T) {
	logs := newLogRecorder()
	attempts := 0
	e, rs := startEngine(t, modesHandler, Options{Logger: slog.New(logs), SpinWait: 200 * time.Microsecond,
		newShm: func() (*shm, []*os.File, error) {
			attempts++
			return nil, nil, errors.New("memfd_create: operation not permitted")
		}})
	pid := pidOf(t, mustRun(t, e, map[string]any{}, nil))
	e.mu.Lock()
	over := e.w.shmOn
	e.mu.Unlock()
	if over {
		t.Fatal("the worker uses a shared-memory channel that could not be made")
	}
	logs.waitRecord(t, "python worker: no shared memory, requests take the pipes")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	if got := pidOf(t, mustRun(t, e, map[string]any{}, nil)); got == pid {
		t.Error("the dead worker was not replaced")
	}
	if r := rs.get(); len(r) != 1 || attempts != 1 {
		t.Errorf("restarts %v, channel attempts %d; want one restart and one attempt", r, attempts)
	}
}

// TestShmLayout checks what word's unsafe conversion assumes of the region: each word is an
// 8-byte aligned uint64 (sync/atomic's requirement; the region itself is page-aligned) on a
// cache line of its own, inside the header, and the layout the worker gets names each once.
func TestShmLayout(t *testing.T) {
	s, child, err := newShm()
	if err != nil {
		t.Skipf("no shared memory here: %v", err)
	}
	defer func() {
		for _, f := range child {
			f.Close()
		}
		s.close()
	}()
	if base := uintptr(unsafe.Pointer(&s.mem[0])); base%uintptr(os.Getpagesize()) != 0 {
		t.Fatalf("region at %#x is not page-aligned", base)
	}
	words := shmLayout()["words"].(map[string]int)
	lines := map[int]string{}
	for name, off := range words {
		if off%8 != 0 || off+8 > shmHeader {
			t.Errorf("%s at %d: not an aligned word inside the %d-byte header", name, off, shmHeader)
		}
		if other, dup := lines[off/64]; dup {
			t.Errorf("%s and %s share a cache line", name, other)
		}
		lines[off/64] = name
		s.word(off).Store(uint64(off) + 1)
	}
	if len(words) != 7 {
		t.Errorf("the layout names %d words, want the 7 of shm.go", len(words))
	}
	for name, off := range words {
		if got := binary.LittleEndian.Uint64(s.mem[off:]); got != uint64(off)+1 {
			t.Errorf("%s: the word stored %d, the bytes hold %d", name, off+1, got)
		}
	}
}
