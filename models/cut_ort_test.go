//go:build cgo

// These tests run the cut graphs on ONNX Runtime (cgo), so they live in the
// external test package: models itself builds with CGO_ENABLED=0.
package models_test

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/internal/npy"
	"github.com/cl-dev/cl/internal/testenv"
	"github.com/cl-dev/cl/internal/testenv/orttest"
	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/onnxpb"
	"github.com/cl-dev/cl/models/ort"
)

const (
	mobileNet = "../testdata/mobilenetv2/mobilenetv2-12-int8.onnx"
	tinyViT   = "../testdata/tinyvit/tinyvit.onnx"
)

// testNeedORT is orttest.Need: ONNX Runtime or skip (fail under CI=true).
func testNeedORT(t testing.TB) { t.Helper(); orttest.Need(t) }

func needMobileNet(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(mobileNet); err != nil {
		t.Fatalf("the shipped model is missing (it is part of the repository): %v", err)
	}
	return mobileNet
}

// imageBatch makes n deterministic ImageNet-normalised [n,3,224,224] inputs.
func imageBatch(n, s int) []float32 {
	x := make([]float32, n*3*s*s)
	mean := []float32{0.485, 0.456, 0.406}
	std := []float32{0.229, 0.224, 0.225}
	for i := 0; i < n; i++ {
		for c := 0; c < 3; c++ {
			for y := 0; y < s; y++ {
				for xx := 0; xx < s; xx++ {
					v := 0.5 + 0.5*math.Sin(float64(xx*(i+1))/17+float64(y*(c+2))/23+float64(i))
					x[((i*3+c)*s+y)*s+xx] = (float32(v) - mean[c]) / std[c]
				}
			}
		}
	}
	return x
}

func maxAbsDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

