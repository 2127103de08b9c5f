package vit

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/models"
)

// Variant names a graph variant (docs/METHODS.md §2.2, §2.6–2.8).
type Variant string

// The variants Build emits.
const (
	// Plain is the frozen ViT: image in, CLS feature out.
	Plain Variant = "plain"
	// Prompt is L2P prompt tuning at the input: p tokens after the class
	// token, each with the class token's position embedding (PILOT's
	// resize_pos_embed); extra output prompt_mean.
	Prompt Variant = "prompt"
	// VPTShallow appends p tokens (no position embedding) after the patches.
	VPTShallow Variant = "vpt-shallow"
	// VPTDeep appends a fresh set of p tokens before each chosen block and
	// drops them after it.
	VPTDeep Variant = "vpt-deep"
	// Prefix prepends p keys and p values to K and V of the chosen blocks'
	// attention (DualPrompt, CODA-Prompt).
	Prefix Variant = "prefix"
	// Adapter adds AdaptFormer's parallel bottleneck adapter to the chosen
	// blocks: out = x' + MLP(LN2 x') + s·Up(ReLU(Down(x'))).
	Adapter Variant = "adapter"
	// SSF scales and shifts features after the patch projection, LN1, qkv,
	// attention projection, LN2, fc1, fc2 (every block) and the final LN.
	SSF Variant = "ssf"
)

// Variants lists all variants in a stable order.
var Variants = []Variant{Plain, Prompt, VPTShallow, VPTDeep, Prefix, Adapter, SSF}

// Attention implementations.
const (
	// AttentionONNX spells attention with standard ONNX ops (MatMul, Softmax).
	AttentionONNX = "onnx"
	// AttentionMHA uses ONNX Runtime's com.microsoft.MultiHeadAttention.
	AttentionMHA = "mha"
)

// Options choose the variant and how the graph is emitted.
type Options struct {
	// Variant is the graph variant; "" = Plain.
	Variant Variant
	// Tokens is p, the number of prompt / VPT / prefix tokens (default 5).
	Tokens int
	// Layers are the blocks that get prefixes, deep VPT tokens or adapters
	// (0-based). Default: prefix 0..4 (CODA-Prompt), vpt-deep and adapter
	// every block.
	Layers []int
	// Bottleneck is the adapter's hidden width r (default 64).
	Bottleneck int
	// Scale is the adapter's output scale s (default 0.1).
	Scale float32
	// Bake, when set, holds the variant's parameters (named as ParamSpecs,
	// shapes without the batch dimension), which become initializers: the
	// graph then has the image as its only input.
	Bake *safetensors.File
	// Quantize is "" (float32) or "int8": dynamic quantization of the
	// blocks' Linear weights (per output channel, symmetric) with
	// com.microsoft.DynamicQuantizeMatMul.
	Quantize string
	// Attention is AttentionONNX or AttentionMHA ("" = DefaultAttention).
	Attention string
	// Description is the manifest's backbone text ("" = generated).
	Description string
	// Preprocess is the manifest's preprocessing; nil = the protocol's,
	// models.ForImageSize(S) (bicubic resize, centre crop S, [0,1], no
	// mean/std). Its Crop must be the checkpoint's image size S.
	Preprocess *models.Preprocess
}

// DefaultAttention is the attention implementation Build uses unless told:
// standard ONNX ops, portable to every execution provider and, measured on
// ONNX Runtime's CPU provider, at least as fast as torch.onnx.export's graph
// at batch 1 and 32 (docs/PERFORMANCE.md, "ViT import").
var DefaultAttention = AttentionONNX

// ParseVariant accepts the names in Variants.
func ParseVariant(s string) (Variant, error) {
	for _, v := range Variants {
		if string(v) == s {
			return v, nil
		}
	}
	names := make([]string, len(Variants))
	for i, v := range Variants {
		names[i] = string(v)
	}
	return "", fmt.Errorf("variant %q unknown: use one of %s", s, strings.Join(names, ", "))
}

