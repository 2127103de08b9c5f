//go:build cgo

package serve

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cl-dev/cl/models/ort"
)

// tinyBackbone opens the committed tiny ViT (32×32 input, 32 features) on
// ONNX Runtime, skipping the test when the library is missing (failing
// under CI=true).
func tinyBackbone(t testing.TB) (Backbone, BackboneInfo) {
	t.Helper()
	if _, err := ort.Init(""); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ONNX Runtime is required under CI: %v", err)
		}
		t.Skipf("ONNX Runtime not available (install it with %s): %v", ort.InstallCommand, err)
	}
	bb, err := ort.Open(filepath.Join(tinyDir, "tinyvit.onnx"), ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bb.Close() })
	return bb, BackboneInfo{Name: "tinyvit.onnx", SHA256: bb.SHA256(), Fingerprint: bb.Fingerprint(), Preprocess: bb.Manifest().Preprocess}
}
