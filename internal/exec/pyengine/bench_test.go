//go:build linux

package pyengine

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/cputime"
	"github.com/eventrt/eventrt/internal/exec"
)

// cpuTimes returns the CPU time (user+system) used so far by this process and by process pid.
func cpuTimes(b *testing.B, pid int) (self, other time.Duration) {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clockTicks = 100 // USER_HZ on Linux
	return self, time.Duration(ut+st) * time.Second / clockTicks
}

// BenchmarkClassicPython is one execution of the classic course handler through the engine:
// encoding input, env and context, the round trip to the worker (marshal decode, the handler,
// marshal encode), and turning the reply into JSON output and env fields.
//
// Beside ns/op (elapsed) it reports CPU time per execution, which other load on the machine
// disturbs less: go-cpu-ns/op (this process), worker-cpu-ns/op (the Python worker), and the
// handler called directly in CPython: direct-ns/op and direct-cpu-ns/op (handler alone),
// direct+json-ns/op and direct+json-cpu-ns/op (with json.loads and json.dumps, as the course
// runtime ran it).
// overhead-ns/op is ns/op - direct-ns/op; overhead-cpu-ns/op is go + worker - direct CPU.
// "map" is the input decoded by exec.DecodeInput, as eventrt's runner and stream consumer pass
// it; "raw" a json.RawMessage, which only an API caller would pass; "shm" the shared-memory
// channel, "pipes" the pipes alone; spin is SpinWait.
func BenchmarkClassicPython(b *testing.B) {
	first, _ := sampleInputs(b)
	const spin = 200 * time.Microsecond
	for _, c := range []struct {
		form      string
		pipesOnly bool
		spin      time.Duration
	}{{"map", false, spin}, {"raw", false, spin}, {"map", false, 0}, {"map", true, spin}, {"map", true, 0}} {
		transport := "shm"
		if c.pipesOnly {
			transport = "pipes"
		}
		b.Run(fmt.Sprintf("%s/%s/spin=%v", c.form, transport, c.spin), func(b *testing.B) {
			if !c.pipesOnly && !shmSupported() {
				b.Skip("no shared-memory channel on this platform")
			}
			input := any(first)
			if c.form == "map" {
				input = decodeMap(b, first)
			}
			e, _ := startEngine(b, "", Options{File: classicFile, SpinWait: c.spin, pipesOnly: c.pipesOnly, workerExtension: benchRequests(b)})
			env := map[string]any{}
			pid := e.w.cmd.Process.Pid
			// The direct cost is measured before and after the runs and the lower one kept: a
			// direct cost inflated by a noisy moment would make the overhead look smaller.
			before, err := e.MeasureDirect(exec.Call{Input: first, Env: env}, 20000)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			self0, worker0 := cpuTimes(b, pid)
			for range b.N {
				res, err := e.Run(exec.Call{Input: input, Env: env})
				if err != nil {
					b.Fatal(err)
				}
				env = res.Env
			}
			self1, worker1 := cpuTimes(b, pid)
			b.StopTimer()
			n := time.Duration(b.N)
			perOp, goCPU, workerCPU := b.Elapsed()/n, (self1-self0)/n, (worker1-worker0)/n
			d, err := e.MeasureDirect(exec.Call{Input: first, Env: env}, 20000)
			if err != nil {
				b.Fatal(err)
			}
			if before.Handler < d.Handler {
				d = before
			}
			b.ReportMetric(float64(goCPU.Nanoseconds()), "go-cpu-ns/op")
			b.ReportMetric(float64(workerCPU.Nanoseconds()), "worker-cpu-ns/op")
			b.ReportMetric(float64(d.Handler.Nanoseconds()), "direct-ns/op")
			b.ReportMetric(float64(d.WithJSON.Nanoseconds()), "direct+json-ns/op")
			b.ReportMetric(float64(d.HandlerCPU.Nanoseconds()), "direct-cpu-ns/op")
			b.ReportMetric(float64(d.WithJSONCPU.Nanoseconds()), "direct+json-cpu-ns/op")
			b.ReportMetric(float64((perOp - d.Handler).Nanoseconds()), "overhead-ns/op")
			b.ReportMetric(float64((goCPU + workerCPU - d.HandlerCPU).Nanoseconds()), "overhead-cpu-ns/op")
		})
	}
}

// BenchmarkWorkerPing is the bare round trip to the worker: one message each way, no handler.
func BenchmarkWorkerPing(b *testing.B) {
	for _, c := range []struct {
		pipesOnly bool
		spin      time.Duration
	}{{false, 200 * time.Microsecond}, {false, 0}, {true, 200 * time.Microsecond}, {true, 0}} {
		transport := "shm"
		if c.pipesOnly {
			transport = "pipes"
		}
		b.Run(fmt.Sprintf("%s/spin=%v", transport, c.spin), func(b *testing.B) {
			if !c.pipesOnly && !shmSupported() {
				b.Skip("no shared-memory channel on this platform")
			}
			e, _ := startEngine(b, "def handler(i, c):\n    return None\n", Options{SpinWait: c.spin, pipesOnly: c.pipesOnly, workerExtension: benchRequests(b)})
			ping := []byte{0, 0, 0, 0, 'P'}
			e.mu.Lock()
			defer e.mu.Unlock()
			pid := e.w.cmd.Process.Pid
			b.ResetTimer()
			self0, worker0 := cpuTimes(b, pid)
			for range b.N {
				deadline := time.Now().Add(time.Second)
				if _, kind, _, err := e.exchange(ping, &deadline); err != nil || kind != 'P' {
					b.Fatalf("ping: %q %v", kind, err)
				}
			}
			self1, worker1 := cpuTimes(b, pid)
			b.StopTimer()
			n := time.Duration(b.N)
			b.ReportMetric(float64(((self1 - self0) / n).Nanoseconds()), "go-cpu-ns/op")
			b.ReportMetric(float64(((worker1 - worker0) / n).Nanoseconds()), "worker-cpu-ns/op")
		})
	}
}

// BenchmarkGoCodec is the Go side alone for the classic handler: encoding the request and
// decoding a reply (output to JSON text, env to values and fields).
func BenchmarkGoCodec(b *testing.B) {
	first, _ := sampleInputs(b)
	e, _ := startEngine(b, "", Options{File: classicFile})
	input := decodeMap(b, first)
	res := mustRun(b, e, input, nil)
	var out, env encoder
	if err := out.jsonText(res.Output); err != nil {
		b.Fatal(err)
	}
	if err := env.value(res.Env, 0); err != nil {
		b.Fatal(err)
	}
	body := binary.LittleEndian.AppendUint32(nil, uint32(len(out.b)))
	body = append(append(body, out.b...), env.b...)
	call := exec.Call{Input: input, Env: res.Env}
	b.ReportAllocs()
	b.ResetTimer()
	cputime.ReportPerOp(b)
	for range b.N {
		envStart, err := e.encodeRun(call)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.result(body, e.req.b[envStart:len(e.req.b)-1], call.Env); err != nil {
			b.Fatal(err)
		}
	}
}
