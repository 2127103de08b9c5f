package extract

import (
	"fmt"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/extract/imageproc"
)

// DecodeSample turns one stored sample into packed 8-bit RGB, as Pillow's
// Image.open(f).convert("RGB") does: encoded files are decoded, raw grey
// pixels are replicated to R = G = B, raw RGB is used as is (not copied).
// A panic in a decoder becomes an error: a bad file must not stop a run.
func DecodeSample(s data.Sample) (img *imageproc.RGB, err error) {
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("decoder failed: %v", p)
		}
	}()
	if s.Raw == nil {
		m, err := imageproc.Decode(s.Encoded)
		if err != nil {
			return nil, err
		}
		return imageproc.ToRGB(m), nil
	}
	r := s.Raw
	if r.W <= 0 || r.H <= 0 || len(r.Pix) != r.W*r.H*r.C {
		return nil, fmt.Errorf("invalid %dx%dx%d raw image with %d bytes", r.W, r.H, r.C, len(r.Pix))
	}
	switch r.C {
	case 3:
		return &imageproc.RGB{W: r.W, H: r.H, Pix: r.Pix}, nil
	case 1:
		out := imageproc.NewRGB(r.W, r.H)
		for j, v := range r.Pix {
			out.Pix[3*j], out.Pix[3*j+1], out.Pix[3*j+2] = v, v, v
		}
		return out, nil
	}
	return nil, fmt.Errorf("raw image with %d channels (want 1 or 3)", r.C)
}
