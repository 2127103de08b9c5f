// Package vit builds ONNX graphs of a Vision Transformer (timm v0.6.12
// VisionTransformer, docs/METHODS.md §4) directly from a checkpoint, in Go: timm's
// model.safetensors or Google's original JAX .npz. The graph outputs the CLS
// token after the final LayerNorm, float32 [N,W] named "features".
//
// The same builder emits parameter-efficient variants whose extra parameters
// are ordinary graph inputs (or initializers, when baked): L2P prompts, VPT
// shallow and deep tokens, DualPrompt/CODA prefixes, AdaptFormer adapters and
// SSF scale/shift (docs/METHODS.md §2.2, §2.6–2.8). See docs/VIT.md.
package vit

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Config is the architecture of a plain ViT with a class token and learned
// position embedding.
type Config struct {
	// Width is the token dimension W (768 for ViT-B).
	Width int
	// Depth is the number of transformer blocks.
	Depth int
	// Heads is the number of attention heads; Width must be a multiple.
	Heads int
	// Patch is the side P of the square patches in pixels.
	Patch int
	// MLP is the hidden width M of the blocks' MLP (4·W for ViT-B).
	MLP int
	// Image is the side S of the square input in pixels; (S/P)² patches.
	Image int
}

// Grid is S/P, the number of patches per side.
func (c Config) Grid() int { return c.Image / c.Patch }

// Tokens is the sequence length T = (S/P)² + 1 of the plain model.
func (c Config) Tokens() int { return c.Grid()*c.Grid() + 1 }

// HeadDim is W/heads.
func (c Config) HeadDim() int { return c.Width / c.Heads }

// Limits on what the importer accepts (anything larger is a corrupt or
// unintended checkpoint).
const (
	MaxWidth = 8192
	MaxDepth = 256
	MaxMLP   = 65536
	MaxImage = 4096
)

// Validate checks that the configuration describes a buildable ViT.
func (c Config) Validate() error {
	switch {
	case c.Width <= 0 || c.Width > MaxWidth:
		return fmt.Errorf("width %d out of range 1..%d", c.Width, MaxWidth)
	case c.Depth <= 0 || c.Depth > MaxDepth:
		return fmt.Errorf("depth %d out of range 1..%d", c.Depth, MaxDepth)
	case c.MLP <= 0 || c.MLP > MaxMLP:
		return fmt.Errorf("MLP width %d out of range 1..%d", c.MLP, MaxMLP)
	case c.Patch <= 0 || c.Image <= 0 || c.Image > MaxImage || c.Patch > c.Image || c.Image%c.Patch != 0:
		return fmt.Errorf("patch %d and image %d: the image side must be a positive multiple of the patch side, at most %d", c.Patch, c.Image, MaxImage)
	case c.Heads <= 0 || c.Width%c.Heads != 0:
		return fmt.Errorf("%d heads do not divide width %d (pass --heads; ViT-B/16 has 12)", c.Heads, c.Width)
	}
	return nil
}

// Block holds one transformer block in timm's layout: Linear weights are
// [out,in] row-major, as torch stores them.
type Block struct {
	Norm1W, Norm1B []float32 // [W]
	QKVW           []float32 // [3W,W]: rows 0..W-1 query, then key, then value
	QKVB           []float32 // [3W]
	ProjW, ProjB   []float32 // [W,W], [W]
	Norm2W, Norm2B []float32 // [W]
	FC1W, FC1B     []float32 // [M,W], [M]
	FC2W, FC2B     []float32 // [W,M], [W]
}

// Weights is a whole ViT checkpoint in timm's layout, float32.
type Weights struct {
	Config
	PatchW []float32 // [W,3,P,P] (Conv2d OIHW)
	PatchB []float32 // [W]
	CLS    []float32 // [W]
	Pos    []float32 // [T,W], T = Tokens()
	Blocks []Block
	NormW  []float32 // [W] final LayerNorm
	NormB  []float32 // [W]
	// Notes lists what the reader ignored (a classifier head, …), for the user.
	Notes []string
}