// normalize fills defaults and validates against the architecture.
func (o Options) normalize(c Config) (Options, error) {
	if o.Variant == "" {
		o.Variant = Plain
	}
	if _, err := ParseVariant(string(o.Variant)); err != nil {
		return o, err
	}
	if o.Attention == "" {
		o.Attention = DefaultAttention
	}
	if o.Attention != AttentionONNX && o.Attention != AttentionMHA {
		return o, fmt.Errorf("attention %q unknown: use onnx or mha", o.Attention)
	}
	if o.Quantize != "" && o.Quantize != "int8" {
		return o, fmt.Errorf("quantize %q unknown: use int8 (or nothing for float32)", o.Quantize)
	}
	if p := o.Preprocess; p != nil {
		if err := p.Validate(); err != nil {
			return o, err
		}
		if p.Crop != c.Image {
			return o, fmt.Errorf("preprocess crop %d: the checkpoint's images are %d×%d (its position embeddings fix the input size); use crop %d", p.Crop, c.Image, c.Image, c.Image)
		}
	}
	usesTokens := o.Variant == Prompt || o.Variant == VPTShallow || o.Variant == VPTDeep || o.Variant == Prefix
	usesLayers := o.Variant == VPTDeep || o.Variant == Prefix || o.Variant == Adapter
	if !usesTokens && o.Tokens != 0 {
		return o, fmt.Errorf("--tokens applies to prompt, vpt-shallow, vpt-deep and prefix, not %s", o.Variant)
	}
	if !usesLayers && o.Layers != nil {
		return o, fmt.Errorf("--layers applies to prefix, vpt-deep and adapter, not %s", o.Variant)
	}
	if o.Variant != Adapter && (o.Bottleneck != 0 || o.Scale != 0) {
		return o, fmt.Errorf("--bottleneck and --scale apply to the adapter variant only")
	}
	if o.Variant == Plain && o.Bake != nil {
		return o, fmt.Errorf("--bake needs a variant with parameters")
	}
	if usesTokens {
		if o.Tokens == 0 {
			o.Tokens = 5
		}
		if o.Tokens < 0 || o.Tokens > 4096 {
			return o, fmt.Errorf("--tokens %d out of range 1..4096", o.Tokens)
		}
	}
	if usesLayers {
		if o.Layers == nil {
			n := c.Depth
			if o.Variant == Prefix && n > 5 {
				n = 5
			}
			for i := 0; i < n; i++ {
				o.Layers = append(o.Layers, i)
			}
		}
		if len(o.Layers) == 0 {
			return o, fmt.Errorf("--layers is empty")
		}
		seen := map[int]bool{}
		for _, l := range o.Layers {
			if l < 0 || l >= c.Depth {
				return o, fmt.Errorf("--layers: block %d does not exist (the model has blocks 0..%d)", l, c.Depth-1)
			}
			if seen[l] {
				return o, fmt.Errorf("--layers: block %d listed twice", l)
			}
			seen[l] = true
		}
		o.Layers = append([]int(nil), o.Layers...)
		sort.Ints(o.Layers)
	}
	if o.Variant == Adapter {
		if o.Bottleneck == 0 {
			o.Bottleneck = 64
		}
		if o.Bottleneck < 0 || o.Bottleneck > MaxWidth {
			return o, fmt.Errorf("--bottleneck %d out of range 1..%d", o.Bottleneck, MaxWidth)
		}
		if o.Scale == 0 {
			o.Scale = 0.1
		}
	}
	return o, nil
}

// describe is a one-line summary for doc strings and manifests.
func (o Options) describe(c Config) string {
	s := fmt.Sprintf("ViT W=%d depth=%d heads=%d patch=%d image=%d", c.Width, c.Depth, c.Heads, c.Patch, c.Image)
	if o.Variant != Plain && o.Variant != "" {
		s += " variant=" + string(o.Variant)
		if o.Bake != nil {
			s += " (baked)"
		}
	}
	if o.Quantize != "" {
		s += " " + o.Quantize
	}
	return s
}

// JSON records the variant options in the model's metadata (cl.vit.variant).
func (o Options) JSON() string {
	b, _ := json.Marshal(map[string]any{"variant": o.Variant, "tokens": o.Tokens, "layers": o.Layers,
		"bottleneck": o.Bottleneck, "scale": o.Scale, "baked": o.Bake != nil, "quantize": o.Quantize,
		"attention": o.Attention})
	return string(b)
}

// ParamSpec describes one variant parameter: a graph input (or, baked, an
// initializer) of float32.
type ParamSpec struct {
	// Name is the graph input's name.
	Name string
	// Shape is the input's shape; when Batched, a leading batch dimension N
	// (one value per image) comes first and is not included here.
	Shape []int
	// Batched is true for per-image parameters (prompt, prefix).
	Batched bool
	// Doc says what the parameter is.
	Doc string
}

func (s ParamSpec) dims() []any {
	var d []any
	if s.Batched {
		d = append(d, BatchDim)
	}
	for _, x := range s.Shape {
		d = append(d, x)
	}
	return d
}

