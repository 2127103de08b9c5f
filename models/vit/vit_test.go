package vit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/onnxpb"
)

// Goldens: models/vit/testdata/make_reference.py (PyTorch 1.13).
const (
	stPath     = "testdata/vit.safetensors"
	npzPath    = "testdata/vit.npz"
	goldenPath = "testdata/golden.safetensors"
	tolerance  = 1e-4
)

type refConfig struct {
	Image, Patch, Width, Depth, Heads, MLP, Tokens int
	PrefixLayers                                   []int `json:"prefix_layers"`
	Bottleneck                                     int
	Scale                                          float32
}

func loadGolden(t testing.TB) (*safetensors.File, refConfig) {
	t.Helper()
	g, err := safetensors.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	var c refConfig
	if err := json.Unmarshal([]byte(g.Metadata["config"]), &c); err != nil {
		t.Fatal(err)
	}
	return g, c
}

func maxAbsDiff(t testing.TB, got, want []float32) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d values, want %d", len(got), len(want))
	}
	var m float64
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > m || math.IsNaN(d) {
			m = d
			if math.IsNaN(d) {
				return math.Inf(1)
			}
		}
	}
	return m
}

func marshal(t testing.TB, m *onnxpb.ModelProto) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadBothForms(t *testing.T) {
	_, rc := loadGolden(t)
	st, err := Load(stPath, rc.Heads)
	if err != nil {
		t.Fatal(err)
	}
	npz, err := Load(npzPath, 0) // the JAX layout stores the head count
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Width: rc.Width, Depth: rc.Depth, Heads: rc.Heads, Patch: rc.Patch, MLP: rc.MLP, Image: rc.Image}
	for name, w := range map[string]*Weights{"safetensors": st, "npz": npz} {
		if w.Config != want {
			t.Errorf("%s: config %+v, want %+v", name, w.Config, want)
		}
		if len(w.Notes) != 1 || !strings.Contains(w.Notes[0], "head") {
			t.Errorf("%s: notes %q, want one about the ignored head", name, w.Notes)
		}
	}
	for _, att := range []string{AttentionONNX, AttentionMHA} {
		a, err := Build(st, Options{Attention: att})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Build(npz, Options{Attention: att})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(marshal(t, a), marshal(t, b)) {
			t.Errorf("attention %s: graphs from safetensors and npz differ", att)
		}
	}
	if _, err := Load(stPath, 0); err == nil || !strings.Contains(err.Error(), "heads") {
		t.Errorf("width 48 without --heads: err = %v, want a heads error", err)
	}
}

