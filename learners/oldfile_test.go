package learners

import (
	"encoding/json"
	"testing"

	"github.com/cl-dev/cl/internal/safetensors"
)

// writeOlderFile copies the learner file src to dst with its learner.state
// edited by edit (state, and state["options"]), to stand for a file written
// before an option existed.
func writeOlderFile(t *testing.T, src, dst string, edit func(state, options map[string]any)) {
	t.Helper()
	sf, err := safetensors.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(sf.Metadata["learner.state"]), &st); err != nil {
		t.Fatal(err)
	}
	edit(st, st["options"].(map[string]any))
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	sf.Metadata["learner.state"] = string(raw)
	if err := sf.WriteFile(dst); err != nil {
		t.Fatal(err)
	}
}