// ParamSpecs lists the extra inputs of a variant, in graph-input order.
// Options must be normalized (Build does it; call NormalizedOptions first).
func ParamSpecs(c Config, o Options) []ParamSpec {
	W, M, L, p := c.Width, c.MLP, len(o.Layers), o.Tokens
	switch o.Variant {
	case Prompt:
		return []ParamSpec{{"prompt", []int{p, W}, true, "prompt tokens inserted after the class token, per image (L2P: the selected prompts concatenated)"}}
	case VPTShallow:
		return []ParamSpec{{"vpt", []int{p, W}, false, "VPT tokens appended after the patches (no position embedding)"}}
	case VPTDeep:
		return []ParamSpec{{"vpt", []int{L, p, W}, false, "per chosen block, VPT tokens appended before the block and dropped after it"}}
	case Prefix:
		return []ParamSpec{{"prefix", []int{L, 2, p, W}, true, "per image and chosen block: p prefix keys (index 0) and values (index 1), prepended to K and V"}}
	case Adapter:
		r := o.Bottleneck
		return []ParamSpec{
			{"adapter_down_w", []int{L, W, r}, false, "adapter down projection, x·w orientation (torch weight transposed)"},
			{"adapter_down_b", []int{L, r}, false, "adapter down bias"},
			{"adapter_up_w", []int{L, r, W}, false, "adapter up projection, x·w orientation"},
			{"adapter_up_b", []int{L, W}, false, "adapter up bias"},
		}
	case SSF:
		D := c.Depth
		return []ParamSpec{
			{"ssf_patch", []int{2, W}, false, "scale (row 0) and shift (row 1) after the patch projection"},
			{"ssf_ln1", []int{D, 2, W}, false, "per block: after LN1"},
			{"ssf_qkv", []int{D, 2, 3 * W}, false, "per block: after the fused qkv projection"},
			{"ssf_proj", []int{D, 2, W}, false, "per block: after the attention projection"},
			{"ssf_ln2", []int{D, 2, W}, false, "per block: after LN2"},
			{"ssf_fc1", []int{D, 2, M}, false, "per block: after MLP fc1 (before GELU)"},
			{"ssf_fc2", []int{D, 2, W}, false, "per block: after MLP fc2"},
			{"ssf_norm", []int{2, W}, false, "after the final LayerNorm"},
		}
	}
	return nil
}

// NormalizedOptions returns o with defaults filled in for the architecture c
// (the layers, tokens and bottleneck Build will use), or a validation error.
func NormalizedOptions(c Config, o Options) (Options, error) { return o.normalize(c) }

// checkBake verifies that a bake file holds exactly the variant's parameters.
func (b *builder) checkBake(specs []ParamSpec) error {
	f := b.opt.Bake
	if f == nil {
		return nil
	}
	want := map[string]bool{}
	var problems []string
	for _, s := range specs {
		want[s.Name] = true
		t, ok := f.Tensors[s.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing %q %v", s.Name, s.Shape))
			continue
		}
		if t.DType != safetensors.F32 {
			problems = append(problems, fmt.Sprintf("%q is %s, want F32", s.Name, t.DType))
			continue
		}
		okShape := len(t.Shape) == len(s.Shape)
		for i := 0; okShape && i < len(s.Shape); i++ {
			okShape = t.Shape[i] == int64(s.Shape[i])
		}
		if !okShape {
			problems = append(problems, fmt.Sprintf("%q has shape %v, want %v", s.Name, t.Shape, s.Shape))
		}
	}
	var extra []string
	for name := range f.Tensors {
		if !want[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		problems = append(problems, "unexpected tensors "+listSome(extra))
	}
	if len(problems) > 0 {
		return fmt.Errorf("bake file for variant %s: %s", b.opt.Variant, strings.Join(problems, "; "))
	}
	return nil
}

// param returns the tensor holding a variant parameter: the graph input, or
// the baked initializer (broadcast over the batch when the parameter is
// per image).
func (b *builder) param(name string) string {
	if t, ok := b.params[name]; ok {
		return t
	}
	s := b.specs[name]
	t := name
	if b.opt.Bake != nil {
		dims := make([]int64, len(s.Shape))
		for i, d := range s.Shape {
			dims[i] = int64(d)
		}
		t = b.f32(name, dims, b.opt.Bake.Tensors[name].Float32s())
		if s.Batched {
			t = b.expandBatch(t, len(s.Shape))
		}
	}
	b.params[name] = t
	return t
}
