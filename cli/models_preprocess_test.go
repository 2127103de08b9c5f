package cli

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/npy"
)

// TestModelsPreprocessTinyViT runs `cl models preprocess` on the tiny ViT's
// six images (JPEG, grey PNG, palette GIF, RGBA PNG, BMP, wide PNG) and
// compares with inputs.npy, made independently by Pillow + torchvision
// semantics in testdata/tinyvit/make_tinyvit.py: bit-exact.
func TestModelsPreprocessTinyViT(t *testing.T) {
	dir := "../testdata/tinyvit"
	names := []string{"img_rgb.jpg", "img_grey.png", "img_palette.gif", "img_rgba.png", "img_bmp.bmp", "img_wide.png"}
	args := []string{"models", "preprocess", "--model", tinyViTPath, "--out", filepath.Join(t.TempDir(), "x.npy")}
	out := args[5]
	for _, n := range names {
		args = append(args, filepath.Join(dir, n))
	}
	if _, err := runCL(t, args...); err != nil {
		t.Fatal(err)
	}
	got, shape, err := npy.ReadFloat32(out)
	if err != nil {
		t.Fatal(err)
	}
	want, wshape, err := npy.ReadFloat32(filepath.Join(dir, "inputs.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if len(shape) != 4 || shape[0] != 6 || shape[1] != 3 || shape[2] != 32 || shape[3] != 32 {
		t.Fatalf("shape %v, want [6 3 32 32] (golden %v)", shape, wshape)
	}
	per := 3 * 32 * 32
	for i, n := range names {
		diff := 0
		for j := i * per; j < (i+1)*per; j++ {
			if got[j] != want[j] {
				diff++
			}
		}
		if diff != 0 {
			t.Errorf("%s: %d of %d values differ from Pillow's", n, diff, per)
		}
	}
}

func TestModelsPreprocessOverrideAndErrors(t *testing.T) {
	img := "../testdata/tinyvit/img_wide.png"
	out := filepath.Join(t.TempDir(), "y.npy")
	// Override only: no model needed.
	if _, err := runCL(t, "models", "preprocess", img, "--preprocess", `{"resize":40,"interpolation":"bilinear","crop":36,"mean":[0.5,0.5,0.5],"std":[0.5,0.5,0.5]}`, "--out", out); err != nil {
		t.Fatal(err)
	}
	_, shape, err := npy.ReadFloat32(out)
	if err != nil || len(shape) != 4 || shape[0] != 1 || shape[3] != 36 {
		t.Fatalf("shape %v, err %v", shape, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"models", "preprocess", "--model", tinyViTPath, img}, "--out is required"},
		{[]string{"models", "preprocess", "--model", tinyViTPath, "--out", out}, "at least one IMAGE"},
		{[]string{"models", "preprocess", "--out", out, img}, "--model"},
		{[]string{"models", "preprocess", "--preprocess", `{"crop":32,"interpolation":"lanczos"}`, "--out", out, img}, "lanczos"},
		{[]string{"models", "preprocess", "--preprocess", `{"crop":32,"sizes":1}`, "--out", out, img}, "unknown field"},
	} {
		_, err := runCL(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want it to mention %q", c.args, err, c.want)
		}
		if _, ok := err.(UsageError); !ok {
			t.Errorf("%v: %T is not a usage error (exit 2)", c.args, err)
		}
	}
	// A bad image is a plain failure naming the file.
	err = runModelsPreprocess(context.Background(), modelsPreprocessOptions{
		Preprocess: `{"resize":36,"interpolation":"bicubic","crop":32}`, Out: out,
		Images: []string{img, "../testdata/tinyvit/README.md"}}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "README.md") || !strings.Contains(err.Error(), "image 2 of 2") {
		t.Errorf("bad image error: %v", err)
	}
}
