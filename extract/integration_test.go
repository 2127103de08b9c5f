package extract

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/internal/testenv"
	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/ort"
)

const fashionMNIST = "/usr/share/datasets/fashion-mnist"

// moduleRoot is the folder holding go.mod (testenv.ModuleRoot).
func moduleRoot(t testing.TB) string { return testenv.ModuleRoot(t) }

// need skips (or, under CI=true, fails) when path is absent; what names it
// and says how to get it (testenv.NeedFile).
func need(t testing.TB, path, what string) {
	t.Helper()
	testenv.NeedFile(t, path, what, "see the skip message")
}

// mobileNetFeatures cuts the shipped MobileNetV2 (testdata/mobilenetv2, the
// same bytes as ../shared/data's) at its 1280-d pooled
// feature and opens it.
func mobileNetFeatures(t testing.TB, threads int) *ort.Backbone {
	t.Helper()
	src := filepath.Join(moduleRoot(t), "testdata", "mobilenetv2", "mobilenetv2-12-int8.onnx")
	need(t, src, "testdata/mobilenetv2/mobilenetv2-12-int8.onnx")
	m, err := models.ReadModel(src)
	if err != nil {
		t.Fatal(err)
	}
	pre, err := models.PreprocessPreset("imagenet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := models.Cut(m, models.CutOptions{Tensor: "464_quantized", Preprocess: pre, Backbone: "MobileNetV2 int8"}); err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "mnv2-features.onnx")
	if err := models.WriteModel(cut, m); err != nil {
		t.Fatal(err)
	}
	return openORT(t, cut, threads)
}

// TestFashionMNISTMobileNetV2 extracts 2,000 training and 1,000 test images
// of Fashion-MNIST with the ImageNet-pretrained MobileNetV2 and checks that
// a nearest-class-mean classifier on the features is far above chance
// (10 %). Measured: 75.6 % (see the log line); asserted: > 60 %.
func TestFashionMNISTMobileNetV2(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (about 30 s on 2 cores)")
	}
	need(t, filepath.Join(fashionMNIST, "train-images-idx3-ubyte.gz"), "Fashion-MNIST (apt-get install dataset-fashion-mnist)")
	bb := mobileNetFeatures(t, 0)
	if bb.Dim() != 1280 {
		t.Fatalf("feature width %d, want 1280", bb.Dim())
	}
	dir := t.TempDir()
	names := filepath.Join(moduleRoot(t), "testdata", "fashion-mnist-classes.txt")
	sets := map[string]*features.Set{}
	for _, split := range []struct {
		name, prefix string
		n            int
	}{{"train", "train", 2000}, {"test", "t10k", 1000}} {
		spec := "idx:" + filepath.Join(fashionMNIST, split.prefix+"-images-idx3-ubyte.gz") + "," +
			filepath.Join(fashionMNIST, split.prefix+"-labels-idx1-ubyte.gz") + "," + names
		src, err := data.Open(spec)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, split.name+".safetensors")
		res, err := Extract(context.Background(), src, bb, out, Options{Limit: split.n, Strict: true, Log: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d images in %v (%.0f images/s)", split.name, res.Rows, res.Elapsed.Round(1e7), res.ImagesPerSecond())
		if sets[split.name], err = features.Read(out); err != nil {
			t.Fatal(err)
		}
	}
	tr, te := sets["train"], sets["test"]
	if tr.N != 2000 || te.N != 1000 || tr.Classes[9] != "Ankle boot" || tr.IDs[5] != "train-images-idx3-ubyte.gz:5" {
		t.Fatalf("train %d test %d classes %v", tr.N, te.N, tr.Classes)
	}
	acc := ncmAccuracy(tr, te)
	t.Logf("nearest-class-mean accuracy on 1,000 test images: %.1f %% (chance 10 %%)", 100*acc)
	if acc < 0.60 {
		t.Fatalf("NCM accuracy %.3f: the features do not separate Fashion-MNIST classes", acc)
	}
}

// ncmAccuracy classifies te by the nearest (Euclidean) class mean of tr.
func ncmAccuracy(tr, te *features.Set) float64 {
	k, d := len(tr.Classes), tr.D
	means := make([]float64, k*d)
	counts := make([]int, k)
	for i := 0; i < tr.N; i++ {
		y := tr.Labels[i]
		counts[y]++
		for j, v := range tr.Row(i) {
			means[y*d+j] += float64(v)
		}
	}
	for c := 0; c < k; c++ {
		for j := 0; j < d; j++ {
			means[c*d+j] /= float64(max(counts[c], 1))
		}
	}
	correct := 0
	for i := 0; i < te.N; i++ {
		best, bestD := -1, math.Inf(1)
		for c := 0; c < k; c++ {
			if counts[c] == 0 {
				continue
			}
			var s float64
			for j, v := range te.Row(i) {
				e := float64(v) - means[c*d+j]
				s += e * e
			}
			if s < bestD {
				best, bestD = c, s
			}
		}
		if best == te.Labels[i] {
			correct++
		}
	}
	return float64(correct) / float64(te.N)
}
