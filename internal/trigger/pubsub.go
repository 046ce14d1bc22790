package trigger

import "encoding/json"

// onChannelMessage handles one message on the trigger channel: a JSON object is an ad-hoc
// input, anything else (an empty message, "run", a JSON array) asks for a run on the key's
// current value.
func (w *Watcher) onChannelMessage(payload string) {
	if isJSONObject(payload) {
		w.sink.Invoke([]byte(payload))
		return
	}
	w.sink.Notify(KindPubSub)
}

// isJSONObject reports whether s is one valid JSON value that is an object. It validates
// without decoding because the runner decodes the payload anyway and this runs on the pipeline
// goroutine.
func isJSONObject(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return json.Valid([]byte(s))
		default:
			return false
		}
	}
	return false
}
