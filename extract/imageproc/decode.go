package imageproc

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	_ "image/jpeg" // register JPEG (headers; pixels come from ljpeg)
	_ "image/png"  // register PNG
	"io"
	"os"
	"strings"

	_ "golang.org/x/image/bmp"  // register BMP
	_ "golang.org/x/image/tiff" // register TIFF
	"golang.org/x/image/webp"

	"github.com/cl-dev/cl/extract/imageproc/internal/ljpeg"
)

// MaxPixels is the largest image (width × height) Decode accepts: 100
// megapixels, about 300 MB as RGB. Larger declared sizes are refused before
// any pixel memory is allocated.
const MaxPixels = 100_000_000

// maxSide bounds either side in pixels (JPEG's own limit).
const maxSide = 65535

// DefaultDecodeBudget is the memory Decode lets one image take (Inspect's
// estimate): 1 GiB. A 100-megapixel 8-bit RGB image fits (about 700 MB); a
// 16-bit RGBA one of the same size (about 1.1 GB) does not.
const DefaultDecodeBudget = 1 << 30

// Formats lists the image formats Decode reads.
const Formats = "JPEG, PNG, GIF (first frame), BMP, WebP, TIFF (not CMYK)"

// Decode decodes a JPEG, PNG, GIF (first frame), BMP, WebP or TIFF image
// within DefaultDecodeBudget (see DecodeWithin).
func Decode(data []byte) (image.Image, error) { return DecodeWithin(data, DefaultDecodeBudget) }

// DecodeWithin decodes a JPEG, PNG, GIF (first frame), BMP, WebP or TIFF
// image. The header is read first (Inspect) and images over MaxPixels,
// with a side over 65535 pixels, or whose decoding Inspect estimates at
// more than budget bytes (budget > 0) are refused before any pixel memory
// is allocated, with an error wrapping ErrTooLarge. Lossy WebP is returned
// as *RGB, converted with libwebp's fancy upsampling and colour conversion
// (what Pillow sees); GIF keeps the colour of its transparent palette entry
// as Pillow does. Errors say what is wrong: no data, an unknown format
// (with the first bytes), a truncated or corrupt file.
func DecodeWithin(data []byte, budget int64) (image.Image, error) {
	in, err := Inspect(data)
	if err != nil {
		return nil, err
	}
	if in.W > maxSide || in.H > maxSide || int64(in.W)*int64(in.H) > MaxPixels {
		return nil, fmt.Errorf("%w: %s image is %d×%d pixels, over the limit of %d megapixels or %d pixels a side",
			ErrTooLarge, in.Format, in.W, in.H, MaxPixels/1_000_000, maxSide)
	}
	if budget > 0 && in.Bytes > budget {
		return nil, in.TooLarge(budget)
	}
	format := in.Format
	var img image.Image
	switch format {
	case "gif":
		img, err = gif.Decode(bytes.NewReader(data))
		if err == nil {
			restoreGIFTransparent(img, data)
		}
	case "jpeg":
		img, err = ljpeg.Decode(bytes.NewReader(data))
	case "webp":
		img, err = webp.Decode(bytes.NewReader(data))
		if err == nil {
			img = webpToRGB(img)
		}
	default:
		img, _, err = image.Decode(bytes.NewReader(data))
	}
	if err != nil {
		return nil, describe(err, format, data)
	}
	if b := img.Bounds(); b.Dx() <= 0 || b.Dy() <= 0 {
		return nil, fmt.Errorf("%s image decoded to an empty size %d×%d", format, b.Dx(), b.Dy())
	}
	return img, nil
}

// DecodeFile reads and decodes the image at path (see Decode); errors name
// the path. A path that is not a regular file (a named pipe would block the
// read for ever) is refused without reading it.
func DecodeFile(path string) (image.Image, error) {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("reading image %s: not a regular file (%s)", path, st.Mode().Type())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading image %s: %w", path, err)
	}
	img, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	return img, nil
}

func describe(err error, format string, data []byte) error {
	switch {
	case errors.Is(err, image.ErrFormat):
		n := min(len(data), 8)
		return fmt.Errorf("unknown image format (first bytes % x); cl reads %s", data[:n], Formats)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || looksTruncated(err.Error()):
		return fmt.Errorf("%s image is truncated (%d bytes; was the file cut short?): %w", format, len(data), err)
	}
	if format == "" {
		return fmt.Errorf("corrupt image: %w", err)
	}
	return fmt.Errorf("corrupt %s image: %w", format, err)
}

// looksTruncated recognises the decoders' messages for data that ends early.
func looksTruncated(msg string) bool {
	for _, s := range []string{"short Huffman data", "not enough pixel data", "unexpected EOF", "missing SOS marker"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// restoreGIFTransparent gives the transparent palette entry back the colour
// stored in the file: Go's decoder replaces it with transparent black, while
// Pillow's convert("RGB") shows the stored colour.
func restoreGIFTransparent(img image.Image, data []byte) {
	p, ok := img.(*image.Paletted)
	if !ok {
		return
	}
	table := gifFirstColorTable(data)
	for i, c := range p.Palette {
		if rgba, ok := c.(color.RGBA); ok && rgba == (color.RGBA{}) && 3*i+2 < len(table) {
			p.Palette[i] = color.RGBA{table[3*i], table[3*i+1], table[3*i+2], 255}
		}
	}
}

// gifFirstColorTable returns the colour table (RGB triples) the first frame
// of a GIF uses: its local table, else the global one; nil when the stream
// cannot be walked.
func gifFirstColorTable(d []byte) []byte {
	if len(d) < 13 {
		return nil
	}
	tableLen := func(flags byte) int { return 3 << (flags&7 + 1) }
	pos := 13
	var global []byte
	if d[10]&0x80 != 0 {
		n := tableLen(d[10])
		if pos+n > len(d) {
			return nil
		}
		global = d[pos : pos+n]
		pos += n
	}
	for pos < len(d) {
		switch d[pos] {
		case 0x21: // extension: label, then data sub-blocks
			pos += 2
			for pos < len(d) && d[pos] != 0 {
				pos += int(d[pos]) + 1
			}
			pos++
		case 0x2c: // image descriptor
			if pos+10 > len(d) {
				return global
			}
			flags := d[pos+9]
			if flags&0x80 != 0 {
				n := tableLen(flags)
				if pos+10+n > len(d) {
					return global
				}
				return d[pos+10 : pos+10+n]
			}
			return global
		default:
			return global
		}
	}
	return global
}
