//go:build !(linux && amd64)

package pyengine

import (
	"errors"
	"os"
	"time"
)

// The shared-memory channel (shm.go) needs memfd and a machine with total store order; here
// the pipes carry everything.

const (
	shmHeader = 0
	shmSlot   = 0
)

func shmSupported() bool { return false }

func shmLayout() map[string]any { return nil }

type shm struct{}

var errNoShm = errors.New("no shared-memory channel on this platform")

func newShm() (*shm, []*os.File, error) { return nil, nil, errNoShm }

func (*shm) hangUp() {}

func (*shm) close() {}

func (w *worker) callShm([]byte, time.Time) ([]byte, error) { return nil, errNoShm }