// array is a float32 tensor read from a checkpoint.
type array struct {
	shape []int
	data  []float32
}

func shapeString(s []int) string {
	p := make([]string, len(s))
	for i, d := range s {
		p[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(p, ",") + "]"
}

// tensorSet is a checkpoint's arrays by name with bookkeeping of which ones
// were used, so unknown keys can be reported.
type tensorSet struct {
	file    string
	arrays  map[string]array
	used    map[string]bool
	missing []string
	bad     []string
}

func newTensorSet(file string, arrays map[string]array) *tensorSet {
	return &tensorSet{file: file, arrays: arrays, used: map[string]bool{}}
}

// get returns the array with that name and shape (−1 = any); problems are
// collected so that all of them are reported at once.
func (s *tensorSet) get(name string, shape ...int) array {
	a, ok := s.arrays[name]
	if !ok {
		s.missing = append(s.missing, name)
		return array{}
	}
	s.used[name] = true
	if len(a.shape) != len(shape) {
		s.bad = append(s.bad, fmt.Sprintf("%s has shape %s, want %s", name, shapeString(a.shape), shapeString(shape)))
		return array{}
	}
	for i, d := range shape {
		if d >= 0 && a.shape[i] != d {
			s.bad = append(s.bad, fmt.Sprintf("%s has shape %s, want %s", name, shapeString(a.shape), shapeString(shape)))
			return array{}
		}
	}
	return a
}

// peek returns an array's shape without marking it used.
func (s *tensorSet) peek(name string) ([]int, bool) {
	a, ok := s.arrays[name]
	return a.shape, ok
}

// finish reports missing, mis-shaped and unknown tensors; ignore(name)
// returns a note for keys that are deliberately skipped.
func (s *tensorSet) finish(ignore func(string) (string, bool)) ([]string, error) {
	var unknown, notes []string
	noteSeen := map[string]bool{}
	for name := range s.arrays {
		if s.used[name] {
			continue
		}
		if note, ok := ignore(name); ok {
			if !noteSeen[note] {
				noteSeen[note] = true
				notes = append(notes, note)
			}
			continue
		}
		unknown = append(unknown, name)
	}
	sort.Strings(unknown)
	sort.Strings(notes)
	var msgs []string
	if len(s.missing) > 0 {
		msgs = append(msgs, "missing tensors: "+listSome(s.missing))
	}
	if len(s.bad) > 0 {
		msgs = append(msgs, "tensors that do not fit the architecture: "+listSome(s.bad))
	}
	if len(unknown) > 0 {
		msgs = append(msgs, "unknown tensors (not a plain timm/JAX ViT?): "+listSome(unknown))
	}
	if len(msgs) > 0 {
		return nil, fmt.Errorf("%s: %s", s.file, strings.Join(msgs, "; "))
	}
	return notes, nil
}

func listSome(v []string) string {
	const max = 12
	if len(v) <= max {
		return strings.Join(v, ", ")
	}
	return strings.Join(v[:max], ", ") + fmt.Sprintf(", … (%d in all)", len(v))
}

// inferGrid turns a position-embedding length T into the grid side g with
// g² = T−1.
func inferGrid(tokens int) (int, bool) {
	if tokens < 2 {
		return 0, false
	}
	g := int(math.Round(math.Sqrt(float64(tokens - 1))))
	return g, g*g == tokens-1
}

// countBlocks counts consecutive block indices i for which key(i) exists.
func countBlocks(s *tensorSet, key func(int) string) int {
	n := 0
	for {
		if _, ok := s.arrays[key(n)]; !ok {
			return n
		}
		n++
		if n > MaxDepth {
			return n
		}
	}
}

// fromTimm reads timm VisionTransformer state_dict names.
func fromTimm(s *tensorSet, heads int) (*Weights, error) {
	pw, ok := s.peek("patch_embed.proj.weight")
	if !ok || len(pw) != 4 || pw[1] != 3 || pw[2] != pw[3] {
		return nil, fmt.Errorf("%s: patch_embed.proj.weight must be [W,3,P,P], found %v (present: %v)", s.file, pw, ok)
	}
	c := Config{Width: pw[0], Patch: pw[2]}
	pos, ok := s.peek("pos_embed")
	if !ok || len(pos) != 3 {
		return nil, fmt.Errorf("%s: pos_embed must be [1,T,W], found %v (present: %v)", s.file, pos, ok)
	}
	g, ok := inferGrid(pos[1])
	if !ok {
		return nil, fmt.Errorf("%s: pos_embed has %d tokens; a ViT with a class token has (S/P)²+1", s.file, pos[1])
	}
	c.Image = g * c.Patch
	c.Depth = countBlocks(s, func(i int) string { return fmt.Sprintf("blocks.%d.attn.qkv.weight", i) })
	if f1, ok := s.peek("blocks.0.mlp.fc1.weight"); ok && len(f1) == 2 {
		c.MLP = f1[0]
	}
	if c.Depth == 0 {
		return nil, fmt.Errorf("%s: no transformer blocks (blocks.0.attn.qkv.weight is missing): not a timm ViT checkpoint", s.file)
	}
	if c.MLP == 0 {
		return nil, fmt.Errorf("%s: blocks.0.mlp.fc1.weight is missing or not [M,W]", s.file)
	}
	c.Heads = heads
	if c.Heads == 0 && c.Width%64 == 0 {
		c.Heads = c.Width / 64
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", s.file, err)
	}
	W, M, T, P := c.Width, c.MLP, c.Tokens(), c.Patch
	w := &Weights{Config: c}
	w.PatchW = s.get("patch_embed.proj.weight", W, 3, P, P).data
	w.PatchB = s.get("patch_embed.proj.bias", W).data
	w.CLS = s.get("cls_token", 1, 1, W).data
	w.Pos = s.get("pos_embed", 1, T, W).data
	w.NormW = s.get("norm.weight", W).data
	w.NormB = s.get("norm.bias", W).data
	for i := 0; i < c.Depth; i++ {
		p := fmt.Sprintf("blocks.%d.", i)
		w.Blocks = append(w.Blocks, Block{
			Norm1W: s.get(p+"norm1.weight", W).data, Norm1B: s.get(p+"norm1.bias", W).data,
			QKVW: s.get(p+"attn.qkv.weight", 3*W, W).data, QKVB: s.get(p+"attn.qkv.bias", 3*W).data,
			ProjW: s.get(p+"attn.proj.weight", W, W).data, ProjB: s.get(p+"attn.proj.bias", W).data,
			Norm2W: s.get(p+"norm2.weight", W).data, Norm2B: s.get(p+"norm2.bias", W).data,
			FC1W: s.get(p+"mlp.fc1.weight", M, W).data, FC1B: s.get(p+"mlp.fc1.bias", M).data,
			FC2W: s.get(p+"mlp.fc2.weight", W, M).data, FC2B: s.get(p+"mlp.fc2.bias", W).data,
		})
	}
	notes, err := s.finish(func(name string) (string, bool) {
		switch {
		case strings.HasPrefix(name, "head."):
			return "classifier head (head.*) ignored: the feature is the CLS token after the final LayerNorm", true
		case strings.HasPrefix(name, "pre_logits."):
			return "pre-logits layer (pre_logits.*) ignored (docs/METHODS.md §4: the feature has no representation layer)", true
		}
		return "", false
	})
	if err != nil {
		return nil, err
	}
	w.Notes = notes
	return w, nil
}

// fromJAX reads Google's vision_transformer .npz names (as timm's
// _load_weights maps them; an "opt/target/" prefix is accepted).
func fromJAX(s *tensorSet, heads int) (*Weights, error) {
	pre := ""
	if _, ok := s.arrays["opt/target/embedding/kernel"]; ok {
		pre = "opt/target/"
	}
	k, ok := s.peek(pre + "embedding/kernel")
	if !ok || len(k) != 4 || k[2] != 3 || k[0] != k[1] {
		return nil, fmt.Errorf("%s: embedding/kernel must be [P,P,3,W] (HWIO), found %v (present: %v)", s.file, k, ok)
	}
	c := Config{Width: k[3], Patch: k[0]}
	pos, ok := s.peek(pre + "Transformer/posembed_input/pos_embedding")
	if !ok || len(pos) != 3 {
		return nil, fmt.Errorf("%s: Transformer/posembed_input/pos_embedding must be [1,T,W], found %v (present: %v)", s.file, pos, ok)
	}
	g, ok := inferGrid(pos[1])
	if !ok {
		return nil, fmt.Errorf("%s: pos_embedding has %d tokens; a ViT with a class token has (S/P)²+1", s.file, pos[1])
	}
	c.Image = g * c.Patch
	blk := func(i int) string { return fmt.Sprintf("%sTransformer/encoderblock_%d/", pre, i) }
	c.Depth = countBlocks(s, func(i int) string { return blk(i) + "LayerNorm_0/scale" })
	if d0, ok := s.peek(blk(0) + "MlpBlock_3/Dense_0/kernel"); ok && len(d0) == 2 {
		c.MLP = d0[1]
	}
	if c.Depth == 0 {
		return nil, fmt.Errorf("%s: no transformer blocks (Transformer/encoderblock_0/LayerNorm_0/scale is missing): not a ViT checkpoint", s.file)
	}
	if c.MLP == 0 {
		return nil, fmt.Errorf("%s: Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel is missing or not [W,M]", s.file)
	}
	c.Heads = heads
	if q, ok := s.peek(blk(0) + "MultiHeadDotProductAttention_1/query/kernel"); ok && len(q) == 3 {
		if c.Heads != 0 && c.Heads != q[1] {
			return nil, fmt.Errorf("%s: --heads %d, but the checkpoint's attention kernels have %d heads", s.file, heads, q[1])
		}
		c.Heads = q[1] // the JAX layout stores the head count
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", s.file, err)
	}
	W, M, T, P, H, hd := c.Width, c.MLP, c.Tokens(), c.Patch, c.Heads, c.HeadDim()
	w := &Weights{Config: c}
	// HWIO [P,P,3,W] → OIHW [W,3,P,P].
	if a := s.get(pre+"embedding/kernel", P, P, 3, W); a.data != nil {
		w.PatchW = make([]float32, W*3*P*P)
		for y := 0; y < P; y++ {
			for x := 0; x < P; x++ {
				for ci := 0; ci < 3; ci++ {
					for o := 0; o < W; o++ {
						w.PatchW[((o*3+ci)*P+y)*P+x] = a.data[((y*P+x)*3+ci)*W+o]
					}
				}
			}
		}
	}
	w.PatchB = s.get(pre+"embedding/bias", W).data
	w.CLS = s.get(pre+"cls", 1, 1, W).data
	w.Pos = s.get(pre+"Transformer/posembed_input/pos_embedding", 1, T, W).data
	w.NormW = s.get(pre+"Transformer/encoder_norm/scale", W).data
	w.NormB = s.get(pre+"Transformer/encoder_norm/bias", W).data
	for i := 0; i < c.Depth; i++ {
		b, m := blk(i), blk(i)+"MultiHeadDotProductAttention_1/"
		var bl Block
		bl.Norm1W, bl.Norm1B = s.get(b+"LayerNorm_0/scale", W).data, s.get(b+"LayerNorm_0/bias", W).data
		bl.Norm2W, bl.Norm2B = s.get(b+"LayerNorm_2/scale", W).data, s.get(b+"LayerNorm_2/bias", W).data
		bl.QKVW = make([]float32, 3*W*W)
		bl.QKVB = make([]float32, 3*W)
		for j, name := range []string{"query", "key", "value"} {
			// kernel [W_in, heads, hd] = [in, out]; qkv weight rows are outputs.
			if a := s.get(m+name+"/kernel", W, H, hd); a.data != nil {
				transposeInto(bl.QKVW[j*W*W:(j+1)*W*W], a.data, W, W)
			}
			if a := s.get(m+name+"/bias", H, hd); a.data != nil {
				copy(bl.QKVB[j*W:], a.data)
			}
		}
		// out kernel [heads, hd, W_out] = [in, out].
		if a := s.get(m+"out/kernel", H, hd, W); a.data != nil {
			bl.ProjW = make([]float32, W*W)
			transposeInto(bl.ProjW, a.data, W, W)
		}
		bl.ProjB = s.get(m+"out/bias", W).data
		if a := s.get(b+"MlpBlock_3/Dense_0/kernel", W, M); a.data != nil {
			bl.FC1W = make([]float32, M*W)
			transposeInto(bl.FC1W, a.data, W, M)
		}
		bl.FC1B = s.get(b+"MlpBlock_3/Dense_0/bias", M).data
		if a := s.get(b+"MlpBlock_3/Dense_1/kernel", M, W); a.data != nil {
			bl.FC2W = make([]float32, W*M)
			transposeInto(bl.FC2W, a.data, M, W)
		}
		bl.FC2B = s.get(b+"MlpBlock_3/Dense_1/bias", W).data
		w.Blocks = append(w.Blocks, bl)
	}
	notes, err := s.finish(func(name string) (string, bool) {
		n := strings.TrimPrefix(name, pre)
		switch {
		case strings.HasPrefix(n, "head/"):
			return "classifier head (head/*) ignored: the feature is the CLS token after the final LayerNorm", true
		case strings.HasPrefix(n, "pre_logits/"):
			return "pre-logits layer (pre_logits/*) ignored (docs/METHODS.md §4: the feature has no representation layer)", true
		case pre != "" && !strings.HasPrefix(name, pre):
			return "optimizer state outside opt/target/ ignored", true
		}
		return "", false
	})
	if err != nil {
		return nil, err
	}
	w.Notes = notes
	return w, nil
}

// transposeInto writes the [cols,rows] transpose of src [rows,cols] into dst.
func transposeInto(dst, src []float32, rows, cols int) {
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			dst[c*rows+r] = src[r*cols+c]
		}
	}
}

