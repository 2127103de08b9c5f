package features

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/testenv"
)

// pythonSnippet returns the first ```python block of docs/FORMATS.md.
func pythonSnippet(t *testing.T) string {
	b, err := os.ReadFile("../docs/FORMATS.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```python\n")
	if !ok {
		t.Fatal("docs/FORMATS.md has no ```python block")
	}
	code, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("unterminated ```python block in docs/FORMATS.md")
	}
	return code
}

// TestPythonReader runs the documented numpy+json reader with Debian's
// python3 on files written by Set.Write and by the streaming Writer (whose
// header carries extra padding) and checks it reads back the same values.
func TestPythonReader(t *testing.T) {
	py := testenv.NeedNumpy(t)
	dir := t.TempDir()
	set := &Set{N: 3, D: 4, Classes: []string{"cat", "dög", `q"uote`}, Labels: []int{2, 0, 1},
		IDs: []string{"a/1.jpg", "train:7", "ü/é.png"}, Model: "m.onnx", ModelSHA256: "0123abcd",
		Preprocess: `{"resize":256,"interpolation":"bicubic","crop":224}`, Source: "cifar100:/data:test"}
	for i := 0; i < 12; i++ {
		set.X = append(set.X, float32(math.Pow(-1.7, float64(i)))/3)
	}
	written := filepath.Join(dir, "set.safetensors")
	if err := set.Write(written); err != nil {
		t.Fatal(err)
	}
	streamed := filepath.Join(dir, "stream.safetensors")
	w, err := Create(streamed, Header{D: set.D, Classes: set.Classes, Model: set.Model, ModelSHA256: set.ModelSHA256,
		Preprocess: set.Preprocess, Source: set.Source}, append(set.IDs, "never-used-id-that-pads-the-header"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < set.N; i++ {
		if err := w.Append(set.Row(i), set.Labels[i], set.IDs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	driver := pythonSnippet(t) + `
import sys
X, y, meta = load_features(sys.argv[1])
print(json.dumps({"shape": list(X.shape), "dtype": str(X.dtype), "ydtype": str(y.dtype),
                  "X": [repr(float(v)) for v in X.ravel()], "y": y.tolist(), "meta": meta}))
`
	script := filepath.Join(dir, "load.py")
	if err := os.WriteFile(script, []byte(driver), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{written, streamed} {
		out, err := exec.Command(py, script, path).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", path, err, out)
		}
		var got struct {
			Shape         []int
			DType, YDType string
			X             []string
			Y             []int
			Meta          map[string]any
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if !reflect.DeepEqual(got.Shape, []int{3, 4}) || got.DType != "float32" || !reflect.DeepEqual(got.Y, set.Labels) {
			t.Fatalf("%s: shape %v dtype %s labels %v", path, got.Shape, got.DType, got.Y)
		}
		for i, v := range set.X {
			if want := fmt.Sprint(float64(v)); got.X[i] != want && !sameFloat(got.X[i], float64(v)) {
				t.Fatalf("%s: X[%d] = %s, want %v", path, i, got.X[i], float64(v))
			}
		}
		m := got.Meta
		if m["format"] != Format || m["model"] != "m.onnx" || m["model_sha256"] != "0123abcd" || m["source"] != set.Source ||
			fmt.Sprint(m["classes"]) != fmt.Sprint([]any{"cat", "dög", `q"uote`}) ||
			fmt.Sprint(m["ids"]) != fmt.Sprint([]any{"a/1.jpg", "train:7", "ü/é.png"}) ||
			fmt.Sprint(m["preprocess"]) != "map[crop:224 interpolation:bicubic resize:256]" {
			t.Fatalf("%s: metadata %v", path, m)
		}
	}
}

func sameFloat(s string, want float64) bool {
	var v float64
	_, err := fmt.Sscan(s, &v)
	return err == nil && v == want
}
