//go:build linux && amd64

package pyengine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The shared-memory channel carries requests and replies between eventrt and its worker
// without a system call on either side while both are awake: the sender copies the message
// into a slot and publishes a sequence number; the receiver, polling that number, sees it
// within a microsecond. A pipe round trip costs 10–20 µs on a virtual machine, more than the
// whole rest of a run of the classic handler, and polling the pipes still pays several system
// calls per message.
//
// A receiver that stopped polling sleeps on a doorbell pipe; the sender rings it (one byte)
// only when the receiver's awake flag says it may be asleep. The flag and the sequence number
// follow Dekker's pattern, which needs a full barrier between each side's store and its load:
// Go's atomic store is one (XCHG), and the worker makes one by taking a lock (a LOCK-prefixed
// instruction). A message larger than its slot goes through the frame pipe instead, announced
// by the same sequence number.
//
// Python has no atomics: the worker's plain stores reach the other side in program order only
// on a machine with total store order, so the channel exists only on amd64 (elsewhere the
// pipes carry everything, as before).

// Offsets in the shared region, each word on its own cache line. Go writes reqSeq, reqLen and
// goAwake; the worker writes repSeq, repLen, pyAwake and reqTaken (the number of the last
// request it took, so that a request a dead worker never saw can go to its successor). The
// slots follow the header.
const (
	offReqSeq   = 0
	offReqLen   = 64
	offPyAwake  = 128
	offRepSeq   = 192
	offRepLen   = 256
	offGoAwake  = 320
	offReqTaken = 384
	shmHeader   = 4096
	// shmSlot is the size of each direction's slot: a request of the classic handler is about
	// 1.5 KB; larger messages take the frame pipe.
	shmSlot = 256 << 10
	// inPipe in a length word: the message is a frame on the pipe.
	inPipe = 1 << 63
	// maxBellWait bounds one sleep on the doorbell: a lost ring (which the barriers rule out)
	// could cost at most this much.
	maxBellWait = 10 * time.Millisecond
)

// shmLayout is the shared region's layout as the worker learns it in the handshake: the one
// place it is written down.
func shmLayout() map[string]any {
	return map[string]any{"header": shmHeader, "slot": shmSlot, "words": map[string]int{
		"req_seq": offReqSeq, "req_len": offReqLen, "py_awake": offPyAwake, "rep_seq": offRepSeq,
		"rep_len": offRepLen, "go_awake": offGoAwake, "req_taken": offReqTaken,
	}, "in_pipe": uint64(inPipe)}
}

// shmSupported reports whether the worker may use the shared-memory channel on this machine.
func shmSupported() bool { return true }

// shm is eventrt's end of a worker's shared-memory channel.
type shm struct {
	mem    []byte
	bellPy *os.File // rings the worker (its fd 6 is the read end)
	bellGo *os.File // the worker rings us here (its fd 7 is the write end)
	seq    uint64   // of the last request sent
	ring   [1]byte
	drain  [64]byte
}

// newShm creates the region and the doorbells; child are the files the worker gets as fds 5
// (the region), 6 and 7, to be closed once it started.
func newShm() (s *shm, child []*os.File, err error) {
	fd, err := unix.MemfdCreate("eventrt-pyworker", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("memfd_create: %w", err)
	}
	region := os.NewFile(uintptr(fd), "eventrt-pyworker-shm")
	size := shmHeader + 2*shmSlot
	if err := region.Truncate(int64(size)); err != nil {
		region.Close()
		return nil, nil, fmt.Errorf("sizing the shared region: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		region.Close()
		return nil, nil, fmt.Errorf("mmap: %w", err)
	}
	pyR, pyW, err1 := os.Pipe()
	goR, goW, err2 := os.Pipe()
	if err := errors.Join(err1, err2); err != nil {
		for _, f := range []*os.File{region, pyR, pyW, goR, goW} {
			if f != nil {
				f.Close()
			}
		}
		_ = unix.Munmap(mem)
		return nil, nil, fmt.Errorf("doorbell pipes: %w", err)
	}
	return &shm{mem: mem, bellPy: pyW, bellGo: goR}, []*os.File{region, pyR, goW}, nil
}

// word is the header word at off as an atomic: the package's one use of unsafe, kept because a
// word of memory shared with another process can only be loaded and stored atomically through
// such a view (the pipes, its plain alternative, are the slow path this channel replaces; see
// BenchmarkWorkerPing). TestShmLayout checks the alignment it assumes.
func (s *shm) word(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&s.mem[off]))
}