// check verifies that every tensor has the length its shape requires (for
// Weights assembled by hand) and that no value is NaN or infinite.
func (w *Weights) check() error {
	if err := w.Config.Validate(); err != nil {
		return err
	}
	W, M, T, P := w.Width, w.MLP, w.Tokens(), w.Patch
	type t struct {
		name string
		v    []float32
		n    int
	}
	list := []t{{"patch weight", w.PatchW, W * 3 * P * P}, {"patch bias", w.PatchB, W}, {"cls token", w.CLS, W},
		{"position embedding", w.Pos, T * W}, {"final norm weight", w.NormW, W}, {"final norm bias", w.NormB, W}}
	if len(w.Blocks) != w.Depth {
		return fmt.Errorf("%d blocks for depth %d", len(w.Blocks), w.Depth)
	}
	for i, b := range w.Blocks {
		p := fmt.Sprintf("block %d ", i)
		list = append(list, t{p + "norm1 weight", b.Norm1W, W}, t{p + "norm1 bias", b.Norm1B, W},
			t{p + "qkv weight", b.QKVW, 3 * W * W}, t{p + "qkv bias", b.QKVB, 3 * W},
			t{p + "proj weight", b.ProjW, W * W}, t{p + "proj bias", b.ProjB, W},
			t{p + "norm2 weight", b.Norm2W, W}, t{p + "norm2 bias", b.Norm2B, W},
			t{p + "fc1 weight", b.FC1W, M * W}, t{p + "fc1 bias", b.FC1B, M},
			t{p + "fc2 weight", b.FC2W, W * M}, t{p + "fc2 bias", b.FC2B, W})
	}
	for _, x := range list {
		if len(x.v) != x.n {
			return fmt.Errorf("%s has %d values, want %d", x.name, len(x.v), x.n)
		}
		for _, f := range x.v {
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return fmt.Errorf("%s contains NaN or Inf values (corrupt checkpoint?)", x.name)
			}
		}
	}
	return nil
}
