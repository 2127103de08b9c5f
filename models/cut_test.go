package models

import (
	"os"
	"strings"
	"testing"
)

// mobileNet is the real MobileNetV2 the project ships (identical to
// ../shared/data/mobilenetv2-12-int8.onnx, same sha256).
const (
	mobileNet = "../testdata/mobilenetv2/mobilenetv2-12-int8.onnx"
	tinyViT   = "../testdata/tinyvit/tinyvit.onnx"
)

// needMobileNet returns the path of the shipped MobileNetV2 model.
func needMobileNet(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(mobileNet); err != nil {
		t.Fatalf("the shipped model is missing (it is part of the repository): %v", err)
	}
	return mobileNet
}

func TestPreprocessPreset(t *testing.T) {
	p, err := PreprocessPreset("imagenet")
	if err != nil || p.Resize != 256 || p.Crop != 224 || p.Interpolation != "bilinear" || p.Mean[2] != 0.406 || p.Std[0] != 0.229 {
		t.Fatalf("imagenet: %+v %v", p, err)
	}
	if p, err := PreprocessPreset("vit-in21k"); err != nil || p.Interpolation != "bicubic" || p.Resize != 256 || p.Mean != nil {
		t.Fatalf("vit-in21k: %+v %v", p, err)
	}
	if p, err := PreprocessPreset(`{"resize":36,"interpolation":"bicubic","crop":32}`); err != nil || p.Crop != 32 {
		t.Fatalf("json: %+v %v", p, err)
	}
	for _, bad := range []string{"imagenet21k", `{"resize":36,"crop":32}`, `{"crop":32,"interpolation":"bicubic","colour":1}`, `{"crop":`} {
		if _, err := PreprocessPreset(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestCutErrors(t *testing.T) {
	path := needMobileNet(t)
	pre, _ := PreprocessPreset("imagenet")
	cases := []struct {
		opts CutOptions
		want string
	}{
		{CutOptions{Tensor: "464_quantised", Preprocess: pre}, `tensor "464_quantised" is not in the graph; close names: 464_quantized`},
		{CutOptions{Tensor: "input", Preprocess: pre}, "is a graph input or a weight"},
		{CutOptions{Tensor: "classifier.1.weight_quantized", Preprocess: pre}, "is a graph input or a weight"},
		{CutOptions{Tensor: "464_quantized", Pool: "max", Preprocess: pre}, `pool "max" unknown`},
		{CutOptions{Tensor: "464_quantized", Preprocess: Preprocess{Crop: 224}}, "interpolation"},
		{CutOptions{Tensor: "465", Preprocess: pre}, "is int64"},
		{CutOptions{Tensor: "474_quantized", Pool: "gap", Preprocess: pre}, ""}, // 4-D: fine
	}
	for _, c := range cases {
		m, err := ReadModel(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Cut(m, c.opts)
		if c.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.opts, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.opts.Tensor, err, c.want)
		}
	}
}
