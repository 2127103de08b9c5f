package extract

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/internal/npy"
	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/ort"
)

const tinyViTDir = "../testdata/tinyvit"

// openORT opens a model with ONNX Runtime, skipping the test when the
// library is not installed (failing under CI=true).
func openORT(t testing.TB, path string, threads int) *ort.Backbone {
	t.Helper()
	if _, err := ort.Init(""); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ONNX Runtime is required under CI: %v", err)
		}
		t.Skipf("ONNX Runtime not available (install it with %s): %v", ort.InstallCommand, err)
	}
	bb, err := ort.Open(path, ort.Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bb.Close() })
	return bb
}

// TestTinyViTGolden extracts the committed test images through the whole
// pipeline (file reading, Pillow-exact decoding and bicubic preprocessing,
// ONNX Runtime) and compares with the features PyTorch computed from
// Pillow-preprocessed inputs (testdata/tinyvit/make_tinyvit.py).
//
// Tolerance 1e-4 for every image, JPEG included: decoding and resizing
// are exact with Pillow (docs/PREPROCESSING.md), so only the float
// summation order of ONNX Runtime vs PyTorch differs (measured ≤ 1e-6).
func TestTinyViTGolden(t *testing.T) {
	bb := openORT(t, filepath.Join(tinyViTDir, "tinyvit.onnx"), 1)
	names, err := os.ReadFile(filepath.Join(tinyViTDir, "images.txt"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var csv strings.Builder
	var stems []string
	for _, name := range strings.Fields(string(names)) {
		abs, err := filepath.Abs(filepath.Join(tinyViTDir, name))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&csv, "%s,%s\n", abs, "c")
		stems = append(stems, name)
	}
	list := filepath.Join(dir, "list.csv")
	if err := os.WriteFile(list, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := data.Open("list:" + list)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "f.safetensors")
	if _, err := Extract(context.Background(), src, bb, out, Options{Batch: 4, Workers: 2, Strict: true, Log: quiet()}); err != nil {
		t.Fatal(err)
	}
	got, err := features.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	want, shape, err := npy.ReadFloat32(filepath.Join(tinyViTDir, "features.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if got.N != len(stems) || shape[0] != got.N || shape[1] != got.D {
		t.Fatalf("got %d×%d features, golden %v", got.N, got.D, shape)
	}
	if sha, _ := models.FileSHA256(filepath.Join(tinyViTDir, "tinyvit.onnx")); got.ModelSHA256 != sha || got.Model != "tinyvit.onnx" {
		t.Fatalf("metadata model %q %q", got.Model, got.ModelSHA256)
	}
	if m, err := models.ReadModel(filepath.Join(tinyViTDir, "tinyvit.onnx")); err != nil || got.Fingerprint != models.Fingerprint(m, bb.Manifest()) {
		t.Fatalf("fingerprint %q: want models.Fingerprint of the model and its manifest (%v)", got.Fingerprint, err)
	}
	for i, stem := range stems {
		var maxd float64
		for j := 0; j < got.D; j++ {
			maxd = math.Max(maxd, math.Abs(float64(got.Row(i)[j]-want[i*got.D+j])))
		}
		const tol = 1e-4
		t.Logf("%s: max |Δ| = %.2g (tolerance %g)", stem, maxd, tol)
		if maxd > tol {
			t.Errorf("%s: features differ from PyTorch's by %g > %g", stem, maxd, tol)
		}
	}
}
