package features

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/safetensors"
)

func TestSame(t *testing.T) {
	cur := Space{Model: "a.onnx", ModelSHA256: "h1", Preprocess: "{}", Fingerprint: "f1"}
	for name, tc := range map[string]struct {
		other Space
		same  bool
	}{
		// Fingerprints decide when both have one: another file (hash, name)
		// with the same fingerprint is the same space.
		"same fingerprint, other file":  {Space{Model: "b.onnx", ModelSHA256: "h2", Preprocess: "{}", Fingerprint: "f1"}, true},
		"other fingerprint, same file":  {Space{Model: "a.onnx", ModelSHA256: "h1", Preprocess: "{}", Fingerprint: "f2"}, false},
		"legacy, same file and preproc": {Space{Model: "x.onnx", ModelSHA256: "h1", Preprocess: "{}"}, true},
		"legacy, other file":            {Space{Model: "a.onnx", ModelSHA256: "h2", Preprocess: "{}"}, false},
		"legacy, other preprocessing":   {Space{Model: "a.onnx", ModelSHA256: "h1", Preprocess: `{"crop":1}`}, false},
	} {
		if got := Same(cur, tc.other); got != tc.same {
			t.Errorf("%s: Same = %v, want %v", name, got, tc.same)
		}
		if Same(cur, tc.other) != Same(tc.other, cur) {
			t.Errorf("%s: not symmetric", name)
		}
	}
	old := Space{Model: "a.onnx", ModelSHA256: "h1", Preprocess: "{}"}
	if got := old.Adopt(cur); got.Fingerprint != "f1" {
		t.Errorf("legacy space did not adopt the fingerprint: %v", got)
	}
	if got := old.Adopt(Space{ModelSHA256: "h2", Preprocess: "{}", Fingerprint: "f9"}); got.Fingerprint != "" {
		t.Errorf("adopted the fingerprint of another space: %v", got)
	}
	if s := cur.String(); !strings.Contains(s, "fingerprint f1") || !strings.Contains(s, `"a.onnx"`) {
		t.Errorf("String %q", s)
	}
	if s := old.String(); !strings.Contains(s, "no fingerprint") {
		t.Errorf("String %q", s)
	}
}

// TestReadLegacyFile: a feature file written before fingerprints (no
// "fingerprint" metadata) reads with an empty fingerprint and matches a
// current file of the same model file and preprocessing.
func TestReadLegacyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.safetensors")
	f := safetensors.New()
	f.Tensors["features"] = safetensors.FromFloat32s([]int64{1, 2}, []float32{1, 2})
	f.Tensors["labels"] = safetensors.FromInt64s([]int64{1}, []int64{0})
	f.Metadata = map[string]string{"format": Format, "classes": `["cat"]`, "ids": `["a"]`,
		"model": "m.onnx", "model_sha256": "abc", "preprocess": "{}", "source": "DIR"}
	if err := f.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	s, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Fingerprint != "" || !Same(s.Space(), Space{ModelSHA256: "abc", Preprocess: "{}", Fingerprint: "new"}) {
		t.Fatalf("legacy space %v", s.Space())
	}
	// Rewritten, it keeps its (empty) fingerprint and the file hash.
	if err := s.Write(path); err != nil {
		t.Fatal(err)
	}
	if s2, err := Read(path); err != nil || s2.Space() != s.Space() {
		t.Fatalf("rewritten: %v %v", err, s2)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}
