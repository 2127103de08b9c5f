package imageproc

import (
	"math"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cl-dev/cl/internal/npy"
	"github.com/cl-dev/cl/models"
)

func imagenet() models.Preprocess {
	return models.Preprocess{Resize: 256, Interpolation: "bilinear", Crop: 224,
		Mean: []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225}}
}

func readF32Golden(t testing.TB, name string) ([]float32, []int) {
	t.Helper()
	data, shape, err := npy.ReadFloat32(filepath.Join("testdata", "golden", name+".npy"))
	if err != nil {
		t.Fatal(err)
	}
	return data, shape
}

// hwcToCHW turns a uint8 [H,W,3] crop into the float32 [3,H,W] ToTensor gives.
func hwcToCHW(m *RGB) []float32 {
	n := m.W * m.H
	out := make([]float32, 3*n)
	for i := 0; i < n; i++ {
		for c := 0; c < 3; c++ {
			out[c*n+i] = float32(m.Pix[3*i+c]) / 255
		}
	}
	return out
}

func maxAbs(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

func TestShorterSideSize(t *testing.T) {
	for _, c := range []struct{ w, h, s, nw, nh int }{
		{500, 375, 256, 341, 256}, // int(256·500/375) = int(341.33)
		{375, 500, 256, 256, 341},
		{32, 32, 256, 256, 256},
		{300, 200, 256, 384, 256},
		{1, 1000, 256, 256, 256000},
		{3, 7, 2, 2, 4},           // int(4.666)
		{641, 427, 256, 384, 256}, // 384.29…
	} {
		if nw, nh := ShorterSideSize(c.w, c.h, c.s); nw != c.nw || nh != c.nh {
			t.Errorf("ShorterSideSize(%d,%d,%d) = %d,%d, want %d,%d", c.w, c.h, c.s, nw, nh, c.nw, c.nh)
		}
	}
}

func TestCenterCropOffset(t *testing.T) {
	// Python: int(round((n - c) / 2.0)), round half to even.
	for _, c := range []struct{ n, c, want int }{
		{256, 224, 16}, {341, 224, 58} /* 58.5 → 58 */, {343, 224, 60} /* 59.5 → 60 */, {225, 224, 0}, /* 0.5 → 0 */
		{227, 224, 2} /* 1.5 → 2 */, {224, 224, 0}, {200, 224, -12}, {201, 224, -11},
	} {
		if got := CenterCropOffset(c.n, c.c); got != c.want {
			t.Errorf("CenterCropOffset(%d,%d) = %d, want %d", c.n, c.c, got, c.want)
		}
	}
}

// TestViTPipelineCIFAR is the 32 → 256 bicubic up-scaling + crop 224 case of
// the ViT-B/16-IN21K protocol: the float tensor must equal torchvision's.
func TestViTPipelineCIFAR(t *testing.T) {
	pp, err := NewPreprocessor(models.ViTIN21K())
	if err != nil {
		t.Fatal(err)
	}
	want, shape := readF32Golden(t, "cifar32.png.vit")
	if len(shape) != 3 || shape[0] != 3 || shape[1] != 224 || shape[2] != 224 {
		t.Fatalf("golden shape %v", shape)
	}
	img, err := DecodeFile(filepath.Join("testdata", "img", "cifar32.png"))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, pp.Len())
	if err := pp.Apply(img, got); err != nil {
		t.Fatal(err)
	}
	if d := maxAbs(got, want); d != 0 {
		t.Errorf("max |diff| %g, want 0", d)
	}
	// The same through ApplyRGB on raw pixels.
	if err := pp.ApplyRGB(ToRGB(img), got); err != nil {
		t.Fatal(err)
	}
	if d := maxAbs(got, want); d != 0 {
		t.Errorf("ApplyRGB: max |diff| %g, want 0", d)
	}
}

