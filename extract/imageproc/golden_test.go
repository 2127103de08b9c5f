package imageproc

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/npy"
)

// The goldens are made by testdata/make_goldens.py (Pillow 9.4, torch 1.13).

func readRGBGolden(t testing.TB, name string) *RGB {
	t.Helper()
	data, shape, err := npy.ReadUint8(filepath.Join("testdata", "golden", name+".npy"))
	if err != nil {
		t.Fatal(err)
	}
	if len(shape) != 3 || shape[2] != 3 {
		t.Fatalf("%s: shape %v, want [H,W,3]", name, shape)
	}
	return &RGB{W: shape[1], H: shape[0], Pix: data}
}

// maxDiff returns the largest absolute difference and how many bytes differ.
func maxDiff(a, b []uint8) (maxd, count int) {
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		if d > 0 {
			count++
		}
		maxd = max(maxd, d)
	}
	return maxd, count
}

func isJPEG(name string) bool { return strings.HasSuffix(name, ".jpg") }

// jpegConvertTol is the largest per-sample difference allowed between our
// and libjpeg-turbo's decoding of the test JPEGs. With the ISLOW inverse DCT
// (internal/ljpeg), libjpeg's fancy upsampling and colour conversion it is
// 0; with Go's own image/jpeg it was 3 (IDCT and upsampling differ).
const jpegConvertTol = 0

func TestToRGBMatchesPillow(t *testing.T) {
	files, err := os.ReadDir(filepath.Join("testdata", "img"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := f.Name()
		t.Run(name, func(t *testing.T) {
			img, err := DecodeFile(filepath.Join("testdata", "img", name))
			if err != nil {
				t.Fatal(err)
			}
			got := ToRGB(img)
			want := readRGBGolden(t, name+".rgb")
			if got.W != want.W || got.H != want.H {
				t.Fatalf("size %dx%d, Pillow %dx%d", got.W, got.H, want.W, want.H)
			}
			d, n := maxDiff(got.Pix, want.Pix)
			t.Logf("%-14s %T: max diff %d, %d of %d samples differ", name, img, d, n, len(got.Pix))
			tol := 0
			if isJPEG(name) {
				tol = jpegConvertTol
			}
			if d > tol {
				t.Errorf("max diff %d > %d (%d samples differ)", d, tol, n)
			}
		})
	}
}

func TestResizeMatchesPillow(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.bi*.*x*.npy"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no resize goldens (%v)", err)
	}
	sort.Strings(files)
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".npy")
		// <image>.<filter>.<W>x<H>
		parts := strings.Split(name, ".")
		var w, h int
		if _, err := fmt.Sscanf(parts[len(parts)-1], "%dx%d", &w, &h); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		filter, err := ParseFilter(parts[len(parts)-2])
		if err != nil {
			t.Fatal(err)
		}
		src := strings.Join(parts[:len(parts)-2], ".")
		t.Run(name, func(t *testing.T) {
			in := readRGBGolden(t, src+".rgb")
			want := readRGBGolden(t, name)
			got := Resize(in, w, h, filter)
			if got.W != want.W || got.H != want.H {
				t.Fatalf("size %dx%d, Pillow %dx%d", got.W, got.H, want.W, want.H)
			}
			if d, n := maxDiff(got.Pix, want.Pix); d != 0 {
				t.Errorf("%dx%d → %dx%d %v: max diff %d, %d samples differ (want bit-exact)", in.W, in.H, w, h, filter, d, n)
			}
		})
	}
}
