package imageproc

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecodeErrors(t *testing.T) {
	jpg, err := os.ReadFile(filepath.Join("testdata", "img", "photo.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	pngData, err := os.ReadFile(filepath.Join("testdata", "img", "rgb.png"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty (0 bytes)"},
		{"text", []byte("hello, world"), "unknown image format (first bytes 68 65 6c 6c 6f 2c 20 77)"},
		{"truncated jpeg", jpg[:len(jpg)/2], "jpeg image is truncated"},
		{"truncated png", pngData[:len(pngData)-40], "png image is truncated"},
		{"jpeg header only", jpg[:2], "jpeg"},
		{"huge png", hugePNGHeader(200000, 200000), "over the limit"},
		{"wide png", hugePNGHeader(70000, 1), "over the limit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, err := Decode(c.data)
			if err == nil {
				t.Fatalf("no error, got %T", img)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
	_, err = DecodeFile(filepath.Join("testdata", "no-such.png"))
	if err == nil || !strings.Contains(err.Error(), "no-such.png") {
		t.Errorf("DecodeFile error %v does not name the path", err)
	}
}

// hugePNGHeader is a PNG signature + IHDR declaring w×h RGB (no pixel data).
func hugePNGHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.WriteString("IHDR")
	b.Write(ihdr)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte("IHDR"), ihdr...)))
	return b.Bytes()
}

func TestRGBImageInterface(t *testing.T) {
	m := readRGBGolden(t, "rgb.png.rgb")
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	back, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := maxDiff(ToRGB(back).Pix, m.Pix); d != 0 {
		t.Errorf("PNG round trip of *RGB differs by %d", d)
	}
	if m.At(-1, 0) != (image.Transparent.C) && m.At(-1, 0) == m.At(0, 0) {
		t.Error("At outside the bounds")
	}
}

// FuzzDecode: no panics and bounded memory on arbitrary bytes; whatever
// decodes converts to RGB of the same size.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "img", "*"))
	for _, p := range files {
		if d, err := os.ReadFile(p); err == nil && len(d) < 64<<10 {
			f.Add(d)
		}
	}
	f.Add(hugePNGHeader(200000, 200000))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Decode(data)
		if err != nil {
			if img != nil {
				t.Fatal("image and error")
			}
			return
		}
		b := img.Bounds()
		if int64(b.Dx())*int64(b.Dy()) > MaxPixels {
			t.Fatalf("decoded %v over MaxPixels", b)
		}
		m := ToRGB(img)
		if m.W != b.Dx() || m.H != b.Dy() || len(m.Pix) != 3*m.W*m.H {
			t.Fatalf("ToRGB %dx%d (%d bytes) of %v", m.W, m.H, len(m.Pix), b)
		}
	})
}
