package imageproc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
)

// Info is what an image file's header says, read without decoding pixels.
type Info struct {
	// Format is the decoder's name: "jpeg", "png", "gif", "bmp", "webp",
	// "tiff".
	Format string
	// W, H are the size in pixels.
	W, H int
	// Bytes is an upper estimate of the memory Decode and the conversion to
	// RGB hold at once for this image: W·H × (bytes per pixel of the
	// decoded form, times 2 where the decoder keeps a second copy —
	// interlaced PNG passes, TIFF strips, lossless WebP's ARGB buffer —
	// plus 4 per component for a progressive JPEG's coefficients) + 3·W·H
	// for the RGB copy, + two rows of 8 bytes a pixel and 256 KiB for the
	// decoder's own buffers.
	Bytes int64
	// Kind describes the decoded form ("16-bit RGBA", "YCbCr", …) for
	// messages.
	Kind string
}

// Inspect reads an image's header (image.DecodeConfig, plus a few bytes
// of the JPEG or PNG stream) and estimates the memory decoding it takes,
// before any pixel memory is allocated. Errors are Decode's for a file
// whose header cannot be read.
func Inspect(data []byte) (Info, error) {
	if len(data) == 0 {
		return Info{}, errors.New("image data is empty (0 bytes)")
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return Info{}, describe(err, format, data)
	}
	in := Info{Format: format, W: cfg.Width, H: cfg.Height}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return in, fmt.Errorf("%s image declares an empty size %d×%d", format, cfg.Width, cfg.Height)
	}
	bpp, kind := modelBytes(cfg.ColorModel)
	in.Kind = kind
	per := float64(bpp)
	switch format {
	case "png":
		if pngInterlaced(data) {
			per *= 2
		}
	case "tiff":
		per *= 2
	case "webp":
		if bpp == 4 { // lossless: NRGBA + the decoder's ARGB words
			per *= 2
		} else { // lossy: YCbCr 4:2:0 (+ alpha) and the RGB conversion
			per, in.Kind = 2.5+3, "YCbCr 4:2:0"
		}
	case "jpeg":
		if jpegProgressive(data) {
			per += 4 * float64(bpp) // int32 coefficients, ≤ 1 block per 64 pixels per component
			in.Kind = "progressive " + kind
		}
	}
	in.Bytes = int64(float64(int64(cfg.Width)*int64(cfg.Height))*(per+3)) + decoderOverhead + 2*8*int64(cfg.Width)
	return in, nil
}

// decoderOverhead is what a decoder allocates besides the pixels and two
// rows (inflate window and buffers, Huffman tables): measured at 40–70 KiB
// for Go's PNG and JPEG decoders, bounded at 256 KiB.
const decoderOverhead = 256 << 10

// modelBytes is the bytes per pixel of the image type a decoder returns for
// a colour model (YCbCr: 3, the 4:4:4 upper bound).
func modelBytes(m color.Model) (int, string) {
	switch m {
	case color.GrayModel:
		return 1, "8-bit grey"
	case color.Gray16Model:
		return 2, "16-bit grey"
	case color.RGBAModel, color.NRGBAModel:
		return 4, "8-bit RGBA"
	case color.RGBA64Model, color.NRGBA64Model:
		return 8, "16-bit RGBA"
	case color.YCbCrModel:
		return 3, "YCbCr"
	case color.NYCbCrAModel:
		return 4, "YCbCr with alpha"
	case color.CMYKModel:
		return 4, "CMYK"
	}
	if _, ok := m.(color.Palette); ok {
		return 1, "palette"
	}
	return 8, "colour model " + fmt.Sprintf("%T", m)
}

// pngInterlaced reports whether a PNG's IHDR announces Adam7 interlacing
// (Go's decoder then holds each pass and the final image).
func pngInterlaced(d []byte) bool {
	// signature (8), IHDR length (4) and type (4), width, height (8), bit
	// depth, colour type, compression, filter, interlace.
	return len(d) > 28 && string(d[12:16]) == "IHDR" && d[28] != 0
}

// jpegProgressive reports whether a JPEG's first frame header is
// progressive (SOF2 or SOF6/SOF10/SOF14): the decoder then keeps every
// coefficient block until the last scan.
func jpegProgressive(d []byte) bool {
	i := 2 // after SOI
	for i+4 <= len(d) {
		if d[i] != 0xff {
			return false
		}
		m := d[i+1]
		if m == 0xff { // fill byte
			i++
			continue
		}
		switch m {
		case 0xc2, 0xc6, 0xca, 0xce:
			return true
		case 0xc0, 0xc1, 0xc3, 0xc5, 0xc7, 0xc9, 0xcb, 0xcd, 0xcf, 0xda:
			return false
		}
		if m >= 0xd0 && m <= 0xd9 || m == 0x01 { // no length
			i += 2
			continue
		}
		i += 2 + int(binary.BigEndian.Uint16(d[i+2:]))
	}
	return false
}

// ErrTooLarge is wrapped by the errors for images refused for their size
// (pixels, or the memory decoding them would take).
var ErrTooLarge = errors.New("image too large")

// TooLarge is the error for an image whose decoding needs more than budget
// bytes.
func (in Info) TooLarge(budget int64) error {
	return fmt.Errorf("%w: %s image of %d×%d pixels (%s) needs about %s to decode, over the budget of %s",
		ErrTooLarge, in.Format, in.W, in.H, in.Kind, FormatBytes(in.Bytes), FormatBytes(budget))
}

// FormatBytes writes a byte count for people: "512 MiB", "1.25 GiB".
func FormatBytes(n int64) string {
	const k = 1024
	switch {
	case n >= k*k*k:
		return fmt.Sprintf("%.2f GiB", float64(n)/(k*k*k))
	case n >= k*k:
		return fmt.Sprintf("%.0f MiB", float64(n)/(k*k))
	case n >= k:
		return fmt.Sprintf("%.0f KiB", float64(n)/k)
	}
	return fmt.Sprintf("%d bytes", n)
}
