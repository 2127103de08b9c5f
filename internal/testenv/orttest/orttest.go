// Package orttest holds the test helper that needs ONNX Runtime (cgo), kept
// out of internal/testenv so that the packages that must build with
// CGO_ENABLED=0 (models, models/vit, extract/imageproc) can use testenv.
package orttest

import (
	"testing"

	"github.com/cl-dev/cl/internal/testenv"
	"github.com/cl-dev/cl/models/ort"
)

// Need initialises ONNX Runtime (ort.Init: the --ort-lib/$CL_ORT_LIB/default
// library, one environment per process) or skips t — fails it under
// CI=true — saying how to install the library.
func Need(t testing.TB) {
	t.Helper()
	_, err := ort.Init("")
	testenv.Require(t, err, "ONNX Runtime", "run "+ort.InstallCommand)
}