// lost is the error for a worker that died while request s.seq was out: a request it never
// took is unsent, as one that could not be written to its pipe (the caller may give it to a
// new worker); one it took failed during its run.
func (s *shm) lost(err error) error {
	if s.word(offReqTaken).Load() != s.seq {
		return &sendError{err}
	}
	return err
}

// hangUp closes the worker's doorbell: sleeping on it, an idle worker sees EOF and exits.
func (s *shm) hangUp() { s.bellPy.Close() }

// close frees the channel once the worker has exited.
func (s *shm) close() {
	s.bellPy.Close()
	s.bellGo.Close()
	_ = unix.Munmap(s.mem)
}

// callShm is call over the shared-memory channel.
func (w *worker) callShm(frame []byte, deadline time.Time) ([]byte, error) {
	s := w.shm
	payload := frame[frameHeader:]
	s.word(offGoAwake).Store(1) // polling for the reply from now on: no need to ring us
	big := len(payload) > shmSlot
	if big {
		s.word(offReqLen).Store(inPipe)
	} else {
		copy(s.mem[shmHeader:], payload)
		s.word(offReqLen).Store(uint64(len(payload)))
	}
	s.seq++
	s.word(offReqSeq).Store(s.seq)
	if s.word(offPyAwake).Load() == 0 {
		if _, err := s.bellPy.Write(s.ring[:]); err != nil {
			return nil, &sendError{err}
		}
	}
	if big {
		// After the announcement: the worker must be awake to drain a frame larger than the
		// pipe's buffer.
		if err := w.writeFrame(frame, deadline); err != nil {
			return nil, err
		}
	}
	if err := w.awaitReply(deadline); err != nil {
		return nil, err
	}
	n := s.word(offRepLen).Load()
	if n == inPipe {
		return w.readFrame(deadline)
	}
	if n > shmSlot {
		return nil, fmt.Errorf("reply length %d is over the %d-byte slot", n, shmSlot)
	}
	w.buf = append(w.buf[:0], s.mem[shmHeader+shmSlot:shmHeader+shmSlot+int(n)]...)
	return w.buf, nil
}

// awaitReply polls for the reply to request s.seq for the spin time, then sleeps on the
// doorbell. The worker's death ends the wait (see lost), the deadline with
// os.ErrDeadlineExceeded.
func (w *worker) awaitReply(deadline time.Time) error {
	s := w.shm
	rep := s.word(offRepSeq)
	until := time.Now().Add(w.spin.wait)
	for i := 0; rep.Load() != s.seq; i++ {
		if i >= 64 {
			// Past the first microseconds, poll between yields: on a machine with few cores
			// the worker, Redis or this process's other threads may be waiting for this
			// core, and a plain spin would hold it for a whole time slice (a stream of
			// Python runs went from ~13,000 to ~17,000 entries/s on two cores).
			_, _, _ = unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		}
		if i%16 != 0 {
			continue
		}
		now := time.Now()
		if now.After(deadline) {
			return os.ErrDeadlineExceeded
		}
		select {
		case <-w.exited:
			return s.lost(io.EOF)
		default:
		}
		if !now.Before(until) {
			return w.sleepForReply(deadline)
		}
	}
	return nil
}

func (w *worker) sleepForReply(deadline time.Time) error {
	s := w.shm
	rep := s.word(offRepSeq)
	for {
		s.word(offGoAwake).Store(0)
		if rep.Load() == s.seq {
			break
		}
		wake := time.Now().Add(maxBellWait)
		if deadline.Before(wake) {
			wake = deadline
		}
		if err := s.bellGo.SetReadDeadline(wake); err != nil {
			return err
		}
		_, err := s.bellGo.Read(s.drain[:])
		if errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(deadline) {
			continue // not rung yet: look again
		}
		if errors.Is(err, io.EOF) {
			return s.lost(err)
		}
		if err != nil {
			return err
		}
	}
	s.word(offGoAwake).Store(1)
	return nil
}