func TestCutMobileNetQuantized(t *testing.T) {
	path := needMobileNet(t)
	testNeedORT(t)
	m, err := models.ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	pre, _ := models.PreprocessPreset("imagenet")
	res, err := models.Cut(m, models.CutOptions{Tensor: "464_quantized", Preprocess: pre, Backbone: "MobileNetV2 int8"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Dequantized || res.Scale != "464_scale" || res.ZeroPoint != "464_zero_point" || res.SourceType != "uint8" {
		t.Fatalf("result %+v", res)
	}
	if res.NodesAfter >= res.NodesBefore || len(m.Graph.Output) != 1 || m.Graph.Output[0].GetName() != "features" {
		t.Fatalf("nodes %d → %d, outputs %v", res.NodesBefore, res.NodesAfter, m.Graph.Output)
	}
	for _, n := range m.Graph.Node {
		if n.GetOpType() == "QLinearMatMul" {
			t.Fatal("the classifier was not pruned")
		}
	}
	for _, init := range m.Graph.Initializer {
		if strings.HasPrefix(init.GetName(), "classifier") {
			t.Fatalf("classifier weight %s kept", init.GetName())
		}
	}
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ort.OpenData("cut.onnx", data, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Dim() != 1280 || b.InputSize() != 224 || b.Manifest().Input != "input" {
		t.Fatalf("dim %d size %d manifest %+v", b.Dim(), b.InputSize(), b.Manifest())
	}
	const n = 2
	x := imageBatch(n, 224)
	got, err := b.Run(x, n)
	if err != nil {
		t.Fatal(err)
	}

	// Reference: the original model with 464_quantized declared as an extra
	// output, dequantized here with the scale and zero point from the file.
	orig, _ := models.ReadModel(path)
	orig.Graph.Output = append(orig.Graph.Output, testenv.ValueInfo("464_quantized", int32(onnxpb.TensorProto_UINT8), []int64{-1, 1280, 1, 1}))
	od, _ := proto.Marshal(orig)
	s, err := ort.NewSession("mobilenet+464", od, []string{"input"}, []string{"464_quantized"}, ort.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	outs, err := s.Run([]ort.Tensor{{Shape: []int64{n, 3, 224, 224}, F32: x}})
	if err != nil {
		t.Fatal(err)
	}
	q := outs[0].U8
	scale, zp := initScalar(t, orig, "464_scale"), initScalar(t, orig, "464_zero_point")
	if len(q) != len(got) {
		t.Fatalf("%d quantized values, %d features", len(q), len(got))
	}
	nonzero := 0
	for i := range q {
		want := float32((float64(q[i]) - zp) * scale)
		if math.Abs(float64(got[i]-want)) > 1e-6 {
			t.Fatalf("feature %d = %g, dequantized %d → %g", i, got[i], q[i], want)
		}
		if q[i] != uint8(zp) {
			nonzero++
		}
	}
	if nonzero < len(q)/4 {
		t.Fatalf("only %d of %d features differ from the zero point", nonzero, len(q))
	}

	// Cross-check: the float map 627 pooled by cut --pool gap agrees with the
	// quantized pool to within about one quantisation step.
	m2, _ := models.ReadModel(path)
	if _, err := models.Cut(m2, models.CutOptions{Tensor: "627", Pool: "gap", Preprocess: pre}); err != nil {
		t.Fatal(err)
	}
	d2, _ := proto.Marshal(m2)
	b2, err := ort.OpenData("cut627.onnx", d2, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	got2, err := b2.Run(x, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("nodes %d → %d; scale %g zero point %g; %d of %d features off the zero point; GAP(627) vs 464: max |Δ| %g",
		res.NodesBefore, res.NodesAfter, scale, zp, nonzero, len(q), maxAbsDiff(got, got2))
	if d := maxAbsDiff(got, got2); d > 1.01*scale {
		t.Fatalf("GAP(627) vs dequantized 464: max |Δ| %g > scale %g", d, scale)
	}
}

// initScalar reads a one-element initializer as float64.
func initScalar(t *testing.T, m *onnxpb.ModelProto, name string) float64 {
	t.Helper()
	for _, in := range m.Graph.Initializer {
		if in.GetName() != name {
			continue
		}
		switch onnxpb.TensorProto_DataType(in.GetDataType()) {
		case onnxpb.TensorProto_FLOAT:
			if len(in.FloatData) > 0 {
				return float64(in.FloatData[0])
			}
			return float64(math.Float32frombits(uint32(in.RawData[0]) | uint32(in.RawData[1])<<8 | uint32(in.RawData[2])<<16 | uint32(in.RawData[3])<<24))
		case onnxpb.TensorProto_UINT8:
			if len(in.Int32Data) > 0 {
				return float64(in.Int32Data[0])
			}
			return float64(in.RawData[0])
		}
		t.Fatalf("%s has type %d", name, in.GetDataType())
	}
	t.Fatalf("no initializer %s", name)
	return 0
}

// Cutting at a tensor that is already the graph output (and already named
// "features") works: the way a user sets the manifest of a timm export.
func TestCutAtExistingOutput(t *testing.T) {
	testNeedORT(t)
	m, err := models.ReadModel(tinyViT)
	if err != nil {
		t.Fatal(err)
	}
	m.MetadataProps = nil
	res, err := models.Cut(m, models.CutOptions{Tensor: "features", Preprocess: models.Preprocess{Resize: 36, Interpolation: "bicubic", Crop: 32}, Backbone: "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Dequantized || res.Pooled || res.Manifest.Output != "features" || res.Manifest.Input != "input" || res.SourceType != "float32" {
		t.Fatalf("%+v", res)
	}
	p := filepath.Join(t.TempDir(), "cut.onnx")
	if err := models.WriteModel(p, m); err != nil {
		t.Fatal(err)
	}
	b, err := ort.Open(p, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Manifest().Backbone != "tiny" || b.Dim() != 32 {
		t.Fatalf("%+v dim %d", b.Manifest(), b.Dim())
	}
	x, _, _ := npy.ReadFloat32("../testdata/tinyvit/inputs.npy")
	want, _, _ := npy.ReadFloat32("../testdata/tinyvit/features.npy")
	got, err := b.Run(x, 6)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(got, want); d > 1e-4 {
		t.Fatalf("max |Δ| %g", d)
	}

	// An intermediate float tensor of the ViT with another output name.
	m2, _ := models.ReadModel(tinyViT)
	var ln string
	for _, n := range m2.Graph.Node {
		if n.GetOpType() == "LayerNormalization" {
			ln = n.Output[0] // the first block's norm1: [N,17,32]
			break
		}
	}
	res2, err := models.Cut(m2, models.CutOptions{Tensor: ln, OutputName: "tokens", Preprocess: models.Preprocess{Interpolation: "bicubic", Crop: 32}})
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := proto.Marshal(m2)
	b2, err := ort.OpenData("tokens.onnx", d2, ort.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if b2.Dim() != 17*32 || res2.Manifest.Output != "tokens" {
		t.Fatalf("tokens: dim %d, %+v", b2.Dim(), res2)
	}
}
