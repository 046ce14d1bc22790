package deploy

import (
	"fmt"
	"sort"
	"strings"
)

// notMetric are the PromQL words that look like metric names but are not: aggregation
// operators (which may be followed by by/without before their parenthesis), binary and set
// operators, grouping modifiers, and literals.
var notMetric = map[string]bool{
	"sum": true, "avg": true, "min": true, "max": true, "count": true, "group": true,
	"stddev": true, "stdvar": true, "topk": true, "bottomk": true, "quantile": true,
	"count_values": true, "limitk": true, "limit_ratio": true,
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true,
}

// labelLists are the modifiers followed by a parenthesised list of label names.
var labelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// MetricNames returns the metric names that a PromQL expression selects, sorted and without
// duplicates. It understands as much PromQL as names need (strings, label matchers, ranges,
// functions, aggregations with by/without, vector matching, comments) plus the Grafana
// additions found in dashboards: $variables and label_values(metric, label).
func MetricNames(query string) ([]string, error) {
	seen := map[string]bool{}
	if err := scanNames(query, seen); err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrQuery, query, err)
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func scanNames(q string, seen map[string]bool) error {
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(q, i)
			if err != nil {
				return err
			}
			i = end
		case c == '{':
			end, err := skipGroup(q, i, '{', '}')
			if err != nil {
				return err
			}
			i = end
		case c == '[':
			end, err := skipGroup(q, i, '[', ']')
			if err != nil {
				return err
			}
			i = end
		case c == '$':
			// A Grafana variable: $name, ${name} or ${name:format}.
			i++
			if i < len(q) && q[i] == '{' {
				end, err := skipGroup(q, i, '{', '}')
				if err != nil {
					return err
				}
				i = end
			} else {
				for i < len(q) && isNameChar(q[i]) {
					i++
				}
			}
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9':
			// Numbers and durations (1e3, 0x1f, 5m, 1h30m).
			for i < len(q) && (isNameChar(q[i]) || q[i] == '.') {
				i++
			}
		case isNameStart(c):
			start := i
			for i < len(q) && isNameChar(q[i]) {
				i++
			}
			word := q[start:i]
			next := skipSpace(q, i)
			lower := strings.ToLower(word)
			switch {
			case labelLists[lower]:
				if next < len(q) && q[next] == '(' {
					end, err := skipGroup(q, next, '(', ')')
					if err != nil {
						return err
					}
					i = end
				}
			case notMetric[lower]:
			case word == "label_values" && next < len(q) && q[next] == '(':
				// label_values(selector, label): only the first argument selects series; the
				// second is a label name. label_values(label) selects nothing.
				end, err := skipGroup(q, next, '(', ')')
				if err != nil {
					return err
				}
				args := splitTopLevel(q[next+1 : end-1])
				if len(args) == 2 {
					if err := scanNames(args[0], seen); err != nil {
						return err
					}
				}
				i = end
			case next < len(q) && q[next] == '(':
				// A function call; its arguments are scanned as the loop goes on.
			default:
				seen[word] = true
			}
		default:
			// Operators, parentheses, commas, @ modifiers.
			i++
		}
	}
	return nil
}

func isNameStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isNameChar(c byte) bool { return isNameStart(c) || c >= '0' && c <= '9' }

func skipSpace(q string, i int) int {
	for i < len(q) && (q[i] == ' ' || q[i] == '\t' || q[i] == '\n' || q[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string literal starting at i.
func skipString(q string, i int) (int, error) {
	quote := q[i]
	for j := i + 1; j < len(q); j++ {
		switch {
		case q[j] == '\\' && quote != '`':
			j++
		case q[j] == quote:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at offset %d", i)
}

// skipGroup returns the index just past the bracket that closes the one opening at i,
// stepping over strings and nested groups.
func skipGroup(q string, i int, open, closing byte) (int, error) {
	depth := 0
	for j := i; j < len(q); j++ {
		switch q[j] {
		case '"', '\'', '`':
			end, err := skipString(q, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case open:
			depth++
		case closing:
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("unbalanced %q at offset %d", open, i)
}

// splitTopLevel splits s at the commas outside brackets and strings.
func splitTopLevel(s string) []string {
	var parts []string
	depth, start := 0, 0
	for j := 0; j < len(s); j++ {
		switch s[j] {
		case '"', '\'', '`':
			if end, err := skipString(s, j); err == nil {
				j = end - 1
			}
		case '(', '{', '[':
			depth++
		case ')', '}', ']':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:j])
				start = j + 1
			}
		}
	}
	return append(parts, s[start:])
}