func TestViTPipelineCrops(t *testing.T) {
	pp, err := NewPreprocessor(models.ViTIN21K())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"photo.jpg", "ycc420.jpg", "p_trns.gif"} {
		t.Run(name, func(t *testing.T) {
			want := hwcToCHW(readRGBGolden(t, name+".vit.crop"))
			got := make([]float32, pp.Len())
			// From Pillow's own RGB pixels: bit-exact.
			if err := pp.ApplyRGB(readRGBGolden(t, name+".rgb"), got); err != nil {
				t.Fatal(err)
			}
			if d := maxAbs(got, want); d != 0 {
				t.Errorf("from Pillow's RGB: max |diff| %g, want 0", d)
			}
			// From the file through our decoder: bit-exact too (the
			// requirement is ≤ 1/255 for JPEG; see jpegConvertTol).
			img, err := DecodeFile(filepath.Join("testdata", "img", name))
			if err != nil {
				t.Fatal(err)
			}
			if err := pp.Apply(img, got); err != nil {
				t.Fatal(err)
			}
			d := maxAbs(got, want)
			t.Logf("%s from file: max |diff| %.4g (= %.2f/255)", name, d, d*255)
			tol := 0.0
			if isJPEG(name) {
				tol = float64(jpegConvertTol) / 255
			}
			if d > tol {
				t.Errorf("from file: max |diff| %g > %g", d, tol)
			}
		})
	}
}

func TestImageNetPipeline(t *testing.T) {
	pp, err := NewPreprocessor(imagenet())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := readF32Golden(t, "photo.jpg.imagenet")
	got := make([]float32, pp.Len())
	if err := pp.ApplyRGB(readRGBGolden(t, "photo.jpg.rgb"), got); err != nil {
		t.Fatal(err)
	}
	if d := maxAbs(got, want); d != 0 {
		t.Errorf("from Pillow's RGB: max |diff| %g, want 0 (bit-exact)", d)
	}
	img, err := DecodeFile(filepath.Join("testdata", "img", "photo.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pp.Apply(img, got); err != nil {
		t.Fatal(err)
	}
	d := maxAbs(got, want)
	t.Logf("from file: max |diff| %.4g (normalised units)", d)
	if d > float64(jpegConvertTol)/(255*0.225) {
		t.Errorf("from file: max |diff| %g > %d/255/std", d, jpegConvertTol)
	}
}

// TestPadding checks torchvision's CenterCrop on a smaller image (Resize 0):
// zero padding, (c−n)//2 before the image.
func TestPadding(t *testing.T) {
	pp, err := NewPreprocessor(models.Preprocess{Crop: 6, Interpolation: "bicubic"})
	if err != nil {
		t.Fatal(err)
	}
	src := NewRGB(3, 8)
	for i := range src.Pix {
		src.Pix[i] = uint8(i + 1)
	}
	got := make([]float32, pp.Len())
	if err := pp.ApplyRGB(src, got); err != nil {
		t.Fatal(err)
	}
	// x: pad left (6−3)//2 = 1, right 2. y: offset round((8−6)/2) = 1.
	for y := 0; y < 6; y++ {
		for x := 0; x < 6; x++ {
			want := float32(0)
			if sx := x - 1; sx >= 0 && sx < 3 {
				want = float32(src.Pix[((y+1)*3+sx)*3]) / 255
			}
			if g := got[y*6+x]; g != want {
				t.Fatalf("R(%d,%d) = %g, want %g", x, y, g, want)
			}
		}
	}
}

func TestConcurrentApply(t *testing.T) {
	pp, err := NewPreprocessor(models.ViTIN21K())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := readF32Golden(t, "cifar32.png.vit")
	src := readRGBGolden(t, "cifar32.png.rgb")
	photo := readRGBGolden(t, "photo.jpg.rgb")
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]float32, pp.Len())
			for i := 0; i < 6; i++ {
				// Alternate sizes so pooled scratch buffers are reused
				// across different shapes.
				if err := pp.ApplyRGB(photo, buf); err != nil {
					errs <- err.Error()
					return
				}
				if err := pp.ApplyRGB(src, buf); err != nil {
					errs <- err.Error()
					return
				}
				if maxAbs(buf, want) != 0 {
					errs <- "concurrent result differs"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestPreprocessorErrors(t *testing.T) {
	if _, err := NewPreprocessor(models.Preprocess{Resize: 256, Interpolation: "lanczos", Crop: 224}); err == nil {
		t.Error("lanczos accepted")
	}
	pp, err := NewPreprocessor(models.ViTIN21K())
	if err != nil {
		t.Fatal(err)
	}
	if err := pp.ApplyRGB(NewRGB(4, 4), make([]float32, 10)); err == nil {
		t.Error("short dst accepted")
	}
	if err := pp.ApplyRGB(&RGB{W: 4, H: 4}, make([]float32, pp.Len())); err == nil {
		t.Error("RGB with missing pixels accepted")
	}
}