func variantOptions(v Variant, rc refConfig) Options {
	o := Options{Variant: v}
	switch v {
	case Prompt, VPTShallow, VPTDeep:
		o.Tokens = rc.Tokens
	case Prefix:
		o.Tokens, o.Layers = rc.Tokens, rc.PrefixLayers
	case Adapter:
		o.Bottleneck, o.Scale = rc.Bottleneck, rc.Scale
	}
	return o
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

func TestQuantizeColumns(t *testing.T) {
	w := []float32{1, -2, 0.5, 0, 0, 0} // [out=2, in=3]
	q, s := quantizeColumns(w, 2, 3)
	if s[0] != 2.0/127 || s[1] != 1 {
		t.Errorf("scales %v", s)
	}
	// B is [in=3, out=2].
	want := []int8{64, 0, -127, 0, 32, 0}
	for i, x := range q {
		if int8(x) != want[i] {
			t.Fatalf("q = %v, want %v", q, want)
		}
	}
}

func TestHalfToFloat(t *testing.T) {
	for _, c := range []struct {
		h uint16
		f float32
	}{{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, 5.9604645e-08}, {0x3555, 0.33325195}, {0x8000, 0}} {
		if got := halfToFloat(c.h); got != c.f {
			t.Errorf("halfToFloat(%#x) = %g, want %g", c.h, got, c.f)
		}
	}
	if !math.IsInf(float64(halfToFloat(0x7c00)), 1) || !math.IsNaN(float64(halfToFloat(0x7e00))) {
		t.Error("inf/nan")
	}
}

// TestReducedPrecision: BF16 and F16 safetensors load as the same values
// rounded (bf16 truncation is exact to reproduce).
func TestReducedPrecision(t *testing.T) {
	f, err := safetensors.ReadFile(stPath)
	if err != nil {
		t.Fatal(err)
	}
	bf := safetensors.New()
	for name, x := range f.Tensors {
		v := x.Float32s()
		raw := make([]byte, 2*len(v))
		for i, y := range v {
			b := math.Float32bits(y) >> 16
			raw[2*i], raw[2*i+1] = byte(b), byte(b>>8)
		}
		bf.Tensors[name] = safetensors.Tensor{DType: safetensors.BF16, Shape: x.Shape, Data: raw}
	}
	var buf bytes.Buffer
	if _, err := bf.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	w, err := Parse("bf16.safetensors", buf.Bytes(), 3)
	if err != nil {
		t.Fatal(err)
	}
	orig := f.Tensors["blocks.1.mlp.fc1.weight"].Float32s()
	for i, y := range w.Blocks[1].FC1W {
		if want := math.Float32frombits(math.Float32bits(orig[i]) &^ 0xffff); y != want {
			t.Fatalf("bf16 value %d: %g, want %g", i, y, want)
		}
	}
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadCheckpoints: truncated, corrupt and ill-fitting checkpoints give
// clear errors (never a panic).
func TestBadCheckpoints(t *testing.T) {
	st := readFile(t, stPath)
	npz := readFile(t, npzPath)
	f, err := safetensors.Parse(append([]byte(nil), st...))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(fn func(f *safetensors.File)) []byte {
		g := safetensors.New()
		for k, v := range f.Tensors {
			g.Tensors[k] = v
		}
		fn(g)
		var buf bytes.Buffer
		if _, err := g.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	cases := []struct {
		name  string
		data  []byte
		heads int
		want  string
	}{
		{"empty", nil, 3, "neither a safetensors file nor"},
		{"text", []byte("hello world, not a model"), 3, "neither"},
		{"truncated safetensors", st[:len(st)/2], 3, "truncated"},
		{"truncated npz", npz[:len(npz)/2], 0, "not a readable .npz"},
		{"missing block tensor", edit(func(g *safetensors.File) { delete(g.Tensors, "blocks.1.norm2.bias") }), 3, `missing tensors: blocks.1.norm2.bias`},
		{"unknown tensor", edit(func(g *safetensors.File) {
			g.Tensors["fc_norm.weight"] = safetensors.FromFloat32s([]int64{48}, make([]float32, 48))
		}), 3, "unknown tensors (not a plain timm/JAX ViT?): fc_norm.weight"},
		{"wrong shape", edit(func(g *safetensors.File) {
			g.Tensors["blocks.0.mlp.fc2.weight"] = safetensors.FromFloat32s([]int64{48, 100}, make([]float32, 4800))
		}), 3, "blocks.0.mlp.fc2.weight has shape [48,100], want [48,128]"},
		{"bad pos embed", edit(func(g *safetensors.File) {
			g.Tensors["pos_embed"] = safetensors.FromFloat32s([]int64{1, 16, 48}, make([]float32, 16*48))
		}), 3, "pos_embed has 16 tokens"},
		{"heads do not divide", st, 5, "5 heads do not divide width 48"},
		{"int tensor", edit(func(g *safetensors.File) {
			g.Tensors["cls_token"] = safetensors.FromInt64s([]int64{1, 1, 48}, make([]int64, 48))
		}), 3, `tensor "cls_token" is I64`},
		{"nan", edit(func(g *safetensors.File) {
			v := make([]float32, 48)
			v[3] = float32(math.NaN())
			g.Tensors["norm.bias"] = safetensors.FromFloat32s([]int64{48}, v)
		}), 3, "final norm bias contains NaN"},
		{"absurd patch", edit(func(g *safetensors.File) {
			g.Tensors["patch_embed.proj.weight"] = safetensors.FromFloat32s([]int64{48, 3, 1, 1}, make([]float32, 144))
			g.Tensors["pos_embed"] = safetensors.FromFloat32s([]int64{1, 4097*4097 + 1, 0}, nil)
		}), 3, "at most 4096"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("ckpt", c.data, c.heads)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want it to contain %q", err, c.want)
			}
			if err != nil && !strings.Contains(err.Error(), "ckpt") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
}

// TestNPYHeaders covers the .npy header parser on dtypes and orders.
func TestOptionsErrors(t *testing.T) {
	c := Config{Width: 48, Depth: 3, Heads: 3, Patch: 8, MLP: 128, Image: 32}
	for _, c2 := range []struct {
		o    Options
		want string
	}{
		{Options{Variant: "lora"}, `variant "lora" unknown`},
		{Options{Variant: Prefix, Layers: []int{0, 3}}, "block 3 does not exist"},
		{Options{Variant: Prefix, Layers: []int{1, 1}}, "listed twice"},
		{Options{Variant: Plain, Tokens: 4}, "--tokens applies"},
		{Options{Variant: SSF, Layers: []int{0}}, "--layers applies"},
		{Options{Variant: Prompt, Bottleneck: 3}, "adapter variant only"},
		{Options{Quantize: "int4"}, `quantize "int4" unknown`},
		{Options{Variant: Prompt, Tokens: -1}, "out of range"},
		{Options{Preprocess: &models.Preprocess{Resize: 36, Interpolation: "bicubic", Crop: 30}}, "preprocess crop 30: the checkpoint's images are 32×32"},
		{Options{Preprocess: &models.Preprocess{Interpolation: "nearest", Crop: 32}}, `interpolation "nearest" unknown`},
	} {
		if _, err := NormalizedOptions(c, c2.o); err == nil || !strings.Contains(err.Error(), c2.want) {
			t.Errorf("%+v: err = %v, want %q", c2.o, err, c2.want)
		}
	}
	// The manifest carries Options.Preprocess (default: ForImageSize).
	w, err := Load(npzPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	half := []float32{0.5, 0.5, 0.5}
	for _, p := range []*models.Preprocess{nil, {Resize: 32, Interpolation: "bilinear", Crop: w.Image, Mean: half, Std: half}} {
		m, err := Build(w, Options{Preprocess: p})
		if err != nil {
			t.Fatal(err)
		}
		man, ok, err := models.ManifestOf(m)
		want := models.ForImageSize(w.Image)
		if p != nil {
			want = *p
		}
		if !ok || err != nil || man.Preprocess.JSON() != want.JSON() {
			t.Errorf("manifest preprocess %s (%v), want %s", man.Preprocess.JSON(), err, want.JSON())
		}
	}
	o, err := NormalizedOptions(Config{Width: 768, Depth: 12, Heads: 12, Patch: 16, MLP: 3072, Image: 224}, Options{Variant: Prefix})
	if err != nil || fmt.Sprint(o.Layers) != "[0 1 2 3 4]" || o.Tokens != 5 {
		t.Errorf("prefix defaults: %+v %v", o, err)
	}
}
