package imageproc

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/cl-dev/cl/internal/npy"
	"github.com/cl-dev/cl/models"
)

// Goldens: testdata/make_augment_goldens.py (torchvision 0.14, Pillow 9.4).

// fixedCrop is an Augmenter whose only job is ApplyBox at size n.
func fixedCrop(t testing.TB, n int, f Filter) *Augmenter {
	t.Helper()
	ag, err := NewAugmenter(Augment{Crop: RandomResizedCrop{Size: n, Scale: [2]float64{1, 1}, Ratio: [2]float64{1, 1}, Interpolation: f}})
	if err != nil {
		t.Fatal(err)
	}
	return ag
}

// For a given box and flip the augmentation is torchvision's
// F.resized_crop (+ F.hflip) bit for bit, both filters, down and up.
func TestResizedCropMatchesTorchvision(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "augment", "*.npy"))
	if len(files) < 10 {
		t.Fatalf("augment goldens missing (%d files): run testdata/make_augment_goldens.py", len(files))
	}
	for _, path := range files {
		base := strings.TrimSuffix(filepath.Base(path), ".npy")
		// <image>.<ext>.<filter|tensor>.<x>_<y>_<w>_<h>.<size>[.flip]
		parts := strings.Split(base, ".")
		img, kind := parts[0]+"."+parts[1], parts[2]
		var box CropBox
		var size int
		fmt.Sscanf(parts[3], "%d_%d_%d_%d", &box.X, &box.Y, &box.W, &box.H)
		fmt.Sscanf(parts[4], "%d", &size)
		flip := len(parts) > 5 && parts[5] == "flip"
		t.Run(base, func(t *testing.T) {
			im, err := DecodeFile(filepath.Join("testdata", "img", img))
			if err != nil {
				t.Fatal(err)
			}
			filter := Bilinear
			if kind == "bicubic" {
				filter = Bicubic
			}
			ag := fixedCrop(t, size, filter)
			got := make([]float32, ag.Len())
			if err := ag.ApplyBox(ToRGB(im), box, flip, got); err != nil {
				t.Fatal(err)
			}
			var want []float32
			if kind == "tensor" {
				want, _, err = npy.ReadFloat32(path)
			} else {
				var u []uint8
				var shape []int
				u, shape, err = npy.ReadUint8(path)
				if err == nil {
					want = hwcToCHW(&RGB{W: shape[1], H: shape[0], Pix: u})
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := maxAbs(got, want); d != 0 || len(got) != len(want) {
				t.Fatalf("max |Δ| = %g (×255 = %g) vs torchvision", d, d*255)
			}
		})
	}
}

// cropCopy is Pillow's Image.crop of a box inside the image.
func cropCopy(src *RGB, b CropBox) *RGB {
	out := NewRGB(b.W, b.H)
	for y := 0; y < b.H; y++ {
		for x := 0; x < b.W; x++ {
			copy(out.Pix[(y*b.W+x)*3:(y*b.W+x)*3+3], src.Pix[((y+b.Y)*src.W+x+b.X)*3:])
		}
	}
	return out
}

// A random crop is the deterministic Resize of the box it drew, mirrored
// when it flipped: Apply = ApplyBox(box) = Resize(crop(box)).
func TestRandomCropIsResizeOfItsBox(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := NewRGB(97, 61)
	for i := range src.Pix {
		src.Pix[i] = uint8(rng.IntN(256))
	}
	for _, f := range []Filter{Bilinear, Bicubic} {
		ag, err := NewAugmenter(Augment{Crop: RandomResizedCrop{Size: 40, Scale: [2]float64{0.05, 1}, Ratio: [2]float64{0.5, 2}, Interpolation: f}, FlipP: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		flips := 0
		for k := 0; k < 40; k++ {
			got := make([]float32, ag.Len())
			box, flip, err := ag.ApplyRGB(src, SampleRNG(7, 0, k), got)
			if err != nil {
				t.Fatal(err)
			}
			r := Resize(cropCopy(src, box), 40, 40, f)
			if flip {
				flips++
				for y := 0; y < r.H; y++ {
					row := r.Pix[y*r.W*3 : (y+1)*r.W*3]
					for x := 0; x < r.W/2; x++ {
						for c := 0; c < 3; c++ {
							row[x*3+c], row[(r.W-1-x)*3+c] = row[(r.W-1-x)*3+c], row[x*3+c]
						}
					}
				}
			}
			if d := maxAbs(got, hwcToCHW(r)); d != 0 {
				t.Fatalf("%v box %+v flip %v: max |Δ| %g vs Resize of the box", f, box, flip, d)
			}
		}
		if flips == 0 || flips == 40 {
			t.Fatalf("%d flips out of 40 at p = 0.5", flips)
		}
	}
}

type boxStats struct {
	W, H     int
	Scale    [2]float64
	Ratio    [2]float64
	N        int
	Fallback int
	AreaMean float64 `json:"area_mean"`
	AreaVar  float64 `json:"area_var"`
	LogrMean float64 `json:"logr_mean"`
	LogrVar  float64 `json:"logr_var"`
}

type boxesGolden struct {
	Fallback []struct {
		W, H  int
		Scale [2]float64
		Ratio [2]float64
		Box   [4]int
	}
	Stats []boxStats
}

func readBoxes(t *testing.T) boxesGolden {
	data, err := os.ReadFile(filepath.Join("testdata", "augment", "boxes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g boxesGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// The fallback after 10 failed attempts is torchvision's box exactly.
func TestFallbackBoxes(t *testing.T) {
	for _, c := range readBoxes(t).Fallback {
		rc := RandomResizedCrop{Size: 8, Scale: c.Scale, Ratio: c.Ratio}
		want := CropBox{X: c.Box[0], Y: c.Box[1], W: c.Box[2], H: c.Box[3]}
		box, fb := rc.Sample(c.W, c.H, rand.New(rand.NewPCG(3, 4)))
		if !fb || box != want || rc.Fallback(c.W, c.H) != want {
			t.Errorf("%dx%d scale %v ratio %v: %+v (fallback %v), torchvision %+v", c.W, c.H, c.Scale, c.Ratio, box, fb, want)
		}
	}
}

// reference is RandomResizedCrop's distribution computed from its
// definition by quadrature over one attempt's two uniform draws (a grid of
// n×n cell midpoints): the chance that an attempt fits, and the area
// fractions and log aspect ratios of the attempts that fit.
type reference struct {
	pFit       float64
	area, logr []float64 // sorted, one entry per fitting grid cell
}

func definition(W, H int, scale, ratio [2]float64, n int) reference {
	var ref reference
	A := float64(W * H)
	l0, l1 := math.Log(ratio[0]), math.Log(ratio[1])
	fit := 0
	for i := 0; i < n; i++ {
		s := scale[0] + (scale[1]-scale[0])*(float64(i)+0.5)/float64(n)
		for j := 0; j < n; j++ {
			r := math.Exp(l0 + (l1-l0)*(float64(j)+0.5)/float64(n))
			w := int(math.RoundToEven(math.Sqrt(s * A * r)))
			h := int(math.RoundToEven(math.Sqrt(s * A / r)))
			if w < 1 || w > W || h < 1 || h > H {
				continue
			}
			fit++
			ref.area = append(ref.area, float64(w*h)/A)
			ref.logr = append(ref.logr, math.Log(float64(w)/float64(h)))
		}
	}
	ref.pFit = float64(fit) / float64(n*n)
	sort.Float64s(ref.area)
	sort.Float64s(ref.logr)
	return ref
}

func meanVar(x []float64) (m, v float64) {
	for _, a := range x {
		m += a
	}
	m /= float64(len(x))
	for _, a := range x {
		v += (a - m) * (a - m)
	}
	return m, v / float64(len(x))
}

// ks is the two-sided Kolmogorov–Smirnov distance between the empirical
// distribution of sample and the reference distribution ref (both sorted),
// evaluated at every distinct value (exact for discrete distributions).
func ks(sample, ref []float64) float64 {
	d := 0.0
	i, j := 0, 0
	for i < len(sample) || j < len(ref) {
		var v float64
		switch {
		case i == len(sample):
			v = ref[j]
		case j == len(ref):
			v = sample[i]
		default:
			v = math.Min(sample[i], ref[j])
		}
		for i < len(sample) && sample[i] <= v {
			i++
		}
		for j < len(ref) && ref[j] <= v {
			j++
		}
		d = math.Max(d, math.Abs(float64(i)/float64(len(sample))-float64(j)/float64(len(ref))))
	}
	return d
}

// The boxes follow RandomResizedCrop's distribution: for PILOT's and
// torchvision's default settings and for extreme aspect ratios where most
// draws fall back, the fallback rate is (1 − p_fit)^10 of the definition and
// torchvision's measured rate; the area fraction and log aspect ratio of the
// other draws pass a Kolmogorov–Smirnov test against the definition and have
// the mean and variance torchvision's own draws have; the top-left corner
// is uniform.
func TestCropDistribution(t *testing.T) {
	const n = 40000
	for ci, c := range readBoxes(t).Stats {
		t.Run(fmt.Sprintf("%dx%d_scale%g", c.W, c.H, c.Scale[0]), func(t *testing.T) {
			rc := RandomResizedCrop{Size: 8, Scale: c.Scale, Ratio: c.Ratio}
			var area, logr []float64
			fallbacks := 0
			posSum, posN := 0.0, 0
			for k := 0; k < n; k++ {
				b, fb := rc.Sample(c.W, c.H, SampleRNG(uint64(ci), 3, k))
				if fb {
					fallbacks++
					continue
				}
				area = append(area, float64(b.W*b.H)/float64(c.W*c.H))
				logr = append(logr, math.Log(float64(b.W)/float64(b.H)))
				if c.W > b.W {
					posSum += (float64(b.X) + 0.5) / float64(c.W-b.W+1)
					posN++
				}
				if c.H > b.H {
					posSum += (float64(b.Y) + 0.5) / float64(c.H-b.H+1)
					posN++
				}
			}
			ref := definition(c.W, c.H, c.Scale, c.Ratio, 1200)
			pFall := math.Pow(1-ref.pFit, 10)
			rate := float64(fallbacks) / n
			se := math.Sqrt(pFall*(1-pFall)/n) + 1e-4
			if math.Abs(rate-pFall) > 5*se {
				t.Errorf("fallback rate %.4f, definition (1−%.4f)^10 = %.4f", rate, ref.pFit, pFall)
			}
			tvRate := float64(c.Fallback) / float64(c.N)
			if se2 := math.Sqrt(pFall*(1-pFall)*(1/float64(n)+1/float64(c.N))) + 1e-4; math.Abs(rate-tvRate) > 5*se2 {
				t.Errorf("fallback rate %.4f, torchvision %.4f", rate, tvRate)
			}
			sort.Float64s(area)
			sort.Float64s(logr)
			bound := 1.95/math.Sqrt(float64(len(area))) + 0.003 // 99.9 % + quadrature grid
			if d := ks(area, ref.area); d > bound {
				t.Errorf("area fraction: KS distance %.4f to the definition > %.4f", d, bound)
			}
			if d := ks(logr, ref.logr); d > bound {
				t.Errorf("log aspect ratio: KS distance %.4f to the definition > %.4f", d, bound)
			}
			m := len(area)
			for _, q := range []struct {
				name          string
				x             []float64
				tvMean, tvVar float64
			}{{"area fraction", area, c.AreaMean, c.AreaVar}, {"log aspect ratio", logr, c.LogrMean, c.LogrVar}} {
				mu, v := meanVar(q.x)
				tvN := float64(c.N - c.Fallback)
				seM := math.Sqrt(v/float64(m) + q.tvVar/tvN)
				if math.Abs(mu-q.tvMean) > 5*seM {
					t.Errorf("%s: mean %.5f, torchvision %.5f (5 SE = %.5f)", q.name, mu, q.tvMean, 5*seM)
				}
				// SE of a variance ≤ var·√(2/n) for distributions no heavier-tailed
				// than the normal (these are bounded); doubled for safety.
				seV := 2 * math.Sqrt(2) * (v/math.Sqrt(float64(m)) + q.tvVar/math.Sqrt(tvN))
				if math.Abs(v-q.tvVar) > 5*seV {
					t.Errorf("%s: variance %.6f, torchvision %.6f", q.name, v, q.tvVar)
				}
				t.Logf("%s: mean %.5f (torchvision %.5f), var %.6f (torchvision %.6f)", q.name, mu, q.tvMean, v, q.tvVar)
			}
			if posN > 0 {
				mu := posSum / float64(posN)
				if math.Abs(mu-0.5) > 5*math.Sqrt(1.0/12/float64(posN)) {
					t.Errorf("corner position mean %.4f, uniform gives 0.5", mu)
				}
			}
			t.Logf("fallback %.4f (definition %.4f, torchvision %.4f)", rate, pFall, tvRate)
		})
	}
}

// A sample's augmentation depends only on (seed, epoch, index): the same
// triple gives the same tensor whatever the order or the goroutine.
func TestSampleRNGIsPerSample(t *testing.T) {
	p, _ := TrainPreset("pilot")
	p.Crop.Size = 32
	ag, err := NewAugmenter(p)
	if err != nil {
		t.Fatal(err)
	}
	src := NewRGB(50, 40)
	for i := range src.Pix {
		src.Pix[i] = uint8(i * 7)
	}
	const n = 24
	seq := make([][]float32, n)
	for k := range seq {
		seq[k] = make([]float32, ag.Len())
		if _, _, err := ag.ApplyRGB(src, SampleRNG(42, 1, k), seq[k]); err != nil {
			t.Fatal(err)
		}
	}
	par := make([][]float32, n)
	var wg sync.WaitGroup
	for k := n - 1; k >= 0; k-- {
		wg.Add(1)
		go func() {
			defer wg.Done()
			par[k] = make([]float32, ag.Len())
			ag.ApplyRGB(src, SampleRNG(42, 1, k), par[k])
		}()
	}
	wg.Wait()
	distinct := 0
	for k := range seq {
		if !slices.Equal(seq[k], par[k]) {
			t.Fatalf("sample %d differs between sequential and concurrent runs", k)
		}
		if k > 0 && !slices.Equal(seq[k], seq[k-1]) {
			distinct++
		}
	}
	if distinct < n/2 {
		t.Fatalf("only %d of %d consecutive samples differ", distinct, n-1)
	}
	a, b := SampleRNG(42, 1, 5).Uint64(), SampleRNG(42, 2, 5).Uint64()
	c := SampleRNG(43, 1, 5).Uint64()
	if a == b || a == c {
		t.Fatal("epoch or seed does not change a sample's stream")
	}
}

func TestPresets(t *testing.T) {
	p, err := TrainPreset("pilot")
	if err != nil {
		t.Fatal(err)
	}
	want := RandomResizedCrop{Size: 224, Scale: [2]float64{0.05, 1}, Ratio: [2]float64{0.75, 4.0 / 3}, Interpolation: Bilinear}
	if p.Crop != want || p.FlipP != 0.5 || p.Mean != nil {
		t.Fatalf("pilot preset %+v", p)
	}
	if q, err := TrainPreset("ImageNetR"); err != nil || q.Crop != want {
		t.Fatalf("dataset alias: %+v %v", q, err)
	}
	if q, _ := TrainPreset("coda-prompt"); q.Crop.Scale != [2]float64{0.08, 1} {
		t.Fatalf("coda-prompt preset %+v", q)
	}
	if _, err := TrainPreset("cifar100"); err == nil || !strings.Contains(err.Error(), "pilot") {
		t.Fatalf("unknown preset: %v", err)
	}
	m := p.ForModel(models.Preprocess{Resize: 146, Interpolation: "bicubic", Crop: 128, Mean: []float32{0.5, 0.5, 0.5}, Std: []float32{0.5, 0.5, 0.5}})
	if m.Crop.Size != 128 || len(m.Mean) != 3 || p.Crop.Size != 224 {
		t.Fatalf("ForModel: %+v", m)
	}
	ag, err := NewAugmenter(m)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, ag.Len())
	white := NewRGB(10, 10)
	for i := range white.Pix {
		white.Pix[i] = 255
	}
	if _, _, err := ag.ApplyRGB(white, SampleRNG(1, 0, 0), out); err != nil {
		t.Fatal(err)
	}
	if out[0] != 1 { // (1 − 0.5)/0.5
		t.Fatalf("normalised white = %v, want 1", out[0])
	}
	js, err := json.Marshal(p)
	if err != nil || !strings.Contains(string(js), `"interpolation":"bilinear"`) {
		t.Fatalf("JSON %s %v", js, err)
	}
	var back Augment
	if err := json.Unmarshal(js, &back); err != nil || back.Crop != p.Crop {
		t.Fatalf("JSON round trip: %+v %v", back, err)
	}
}

func TestAugmentErrors(t *testing.T) {
	bad := []struct {
		a    Augment
		want string
	}{
		{Augment{Crop: RandomResizedCrop{Size: 0, Scale: [2]float64{0.1, 1}, Ratio: [2]float64{1, 1}}}, "size 0"},
		{Augment{Crop: RandomResizedCrop{Size: 8, Scale: [2]float64{0.5, 0.1}, Ratio: [2]float64{1, 1}}}, "scale"},
		{Augment{Crop: RandomResizedCrop{Size: 8, Scale: [2]float64{0.1, 1}, Ratio: [2]float64{0, 1}}}, "ratio"},
		{Augment{Crop: RandomResizedCrop{Size: 8, Scale: [2]float64{0.1, 1}, Ratio: [2]float64{1, 1}}, FlipP: 2}, "flip"},
		{Augment{Crop: RandomResizedCrop{Size: 8, Scale: [2]float64{0.1, 1}, Ratio: [2]float64{1, 1}}, Mean: []float32{0}}, "mean and std"},
	}
	for _, b := range bad {
		if _, err := NewAugmenter(b.a); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: %v, want %q", b.a, err, b.want)
		}
	}
	ag := fixedCrop(t, 8, Bilinear)
	src := NewRGB(10, 10)
	if err := ag.ApplyBox(src, CropBox{X: 5, Y: 0, W: 6, H: 4}, false, make([]float32, ag.Len())); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("box outside: %v", err)
	}
	if _, _, err := ag.ApplyRGB(src, SampleRNG(0, 0, 0), make([]float32, 5)); err == nil || !strings.Contains(err.Error(), "room for 5") {
		t.Fatalf("short output: %v", err)
	}
}

// BenchmarkAugmentRGB500: PILOT's training transform (random resized crop
// to 224 bilinear, flip, float) of a 500×375 RGB image, one goroutine.
// Compare with BenchmarkApplyRGB500 (the test transform).
func BenchmarkAugmentRGB500(b *testing.B) {
	src := Resize(readRGBGolden(b, "photo.jpg.rgb"), 500, 375, Bicubic)
	p, _ := TrainPreset("pilot")
	ag, err := NewAugmenter(p)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, ag.Len())
	b.ReportAllocs()
	k := 0
	for b.Loop() {
		if _, _, err := ag.ApplyRGB(src, SampleRNG(1, 0, k), dst); err != nil {
			b.Fatal(err)
		}
		k++
	}
	perSecond(b)
}

// BenchmarkAugmentCIFAR: the same for a 32×32 image (up-scaled to 224).
func BenchmarkAugmentCIFAR(b *testing.B) {
	src := readRGBGolden(b, "cifar32.png.rgb")
	p, _ := TrainPreset("pilot")
	ag, err := NewAugmenter(p)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, ag.Len())
	b.ReportAllocs()
	k := 0
	for b.Loop() {
		if _, _, err := ag.ApplyRGB(src, SampleRNG(1, 0, k), dst); err != nil {
			b.Fatal(err)
		}
		k++
	}
	perSecond(b)
}
