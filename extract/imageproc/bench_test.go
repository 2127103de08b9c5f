package imageproc

import (
	"bytes"
	"image/jpeg"
	"testing"

	"github.com/cl-dev/cl/models"
)

// typicalJPEG is a 500×375 4:2:0 quality-90 JPEG (the typical ImageNet
// photo size), made from the photo-like test image.
func typicalJPEG(b *testing.B) []byte {
	b.Helper()
	src := Resize(readRGBGolden(b, "photo.jpg.rgb"), 500, 375, Bicubic)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, src, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func perSecond(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkDecodeJPEG500: decode only (libjpeg-exact IDCT + RGB conversion).
func BenchmarkDecodeJPEG500(b *testing.B) {
	data := typicalJPEG(b)
	b.ReportAllocs()
	for b.Loop() {
		img, err := Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		_ = ToRGB(img)
	}
	perSecond(b)
}

// BenchmarkPreprocessJPEG500: decode + bicubic shorter side 256 + crop 224
// + float CHW, one goroutine (images/s per core).
func BenchmarkPreprocessJPEG500(b *testing.B) {
	data := typicalJPEG(b)
	pp, err := NewPreprocessor(models.ViTIN21K())
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, pp.Len())
	b.ReportAllocs()
	for b.Loop() {
		img, err := Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		if err := pp.Apply(img, dst); err != nil {
			b.Fatal(err)
		}
	}
	perSecond(b)
}

// BenchmarkResize500To256: the full Pillow resize 500×375 → 341×256 bicubic.
func BenchmarkResize500To256(b *testing.B) {
	src := Resize(readRGBGolden(b, "photo.jpg.rgb"), 500, 375, Bicubic)
	b.ReportAllocs()
	for b.Loop() {
		_ = Resize(src, 341, 256, Bicubic)
	}
	perSecond(b)
}

// BenchmarkApplyRGB500: resize (crop window only) + crop + float, from RGB.
func BenchmarkApplyRGB500(b *testing.B) {
	src := Resize(readRGBGolden(b, "photo.jpg.rgb"), 500, 375, Bicubic)
	pp, err := NewPreprocessor(models.ViTIN21K())
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, pp.Len())
	b.ReportAllocs()
	for b.Loop() {
		if err := pp.ApplyRGB(src, dst); err != nil {
			b.Fatal(err)
		}
	}
	perSecond(b)
}

// BenchmarkApplyCIFAR: 32×32 → bicubic 256 → crop 224 → float.
func BenchmarkApplyCIFAR(b *testing.B) {
	src := readRGBGolden(b, "cifar32.png.rgb")
	pp, err := NewPreprocessor(models.ViTIN21K())
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, pp.Len())
	b.ReportAllocs()
	for b.Loop() {
		if err := pp.ApplyRGB(src, dst); err != nil {
			b.Fatal(err)
		}
	}
	perSecond(b)
}

// BenchmarkStdlibJPEG500 is the reference for BenchmarkDecodeJPEG500: Go's
// image/jpeg decode alone (Go's IDCT, no RGB conversion).
func BenchmarkStdlibJPEG500(b *testing.B) {
	data := typicalJPEG(b)
	for b.Loop() {
		if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
	perSecond(b)
}
