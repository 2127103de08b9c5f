package imageproc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// pngHeader is a PNG signature and IHDR (no pixel data) of the given size,
// bit depth, colour type and interlace method.
func pngHeader(w, h uint32, depth, ctype, interlace byte) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9], ihdr[12] = depth, ctype, interlace
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.WriteString("IHDR")
	b.Write(ihdr)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte("IHDR"), ihdr...)))
	return b.Bytes()
}

// TestInspectEstimate checks the estimate against its definition (W·H ×
// decoded bytes per pixel, doubled for interlaced PNG, + 3 for RGB, + two
// rows of 8 bytes a pixel and 256 KiB) on headers alone.
func TestInspectEstimate(t *testing.T) {
	for _, c := range []struct {
		name string
		data []byte
		want int64
		kind string
		w, h int
	}{
		{"16-bit RGBA", pngHeader(10000, 10000, 16, 6, 0), 10000*10000*(8+3) + 16*10000 + 256<<10, "16-bit RGBA", 10000, 10000},
		{"16-bit RGBA interlaced", pngHeader(100, 10, 16, 6, 1), 100*10*(16+3) + 16*100 + 256<<10, "16-bit RGBA", 100, 10},
		{"8-bit RGB", pngHeader(300, 200, 8, 2, 0), 300*200*(4+3) + 16*300 + 256<<10, "8-bit RGBA", 300, 200},
		{"grey", pngHeader(30, 20, 8, 0, 0), 30*20*(1+3) + 16*30 + 256<<10, "8-bit grey", 30, 20},
		{"16-bit grey", pngHeader(30, 20, 16, 0, 0), 30*20*(2+3) + 16*30 + 256<<10, "16-bit grey", 30, 20},
	} {
		in, err := Inspect(c.data)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if in.Bytes != c.want || in.Kind != c.kind || in.W != c.w || in.H != c.h || in.Format != "png" {
			t.Errorf("%s: %+v, want %d bytes, kind %q", c.name, in, c.want, c.kind)
		}
	}
	for name, want := range map[string]bool{"progressive.jpg": true, "photo.jpg": false, "gray.jpg": false, "cmyk.jpg": false} {
		data, err := os.ReadFile(filepath.Join("testdata", "img", name))
		if err != nil {
			t.Fatal(err)
		}
		if got := jpegProgressive(data); got != want {
			t.Errorf("jpegProgressive(%s) = %v, want %v", name, got, want)
		}
	}
}

// TestDecodeBudget: the 16-bit PNG of the issue (10,000² pixels inside the
// 100-megapixel limit, a few hundred bytes of header) is refused before any
// pixel is allocated, with an error saying how much it needs; a small
// image passes the default budget and is refused under a tiny one.
func TestDecodeBudget(t *testing.T) {
	big := pngHeader(10000, 10000, 16, 6, 0)
	_, err := Decode(big)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "png image of 10000×10000 pixels (16-bit RGBA) needs about 1.02 GiB to decode, over the budget of 1.00 GiB") {
		t.Fatalf("Decode of a 10000² 16-bit PNG: %v", err)
	}
	data, err := os.ReadFile(filepath.Join("testdata", "img", "rgb16.png"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeWithin(data, 1000); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "over the budget of 1000 bytes") {
		t.Fatalf("DecodeWithin(rgb16.png, 1000) = %v", err)
	}
	if _, err := DecodeWithin(data, 0); err != nil {
		t.Fatalf("DecodeWithin(…, 0) (no budget): %v", err)
	}
}

// TestInspectBoundsAllocation measures what decoding and converting to RGB
// allocate (runtime.MemStats.TotalAlloc, everything allocated, freed or not)
// and checks that Inspect's estimate is not below it, for the decoded forms
// whose size differs most.
func TestInspectBoundsAllocation(t *testing.T) {
	const w, h = 640, 480
	var rgba64 = image.NewNRGBA64(image.Rect(0, 0, w, h))
	var gray = image.NewGray(image.Rect(0, 0, w, h))
	var rgba = image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := uint16(x*97 + y*31)
			rgba64.SetNRGBA64(x, y, color.NRGBA64{v, v * 3, v * 7, v * 11})
			gray.SetGray(x, y, color.Gray{uint8(v)})
			rgba.SetRGBA(x, y, color.RGBA{uint8(v), uint8(v >> 3), uint8(x), 255})
		}
	}
	encode := func(m image.Image, jpg bool) []byte {
		var b bytes.Buffer
		var err error
		if jpg {
			err = jpeg.Encode(&b, m, &jpeg.Options{Quality: 90})
		} else {
			err = png.Encode(&b, m)
		}
		if err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	for name, data := range map[string][]byte{
		"16-bit RGBA PNG": encode(rgba64, false),
		"grey PNG":        encode(gray, false),
		"RGBA PNG":        encode(rgba, false),
		"JPEG":            encode(rgba, true),
		"grey JPEG":       encode(gray, true),
	} {
		in, err := Inspect(data)
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		img, err := Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		rgb := ToRGB(img)
		runtime.ReadMemStats(&after)
		used := int64(after.TotalAlloc - before.TotalAlloc)
		t.Logf("%s: estimate %d, allocated %d (%.2f×)", name, in.Bytes, used, float64(in.Bytes)/float64(used))
		if used > in.Bytes {
			t.Errorf("%s: decoding allocated %d bytes, more than the estimate %d", name, used, in.Bytes)
		}
		runtime.KeepAlive(rgb)
	}
}
