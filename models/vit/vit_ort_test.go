//go:build cgo

package vit

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/ort"
)

// TestPlainParity runs the plain graph in ONNX Runtime against PyTorch, for
// both attention implementations, through ort.Open (the runtime cl uses).
func TestPlainParity(t *testing.T) {
	g, rc := loadGolden(t)
	w, err := Load(npzPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	in := g.Tensors["input"]
	want := g.Tensors["plain.features"].Float32s()
	for _, att := range []string{AttentionONNX, AttentionMHA} {
		m, err := Build(w, Options{Attention: att})
		if err != nil {
			t.Fatal(err)
		}
		needORT(t)
		path := filepath.Join(t.TempDir(), "vit.onnx")
		if err := models.WriteModel(path, m); err != nil {
			t.Fatal(err)
		}
		bb, err := ort.Open(path, ort.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if bb.Dim() != rc.Width || bb.InputSize() != rc.Image {
			t.Errorf("backbone dim %d size %d, want %d %d", bb.Dim(), bb.InputSize(), rc.Width, rc.Image)
		}
		got, err := bb.Run(in.Float32s(), int(in.Shape[0]))
		bb.Close()
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(t, got, want); d > tolerance {
			t.Errorf("attention %s: max |Δ| = %.3g vs torch, want ≤ %g", att, d, tolerance)
		} else {
			t.Logf("attention %s: max |Δ| = %.3g vs torch", att, d)
		}
	}
}

// TestVariantParity runs every variant with the golden (non-zero) parameters
// as graph inputs and compares all outputs with PyTorch.
func TestVariantParity(t *testing.T) {
	g, rc := loadGolden(t)
	w, err := Load(stPath, rc.Heads)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Variants[1:] {
		for _, att := range []string{AttentionONNX, AttentionMHA} {
			t.Run(fmt.Sprintf("%s/%s", v, att), func(t *testing.T) {
				o := variantOptions(v, rc)
				o.Attention = att
				m, err := Build(w, o)
				if err != nil {
					t.Fatal(err)
				}
				no, _ := NormalizedOptions(w.Config, o)
				feeds := []feed{tensorFeed(InputName, g.Tensors["input"])}
				for _, s := range ParamSpecs(w.Config, no) {
					gt, ok := g.Tensors[string(v)+"."+s.Name]
					if !ok {
						t.Fatalf("golden has no %s.%s", v, s.Name)
					}
					feeds = append(feeds, tensorFeed(s.Name, gt))
				}
				out := newSession(t, m, 1).run(t, feeds...)
				if len(out) != 1+btoi(v == Prompt) {
					t.Errorf("%d outputs", len(out))
				}
				for name, got := range out {
					d := maxAbsDiff(t, got, g.Tensors[string(v)+"."+name].Float32s())
					if d > tolerance {
						t.Errorf("%s: max |Δ| = %.3g vs torch, want ≤ %g", name, d, tolerance)
					}
				}
				// The parameters matter: the plain features differ.
				if d := maxAbsDiff(t, out[OutputName], g.Tensors["plain.features"].Float32s()); d < 1e-2 {
					t.Errorf("variant output equals the plain model's (max |Δ| %.3g)", d)
				}
			})
		}
	}
}

// TestBake bakes each variant's golden parameters into initializers: the
// graph then has one input and opens as a plain backbone. Per-image
// parameters are baked from image 0's values and compared on image 0.
func TestBake(t *testing.T) {
	g, rc := loadGolden(t)
	w, err := Load(stPath, rc.Heads)
	if err != nil {
		t.Fatal(err)
	}
	in := g.Tensors["input"]
	n := int(in.Shape[0])
	per := len(in.Float32s()) / n
	for _, v := range Variants[1:] {
		t.Run(string(v), func(t *testing.T) {
			o := variantOptions(v, rc)
			no, _ := NormalizedOptions(w.Config, o)
			bake := safetensors.New()
			for _, s := range ParamSpecs(w.Config, no) {
				gt := g.Tensors[string(v)+"."+s.Name]
				if s.Batched { // image 0's parameters
					vals := gt.Float32s()
					k := len(vals) / n
					gt = safetensors.FromFloat32s(gt.Shape[1:], vals[:k])
				}
				bake.Tensors[s.Name] = gt
			}
			o.Bake = bake
			m, err := Build(w, o)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.GetGraph().GetInput()) != 1 {
				t.Fatalf("baked graph has %d inputs", len(m.GetGraph().GetInput()))
			}
			needORT(t)
			path := filepath.Join(t.TempDir(), "baked.onnx")
			if err := models.WriteModel(path, m); err != nil {
				t.Fatal(err)
			}
			bb, err := ort.Open(path, ort.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer bb.Close()
			got, err := bb.Run(in.Float32s()[:per], 1)
			if err != nil {
				t.Fatal(err)
			}
			want := g.Tensors[string(v)+".features"].Float32s()[:rc.Width]
			if d := maxAbsDiff(t, got, want); d > tolerance {
				t.Errorf("max |Δ| = %.3g vs torch", d)
			}
		})
	}
	// A bake file that does not fit is refused.
	bad := safetensors.New()
	bad.Tensors["vpt"] = safetensors.FromFloat32s([]int64{2, 2}, make([]float32, 4))
	bad.Tensors["extra"] = safetensors.FromFloat32s([]int64{1}, make([]float32, 1))
	_, err = Build(w, Options{Variant: VPTShallow, Tokens: 3, Bake: bad})
	if err == nil || !strings.Contains(err.Error(), `"vpt" has shape [2 2], want [3 48]`) || !strings.Contains(err.Error(), "extra") {
		t.Errorf("bad bake file: err = %v", err)
	}
}

// TestQuantizeInt8 checks that the int8 graph runs and stays close to fp32.
func TestQuantizeInt8(t *testing.T) {
	g, rc := loadGolden(t)
	w, err := Load(stPath, rc.Heads)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Build(w, Options{Quantize: "int8"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, nd := range m.GetGraph().GetNode() {
		if nd.GetOpType() == "DynamicQuantizeMatMul" {
			n++
		}
	}
	if n != 4*rc.Depth {
		t.Errorf("%d DynamicQuantizeMatMul nodes, want %d", n, 4*rc.Depth)
	}
	out := newSession(t, m, 1).run(t, tensorFeed(InputName, g.Tensors["input"]))[OutputName]
	want := g.Tensors["plain.features"].Float32s()
	for i := 0; i < 2; i++ {
		c := cosine(out[i*rc.Width:(i+1)*rc.Width], want[i*rc.Width:(i+1)*rc.Width])
		t.Logf("image %d: cosine(int8, torch fp32) = %.5f", i, c)
		if c < 0.9995 { // measured 0.99994 and 0.99990
			t.Errorf("image %d: cosine %.5f < 0.9995", i, c)
		}
	}
}

// TestQuantizeInt8Variant: quantization composes with a variant's inputs.
func TestQuantizeInt8Variant(t *testing.T) {
	g, rc := loadGolden(t)
	w, err := Load(stPath, rc.Heads)
	if err != nil {
		t.Fatal(err)
	}
	o := variantOptions(Prefix, rc)
	o.Quantize = "int8"
	m, err := Build(w, o)
	if err != nil {
		t.Fatal(err)
	}
	out := newSession(t, m, 1).run(t, tensorFeed(InputName, g.Tensors["input"]), tensorFeed("prefix", g.Tensors["prefix.prefix"]))[OutputName]
	want := g.Tensors["prefix.features"].Float32s()
	c := cosine(out, want)
	t.Logf("prefix int8: cosine(int8, torch fp32) = %.5f", c)
	if c < 0.9995 { // measured 0.99991
		t.Errorf("prefix int8: cosine vs torch fp32 %.5f < 0.9995", c)
	}
}
