package imageproc

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"

	"github.com/cl-dev/cl/models"
)

// Training-time augmentation: torchvision 0.14's RandomResizedCrop and
// RandomHorizontalFlip on Pillow images, followed by ToTensor (and Normalize
// when the model wants it). The crop box follows torchvision's sampling
// algorithm step by step and the resampling is the Pillow-exact Resize, so for
// a given box and flip the output is bit-identical to torchvision's; the
// random numbers come from Go's math/rand/v2, so the boxes are drawn from
// the same distribution, not the same sequence (docs/PREPROCESSING.md).

// CropBox is a crop window in pixels of the source image: columns
// [X, X+W), rows [Y, Y+H). torchvision calls it (top=i=Y, left=j=X, h, w).
type CropBox struct {
	X, Y, W, H int
}

// RandomResizedCrop holds the parameters of torchvision's
// RandomResizedCrop(size, scale, ratio, interpolation).
type RandomResizedCrop struct {
	// Size is the side of the square output in pixels.
	Size int `json:"size"`
	// Scale is the range of the crop's area as a fraction of the image's,
	// before the aspect ratio is applied (torchvision default 0.08–1).
	Scale [2]float64 `json:"scale"`
	// Ratio is the range of the crop's aspect ratio w/h, sampled uniformly
	// in log space (torchvision default 3/4–4/3).
	Ratio [2]float64 `json:"ratio"`
	// Interpolation is the resampling filter of the resize to Size×Size
	// (torchvision default bilinear).
	Interpolation Filter `json:"interpolation"`
}

// MarshalText writes a Filter as its manifest name ("bicubic", "bilinear"),
// so settings that hold one read well as JSON.
func (f Filter) MarshalText() ([]byte, error) {
	if f != Bicubic && f != Bilinear {
		return nil, fmt.Errorf("filter %d unknown", int(f))
	}
	return []byte(f.String()), nil
}

