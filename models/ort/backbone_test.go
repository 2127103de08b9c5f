package ort

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/internal/npy"
	"github.com/cl-dev/cl/internal/testenv"
	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/onnxpb"
)

const tinyViT = "../../testdata/tinyvit/tinyvit.onnx"

// needORT initialises ONNX Runtime or skips (fails under CI=true): testenv.Require.
func needORT(t testing.TB) {
	t.Helper()
	_, err := Init("")
	testenv.Require(t, err, "ONNX Runtime", "run "+InstallCommand)
}

func openTiny(t testing.TB, opts Options) *Backbone {
	t.Helper()
	needORT(t)
	b, err := Open(tinyViT, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestTinyViTGoldens(t *testing.T) {
	b := openTiny(t, Options{Threads: 1})
	if b.Dim() != 32 || b.InputSize() != 32 {
		t.Fatalf("dim %d input %d, want 32 32", b.Dim(), b.InputSize())
	}
	m := b.Manifest()
	if m.Input != "input" || m.Output != "features" || m.Preprocess.Resize != 36 || m.Preprocess.Interpolation != "bicubic" {
		t.Fatalf("manifest %+v", m)
	}
	sha, err := models.FileSHA256(tinyViT)
	if err != nil || sha != b.SHA256() {
		t.Fatalf("sha %s vs file %s (%v)", b.SHA256(), sha, err)
	}
	x, xs, err := npy.ReadFloat32("../../testdata/tinyvit/inputs.npy")
	if err != nil {
		t.Fatal(err)
	}
	want, ws, err := npy.ReadFloat32("../../testdata/tinyvit/features.npy")
	if err != nil {
		t.Fatal(err)
	}
	n := xs[0]
	if len(xs) != 4 || xs[1] != 3 || xs[2] != 32 || len(ws) != 2 || ws[0] != n || ws[1] != 32 {
		t.Fatalf("golden shapes %v %v", xs, ws)
	}
	got, err := b.Run(x, n)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(got, want); d > 1e-4 {
		t.Fatalf("batch of %d: max |Δ| = %g > 1e-4", n, d)
	}
	// One image at a time gives the same features.
	per := 3 * 32 * 32
	for i := 0; i < n; i++ {
		got, err := b.Run(x[i*per:(i+1)*per], 1)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(got, want[i*32:(i+1)*32]); d > 1e-4 {
			t.Fatalf("image %d alone: max |Δ| = %g", i, d)
		}
	}
}

func TestBackboneConcurrentRuns(t *testing.T) {
	b := openTiny(t, Options{Threads: 1})
	x, _, err := npy.ReadFloat32("../../testdata/tinyvit/inputs.npy")
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := npy.ReadFloat32("../../testdata/tinyvit/features.npy")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 5; r++ {
				got, err := b.Run(x, 6)
				if err != nil {
					errs <- err
					return
				}
				if d := maxAbsDiff(got, want); d > 1e-4 {
					t.Errorf("concurrent run: max |Δ| %g", d)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestRunBadArguments(t *testing.T) {
	b := openTiny(t, Options{})
	if _, err := b.Run(make([]float32, 10), 1); err == nil || !strings.Contains(err.Error(), "want 1×3×32×32") {
		t.Fatalf("short input: %v", err)
	}
	if _, err := b.Run(nil, 0); err == nil {
		t.Fatal("n = 0 accepted")
	}
	b.Close()
	if _, err := b.Run(make([]float32, 3*32*32), 1); err != ErrClosed {
		t.Fatalf("after close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestOpenCUDAFailsClearly(t *testing.T) {
	needORT(t)
	for _, dev := range []string{"cuda", "cuda:1"} {
		b, err := Open(tinyViT, Options{Device: dev})
		if err == nil {
			// A GPU build with a GPU: the run must then work.
			defer b.Close()
			t.Logf("%s is available here; checking it runs", dev)
			if _, err := b.Run(make([]float32, 3*32*32), 1); err != nil {
				t.Fatal(err)
			}
			continue
		}
		msg := err.Error()
		t.Logf("%s: %v", dev, err)
		if !strings.Contains(msg, "the CUDA provider could not be loaded") || !strings.Contains(msg, "--device cpu") {
			t.Fatalf("%s: unclear error: %v", dev, err)
		}
	}
}

func TestOpenBadDeviceAndThreads(t *testing.T) {
	if _, err := Open(tinyViT, Options{Device: "tpu"}); err == nil || !strings.Contains(err.Error(), "use cpu, cuda or cuda:N") {
		t.Fatalf("tpu: %v", err)
	}
	if _, err := Open(tinyViT, Options{Threads: -1}); err == nil {
		t.Fatal("threads -1 accepted")
	}
}

func TestOpenManifestOverride(t *testing.T) {
	needORT(t)
	// Wrong crop: the input is 32×32, a manifest saying 224 is refused.
	bad := models.Manifest{Preprocess: models.ViTIN21K()}
	_, err := Open(tinyViT, Options{Manifest: &bad})
	if err == nil || !strings.Contains(err.Error(), "[N,3,224,224]") {
		t.Fatalf("crop mismatch: %v", err)
	}
	// Names may be left empty when the graph has one input and output.
	good := models.Manifest{Preprocess: models.Preprocess{Resize: 40, Interpolation: "bilinear", Crop: 32}}
	b, err := Open(tinyViT, Options{Manifest: &good})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if m := b.Manifest(); m.Input != "input" || m.Output != "features" || m.Preprocess.Resize != 40 {
		t.Fatalf("manifest %+v", m)
	}
}

// tinyGraph builds a one-node model: input in (elem, dims) → op → output
// out (elem, outDims), with a manifest for crop.
func tinyGraph(op string, inElem onnxpb.TensorProto_DataType, inDims []int64, outElem onnxpb.TensorProto_DataType, outDims []int64, crop int, attrs ...*onnxpb.AttributeProto) *onnxpb.ModelProto {
	m := testenv.OneNodeGraph(op, inElem, inDims, outElem, outDims, attrs...)
	models.SetManifest(m, models.Manifest{Input: "x", Output: "y", Preprocess: models.Preprocess{Resize: crop, Interpolation: "bilinear", Crop: crop}})
	return m
}

func writeModel(t *testing.T, m *onnxpb.ModelProto) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.onnx")
	if err := models.WriteModel(p, m); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOpenBadModels(t *testing.T) {
	// These fail in the signature check, before ONNX Runtime is touched.
	flat := &onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)}
	cases := []struct {
		name string
		m    *onnxpb.ModelProto
		want string
	}{
		{"rank-4 output", tinyGraph("Identity", onnxpb.TensorProto_FLOAT, []int64{-1, 3, 8, 8}, onnxpb.TensorProto_FLOAT, []int64{-1, 3, 8, 8}, 8),
			`output "y" is float32 [N,3,8,8]; a backbone's feature output must be float32 [N,D]`},
		{"int64 input", tinyGraph("Flatten", onnxpb.TensorProto_INT64, []int64{-1, 3, 8, 8}, onnxpb.TensorProto_INT64, []int64{-1, 192}, 8, flat),
			`input "x" is int64 [N,3,8,8]; a backbone needs float32 [N,3,8,8]`},
		{"not an image", tinyGraph("Identity", onnxpb.TensorProto_FLOAT, []int64{-1, 192}, onnxpb.TensorProto_FLOAT, []int64{-1, 192}, 8),
			`input "x" is float32 [N,192]`},
		{"one channel", tinyGraph("Flatten", onnxpb.TensorProto_FLOAT, []int64{-1, 1, 8, 8}, onnxpb.TensorProto_FLOAT, []int64{-1, 64}, 8, flat),
			`but the manifest says [N,3,8,8]`},
		{"wrong size", tinyGraph("Flatten", onnxpb.TensorProto_FLOAT, []int64{-1, 3, 16, 16}, onnxpb.TensorProto_FLOAT, []int64{-1, 768}, 8, flat),
			`but the manifest says [N,3,8,8]`},
	}
	for _, c := range cases {
		p := writeModel(t, c.m)
		_, err := Open(p, Options{ORTLib: "/nonexistent/libonnxruntime.so"})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: got %v, want an error naming %s and containing %q", c.name, err, p, c.want)
		}
	}
	// No manifest.
	m := tinyGraph("Flatten", onnxpb.TensorProto_FLOAT, []int64{-1, 3, 8, 8}, onnxpb.TensorProto_FLOAT, []int64{-1, 192}, 8, flat)
	m.MetadataProps = nil
	if _, err := Open(writeModel(t, m), Options{}); err == nil || !strings.Contains(err.Error(), "has no cl manifest") {
		t.Errorf("no manifest: %v", err)
	}
	// Not ONNX at all.
	p := filepath.Join(t.TempDir(), "junk.onnx")
	os.WriteFile(p, []byte("this is not a model"), 0o644)
	if _, err := Open(p, Options{}); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("junk: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.onnx"), Options{}); err == nil || !strings.Contains(err.Error(), "missing.onnx") {
		t.Errorf("missing: %v", err)
	}
}

func TestOpenProbesSymbolicDim(t *testing.T) {
	needORT(t)
	flat := &onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)}
	m := tinyGraph("Flatten", onnxpb.TensorProto_FLOAT, []int64{-1, 3, 4, 4}, onnxpb.TensorProto_FLOAT, []int64{-1, -1}, 4, flat)
	b, err := Open(writeModel(t, m), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Dim() != 48 {
		t.Fatalf("dim %d, want 48", b.Dim())
	}
	x := make([]float32, 2*48)
	for i := range x {
		x[i] = float32(i)
	}
	y, err := b.Run(x, 2)
	if err != nil {
		t.Fatal(err)
	}
	if maxAbsDiff(x, y) != 0 {
		t.Fatal("flatten changed values")
	}
}

func TestOpenFixedBatch(t *testing.T) {
	needORT(t)
	flat := &onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)}
	m := tinyGraph("Flatten", onnxpb.TensorProto_FLOAT, []int64{2, 3, 4, 4}, onnxpb.TensorProto_FLOAT, []int64{2, 48}, 4, flat)
	b, err := Open(writeModel(t, m), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Any number of images runs: whole chunks of 2, the last one padded.
	for _, n := range []int{1, 2, 3, 5} {
		x := make([]float32, n*48)
		for i := range x {
			x[i] = float32(i)
		}
		y, err := b.Run(x, n)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if len(y) != len(x) || maxAbsDiff(x, y) != 0 {
			t.Fatalf("n=%d: flatten of a fixed-batch model changed values or length (%d vs %d)", n, len(y), len(x))
		}
	}
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var m float64
	for i := range a {
		if d := math.Abs(float64(a[i]) - float64(b[i])); d > m || math.IsNaN(d) {
			m = d
		}
	}
	return m
}

func BenchmarkBackboneRun(b *testing.B) {
	for _, n := range []int{1, 32} {
		b.Run("tinyvit/batch="+strconv.Itoa(n), func(b *testing.B) {
			bb := openTiny(b, Options{Threads: 1})
			x := make([]float32, n*3*32*32)
			for i := range x {
				x[i] = float32(i%255) / 255
			}
			b.SetBytes(int64(4 * len(x)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := bb.Run(x, n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkViTB16 runs a ViT-B/16 made by scripts/make-vit-b16.py; set
// CL_VIT_B16=/path/to/vit-b16.onnx (it is never committed).
func BenchmarkViTB16(b *testing.B) {
	path := os.Getenv("CL_VIT_B16")
	if path == "" {
		b.Skip("set CL_VIT_B16 to a model made by scripts/make-vit-b16.py")
	}
	needORT(b)
	bb, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer bb.Close()
	if bb.Dim() != 768 || bb.InputSize() != 224 {
		b.Fatalf("dim %d size %d", bb.Dim(), bb.InputSize())
	}
	for _, n := range []int{1, 8} {
		b.Run("batch="+strconv.Itoa(n), func(b *testing.B) {
			x := make([]float32, n*3*224*224)
			for i := range x {
				x[i] = float32(i%251) / 251
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := bb.Run(x, n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
