// Package logging builds eventrt's slog logger: tint for people (colour only when the output is
// a terminal), JSON for log shippers.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lmittmann/tint"
)

// New returns a logger writing to w in format "text" or "json" at level.
func New(w io.Writer, format string, level slog.Leveler) (*slog.Logger, error) {
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})), nil
	case "text", "":
		return slog.New(tint.NewTextHandler(w, &tint.Options{
			Level:      level,
			TimeFormat: time.RFC3339Nano,
			NoColor:    !isTerminal(w),
		})), nil
	default:
		return nil, fmt.Errorf("unknown log format %q (text or json)", format)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
