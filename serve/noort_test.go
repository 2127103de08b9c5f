//go:build !cgo

package serve

import (
	"os"
	"testing"
)

// tinyBackbone: without cgo there is no ONNX Runtime (models/ort), so the
// tests that run the tiny ViT skip (and fail under CI=true). The package
// itself is cgo-free: `CGO_ENABLED=0 go vet ./serve` checks it.
func tinyBackbone(t testing.TB) (Backbone, BackboneInfo) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal("ONNX Runtime is required under CI: build with cgo (CGO_ENABLED=1)")
	}
	t.Skip("ONNX Runtime needs cgo: run the tests with CGO_ENABLED=1 and ONNX Runtime installed (scripts/install-onnxruntime.sh)")
	return nil, BackboneInfo{}
}