// UnmarshalText reads a Filter name (ParseFilter).
func (f *Filter) UnmarshalText(b []byte) error {
	v, err := ParseFilter(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// Validate reports parameters torchvision would refuse or that give no crop.
func (c RandomResizedCrop) Validate() error {
	if c.Size <= 0 || c.Size > 8192 {
		return fmt.Errorf("random resized crop: size %d must be in 1…8192", c.Size)
	}
	s, r := c.Scale, c.Ratio
	if !(s[0] > 0 && s[0] <= s[1]) || math.IsInf(s[1], 0) {
		return fmt.Errorf("random resized crop: scale (%v, %v) must satisfy 0 < min ≤ max", s[0], s[1])
	}
	if !(r[0] > 0 && r[0] <= r[1]) || math.IsInf(r[1], 0) {
		return fmt.Errorf("random resized crop: ratio (%v, %v) must satisfy 0 < min ≤ max", r[0], r[1])
	}
	if c.Interpolation != Bilinear && c.Interpolation != Bicubic {
		return fmt.Errorf("random resized crop: interpolation %v unknown (use bicubic or bilinear)", c.Interpolation)
	}
	return nil
}

// roundHalfEven is Python 3's round() of a float to an int.
func roundHalfEven(x float64) int { return int(math.RoundToEven(x)) }

// Sample draws a crop box for a w×h image with torchvision 0.14's
// RandomResizedCrop.get_params: up to 10 attempts, each drawing an area
// fraction s ~ U(Scale) and a log aspect ratio ~ U(log Ratio), giving
// cw = round(√(s·w·h·r)), ch = round(√(s·w·h/r)) (Python's round, half to
// even); the first attempt with 0 < cw ≤ w and 0 < ch ≤ h is placed at a
// uniformly drawn top-left corner. When all 10 fail, the fallback is the
// centre crop of the whole image clamped to the ratio range (width w and
// height round(w/min ratio) when the image is narrower than the range, height
// h and width round(h·max ratio) when wider, the whole image otherwise),
// at ((w−cw)/2, (h−ch)/2) rounded down; fallback reports that case.
func (c RandomResizedCrop) Sample(w, h int, rng *rand.Rand) (box CropBox, fallback bool) {
	area := float64(w) * float64(h)
	logLo, logHi := math.Log(c.Ratio[0]), math.Log(c.Ratio[1])
	for attempt := 0; attempt < 10; attempt++ {
		target := area * (c.Scale[0] + (c.Scale[1]-c.Scale[0])*rng.Float64())
		aspect := math.Exp(logLo + (logHi-logLo)*rng.Float64())
		cw := roundHalfEven(math.Sqrt(target * aspect))
		ch := roundHalfEven(math.Sqrt(target / aspect))
		if cw > 0 && cw <= w && ch > 0 && ch <= h {
			y := rng.IntN(h - ch + 1)
			x := rng.IntN(w - cw + 1)
			return CropBox{X: x, Y: y, W: cw, H: ch}, false
		}
	}
	return c.Fallback(w, h), true
}

// Fallback is torchvision's centre crop after 10 failed attempts (see
// Sample).
func (c RandomResizedCrop) Fallback(w, h int) CropBox {
	in := float64(w) / float64(h)
	cw, ch := w, h
	switch {
	case in < c.Ratio[0]:
		ch = roundHalfEven(float64(cw) / c.Ratio[0])
	case in > c.Ratio[1]:
		cw = roundHalfEven(float64(ch) * c.Ratio[1])
	}
	return CropBox{X: (w - cw) / 2, Y: (h - ch) / 2, W: cw, H: ch}
}

// Augment is a training transform: RandomResizedCrop, then
// RandomHorizontalFlip(FlipP), then ToTensor and, when Mean/Std are set,
// Normalize, in torchvision's order.
type Augment struct {
	// Crop is the random resized crop.
	Crop RandomResizedCrop `json:"crop"`
	// FlipP is the probability of a horizontal flip (0: never).
	FlipP float64 `json:"flip_p"`
	// Mean and Std normalise each channel after the [0,1] scaling; both
	// empty means none (PILOT's ViT transforms).
	Mean []float32 `json:"mean,omitempty"`
	Std  []float32 `json:"std,omitempty"`
}

// presets are PILOT's training transforms (utils/data.py), by name.
var presets = map[string]func() Augment{
	// build_transform(is_train=True): every dataset and method on
	// pre-trained ViTs except CODA-Prompt.
	"pilot": func() Augment {
		return Augment{Crop: RandomResizedCrop{Size: 224, Scale: [2]float64{0.05, 1}, Ratio: [2]float64{3. / 4, 4. / 3}, Interpolation: Bilinear}, FlipP: 0.5}
	},
	// build_transform_coda_prompt(is_train=True): torchvision defaults,
	// Normalize((0,0,0), (1,1,1)) is the identity.
	"coda-prompt": func() Augment {
		return Augment{Crop: RandomResizedCrop{Size: 224, Scale: [2]float64{0.08, 1}, Ratio: [2]float64{3. / 4, 4. / 3}, Interpolation: Bilinear}, FlipP: 0.5}
	},
}

// presetAliases are PILOT's dataset names whose training transform is a
// preset (all of them use build_transform for every method but CODA-Prompt).
var presetAliases = map[string]string{
	"cifar224": "pilot", "imagenetr": "pilot", "imageneta": "pilot", "cub": "pilot",
	"objectnet": "pilot", "omnibenchmark": "pilot", "vtab": "pilot",
}

// Presets lists the names TrainPreset accepts.
func Presets() []string {
	var out []string
	for k := range presets {
		out = append(out, k)
	}
	for k := range presetAliases {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TrainPreset returns PILOT's training transform by name:
//
//	pilot        RandomResizedCrop(224, scale=(0.05, 1), ratio=(3/4, 4/3), bilinear)
//	             + RandomHorizontalFlip(0.5) + ToTensor (no Normalize)
//	coda-prompt  RandomResizedCrop(224) [scale (0.08, 1)] + flip + ToTensor
//
// PILOT's dataset names (cifar224, imagenetr, imageneta, cub, objectnet,
// omnibenchmark, vtab) are accepted and give "pilot". Use ForModel to match
// a model's input size and normalisation.
func TrainPreset(name string) (Augment, error) {
	n := strings.ToLower(name)
	if a, ok := presetAliases[n]; ok {
		n = a
	}
	mk, ok := presets[n]
	if !ok {
		return Augment{}, fmt.Errorf("augmentation preset %q unknown (use one of %s)", name, strings.Join(Presets(), ", "))
	}
	return mk(), nil
}

// ForModel returns a copy of a with the output size and normalisation of a
// model's preprocessing (its Crop, Mean and Std), so training images look
// like the images the model sees at test time.
func (a Augment) ForModel(p models.Preprocess) Augment {
	a.Crop.Size = p.Crop
	a.Mean = append([]float32(nil), p.Mean...)
	a.Std = append([]float32(nil), p.Std...)
	return a
}

// Augmenter applies an Augment. It is safe for concurrent use; every call
// takes its randomness from the rng it is given.
type Augmenter struct {
	a    Augment
	lut  [3][256]float32
	pool sync.Pool // *augScratch
}

type augScratch struct {
	rgb, crop, out RGB
	tmp            []uint8
}

// NewAugmenter validates a and builds an Augmenter.
func NewAugmenter(a Augment) (*Augmenter, error) {
	if err := a.Crop.Validate(); err != nil {
		return nil, err
	}
	if !(a.FlipP >= 0 && a.FlipP <= 1) {
		return nil, fmt.Errorf("augment: flip probability %v must be in [0, 1]", a.FlipP)
	}
	if len(a.Mean) != len(a.Std) || (len(a.Mean) != 0 && len(a.Mean) != 3) {
		return nil, fmt.Errorf("augment: mean and std need 3 values each or none (got %d and %d)", len(a.Mean), len(a.Std))
	}
	for _, s := range a.Std {
		if !(s > 0) {
			return nil, fmt.Errorf("augment: std %v must be > 0", a.Std)
		}
	}
	ag := &Augmenter{a: a}
	for c := 0; c < 3; c++ {
		for v := 0; v < 256; v++ {
			x := float32(v) / 255
			if len(a.Mean) == 3 {
				x = float32(x-a.Mean[c]) / a.Std[c]
			}
			ag.lut[c][v] = x
		}
	}
	ag.pool.New = func() any { return new(augScratch) }
	return ag, nil
}

// Augment returns the transform's settings.
func (ag *Augmenter) Augment() Augment { return ag.a }

// Size is the side of the output; Len = 3·Size·Size values.
func (ag *Augmenter) Size() int { return ag.a.Crop.Size }

// Len is the number of float32 values Apply writes.
func (ag *Augmenter) Len() int { return 3 * ag.a.Crop.Size * ag.a.Crop.Size }

// SampleRNG returns the random source of one sample: a PCG generator seeded
// from (seed, epoch, index) through a SplitMix64 hash, so a sample's
// augmentation depends only on these three numbers, never on which worker
// runs it or in which order.
func SampleRNG(seed uint64, epoch, index int) *rand.Rand {
	a := splitmix64(seed ^ splitmix64(uint64(epoch)+0x632be59bd9b4e019))
	b := splitmix64(a ^ splitmix64(uint64(index)+0x9e3779b97f4a7c15))
	return rand.New(rand.NewPCG(a, b))
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Apply converts img to RGB (as Pillow's convert("RGB"), see ToRGB), draws a
// crop box and a flip from rng (box first, then the flip, torchvision's
// order) and writes the augmented CHW tensor [3, Size, Size] (float32 in
// [0,1], or normalised) into dst[:Len()]. It returns the box and flip used.
func (ag *Augmenter) Apply(img image.Image, rng *rand.Rand, dst []float32) (CropBox, bool, error) {
	if img == nil {
		return CropBox{}, false, fmt.Errorf("augment: no image")
	}
	if b := img.Bounds(); b.Dx() <= 0 || b.Dy() <= 0 {
		return CropBox{}, false, fmt.Errorf("augment: empty image %dx%d", b.Dx(), b.Dy())
	}
	s := ag.pool.Get().(*augScratch)
	defer ag.pool.Put(s)
	src, ok := img.(*RGB)
	if !ok {
		toRGBInto(&s.rgb, img)
		src = &s.rgb
	}
	return ag.applyRGB(s, src, rng, dst)
}

// ApplyRGB is Apply for raw RGB pixels (CIFAR, IDX); src is not changed.
func (ag *Augmenter) ApplyRGB(src *RGB, rng *rand.Rand, dst []float32) (CropBox, bool, error) {
	if src == nil || src.W <= 0 || src.H <= 0 || len(src.Pix) != src.W*src.H*3 {
		return CropBox{}, false, fmt.Errorf("augment: invalid RGB image")
	}
	s := ag.pool.Get().(*augScratch)
	defer ag.pool.Put(s)
	return ag.applyRGB(s, src, rng, dst)
}

func (ag *Augmenter) applyRGB(s *augScratch, src *RGB, rng *rand.Rand, dst []float32) (CropBox, bool, error) {
	box, _ := ag.a.Crop.Sample(src.W, src.H, rng)
	flip := ag.a.FlipP > 0 && rng.Float64() < ag.a.FlipP
	return box, flip, ag.applyBox(s, src, box, flip, dst)
}

// ApplyBox is the deterministic part of Apply: crop box from src, resize it
// to Size×Size with the Pillow-exact resampler, mirror it when flip, and
// write the CHW tensor into dst[:Len()]. It equals torchvision's
// F.resized_crop(img, Y, X, H, W, [Size, Size], interpolation) followed by
// F.hflip when flip, ToTensor and Normalize.
func (ag *Augmenter) ApplyBox(src *RGB, box CropBox, flip bool, dst []float32) error {
	if src == nil || src.W <= 0 || src.H <= 0 || len(src.Pix) != src.W*src.H*3 {
		return fmt.Errorf("augment: invalid RGB image")
	}
	s := ag.pool.Get().(*augScratch)
	defer ag.pool.Put(s)
	return ag.applyBox(s, src, box, flip, dst)
}

func (ag *Augmenter) applyBox(s *augScratch, src *RGB, box CropBox, flip bool, dst []float32) error {
	if box.W <= 0 || box.H <= 0 || box.X < 0 || box.Y < 0 || box.X+box.W > src.W || box.Y+box.H > src.H {
		return fmt.Errorf("augment: crop box %+v outside the %dx%d image", box, src.W, src.H)
	}
	n := ag.a.Crop.Size
	if len(dst) < 3*n*n {
		return fmt.Errorf("augment: output has room for %d values, need 3×%d×%d = %d", len(dst), n, n, 3*n*n)
	}
	// Pillow's crop copies the box; Image.resize then resamples it.
	s.crop.resize(box.W, box.H)
	copyWindow(&s.crop, src, box.X, box.Y)
	resizeWindow(&s.out, &s.tmp, &s.crop, n, n, 0, 0, n, n, ag.a.Crop.Interpolation)
	pix := s.out.Pix[:3*n*n]
	r, g, b := dst[:n*n], dst[n*n:2*n*n], dst[2*n*n:3*n*n]
	for y := 0; y < n; y++ {
		row := pix[y*n*3 : (y+1)*n*3]
		for x := 0; x < n; x++ {
			sx := x
			if flip {
				sx = n - 1 - x
			}
			p := row[sx*3 : sx*3+3 : sx*3+3]
			i := y*n + x
			r[i] = ag.lut[0][p[0]]
			g[i] = ag.lut[1][p[1]]
			b[i] = ag.lut[2][p[2]]
		}
	}
	return nil
}
