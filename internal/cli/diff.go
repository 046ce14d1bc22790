package cli

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"

	"github.com/eventrt/eventrt/internal/exec"
)

// maxDiffLines bounds the lines one mismatch prints; a wrong handler can differ everywhere.
const maxDiffLines = 20

// maxValueChars bounds how much of a value a diff line shows.
const maxValueChars = 80

// diffJSON compares the JSON documents want and got and returns one line per difference,
// rooted at root (e.g. output["cpu"][3]: got 1, want 2). Numbers compare within the relative
// tolerance tol, whatever their JSON form (2 and 2.0 are equal).
func diffJSON(root string, want, got []byte, tol float64) ([]string, error) {
	w, err := exec.DecodeInput(want)
	if err != nil {
		return nil, fmt.Errorf("expected %s: %w", root, err)
	}
	g, err := exec.DecodeInput(got)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", root, err)
	}
	d := differ{tol: tol}
	d.diff(root, w, g)
	if d.more > 0 {
		d.lines = append(d.lines, fmt.Sprintf("... and %d more differences", d.more))
	}
	return d.lines, nil
}

type differ struct {
	tol   float64
	lines []string
	more  int
}

func (d *differ) add(format string, args ...any) {
	if len(d.lines) >= maxDiffLines {
		d.more++
		return
	}
	d.lines = append(d.lines, fmt.Sprintf(format, args...))
}

func (d *differ) diff(path string, want, got any) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			d.add("%s: got %s, want %s", path, show(got), show(want))
			return
		}
		for _, k := range sortedKeys(w) {
			gv, ok := g[k]
			if !ok {
				d.add("%s: missing, want %s", key(path, k), show(w[k]))
				continue
			}
			d.diff(key(path, k), w[k], gv)
		}
		for _, k := range sortedKeys(g) {
			if _, ok := w[k]; !ok {
				d.add("%s: got %s, not expected", key(path, k), show(g[k]))
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			d.add("%s: got %s, want %s", path, show(got), show(want))
			return
		}
		if len(g) != len(w) {
			d.add("%s: got %d elements, want %d", path, len(g), len(w))
		}
		for i := 0; i < min(len(w), len(g)); i++ {
			d.diff(path+"["+strconv.Itoa(i)+"]", w[i], g[i])
		}
	default:
		if wf, ok := number(want); ok {
			if gf, ok := number(got); ok && closeEnough(wf, gf, d.tol) {
				return
			}
		} else if want == got {
			return
		}
		d.add("%s: got %s, want %s", path, show(got), show(want))
	}
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// closeEnough compares with a relative tolerance; equal values always match.
func closeEnough(a, b, tol float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= tol*math.Max(math.Abs(a), math.Abs(b))
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// key appends a map key to a path the way expr would address it.
func key(path, k string) string {
	if identRE.MatchString(k) {
		return path + "." + k
	}
	return path + "[" + strconv.Quote(k) + "]"
}

// show renders a value as compact JSON, cut to maxValueChars.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := string(b)
	if r := []rune(s); len(r) > maxValueChars {
		s = string(r[:maxValueChars]) + "..."
	}
	return s
}
