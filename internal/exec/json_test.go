package exec

import (
	"encoding/json"
	"maps"
	"reflect"
	"testing"
)

func TestDecodeEnv(t *testing.T) {
	env, err := DecodeEnv(map[string]string{"n": "1", "avg": "33.4", "s": `"x"`, "m": `{"a":[1]}`})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"n": 1, "avg": 33.4, "s": "x", "m": map[string]any{"a": []any{1}}}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("got %#v", env)
	}
	_, err = DecodeEnv(map[string]string{"ok": "1", "avg-util-cpu0-60sec": "3.4.5"})
	if !IsDecode(err) || err.Error() != `decode error: env field "avg-util-cpu0-60sec": invalid JSON at 1:4: invalid character '.' after top-level value` {
		t.Errorf("bad field: %v", err)
	}
	if env, err := DecodeEnv(nil); err != nil || env == nil || len(env) != 0 {
		t.Errorf("no fields: %v %v", env, err)
	}
}

func TestTopLevelOfOtherValues(t *testing.T) {
	for _, v := range []any{nil, 1.5, "s", []any{1}, map[string]int{"a": 1}, json.RawMessage(`[1]`), json.RawMessage(`{`)} {
		for k, x := range TopLevel(v) {
			t.Errorf("TopLevel(%#v) yielded %q: %v", v, k, x)
		}
	}
	top := maps.Collect(TopLevel(map[string]any{"a": 1, "b": "x"}))
	if !reflect.DeepEqual(top, map[string]any{"a": 1, "b": "x"}) {
		t.Errorf("TopLevel of a map: %v", top)
	}
	top = maps.Collect(TopLevel(json.RawMessage(`{"a": 1, "b": "x"}`)))
	if !reflect.DeepEqual(top, map[string]any{"a": 1, "b": "x"}) {
		t.Errorf("TopLevel of JSON: %v", top)
	}
}
