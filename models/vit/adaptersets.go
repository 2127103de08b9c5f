package vit

import (
	"fmt"

	"github.com/cl-dev/cl/models/onnxpb"
)

// SetsDim is the symbolic dimension K of BuildAdapterSets' stacked adapter
// sets.
const SetsDim = "sets"

// BuildAdapterSets builds the adapter variant for K adapter sets at once
// (EASE's one ViT pass per adapter set, docs/TRAINING.md "Prompt methods"),
// in one graph call:
//
//   - inputs: "input" float32 [N,3,S,S] and the adapter parameters of
//     ParamSpecs with a leading set dimension: adapter_down_w [K,L,W,r],
//     adapter_down_b [K,L,r], adapter_up_w [K,L,r,W], adapter_up_b [K,L,W]
//     (K dynamic, ≥ 1);
//   - output: "features" float32 [K,N,W], row k the features of Build's
//     adapter graph with set k.
//
// Everything before the first adapter (patch embedding, and the attention
// and MLP of the first adapted block) runs once on the N images; there the
// activations are tiled to [K·N,T,W] (set-major: row k·N+n is image n under
// set k), the frozen layers run on the K·N rows, and each adapter is a
// batched MatMul of [K,N·T,W] with its set's [K,W,r] (and [K,r,W]). opt must
// be the adapter variant, not baked; its other options are Build's.
func BuildAdapterSets(w *Weights, opt Options) (*onnxpb.ModelProto, error) {
	if opt.Variant != Adapter {
		return nil, fmt.Errorf("adapter sets: variant %q, want %s", opt.Variant, Adapter)
	}
	if opt.Bake != nil {
		return nil, fmt.Errorf("adapter sets: the sets are graph inputs, not baked")
	}
	return build(w, opt, true)
}

// setsState is what BuildAdapterSets' builder tracks.
type setsState struct {
	k     string // [1] int64: K, the number of sets
	tiled bool   // the activations are [K·N,…]
}

// setsDims prefixes dims with the set dimension in a sets graph.
func (b *builder) setsDims(dims []any) []any {
	if b.sets == nil {
		return dims
	}
	return append([]any{SetsDim}, dims...)
}

// setsK returns the [1] int64 tensor holding K.
func (b *builder) setsK() string {
	if b.sets.k == "" {
		sh := b.op("Shape", nil, b.param("adapter_down_w"))
		b.sets.k = b.op("Slice", nil, sh, b.i64(0), b.i64(1))
	}
	return b.sets.k
}

// setsAdapter adds block j's adapter (the j-th adapted block) of every set
// to the MLP output h: x is the block's residual stream after attention
// ([N,T,W], or [K·N,T,W] once tiled), h its MLP output of the same shape.
// The first call tiles both. It returns the (tiled) x and h + s·adapter.
func (b *builder) setsAdapter(j int, x, h string) (string, string) {
	W := int64(b.w.Config.Width)
	if !b.sets.tiled {
		reps := b.op("Concat", []attr{attrInt("axis", 0)}, b.setsK(), b.i64(1, 1))
		x, h = b.op("Tile", nil, x, reps), b.op("Tile", nil, h, reps)
		b.sets.tiled = true
	}
	perSet := b.op("Concat", []attr{attrInt("axis", 0)}, b.setsK(), b.i64(-1, W))
	layer := func(name string) string { // [K,…] of the j-th adapted block
		return b.op("Gather", []attr{attrInt("axis", 1)}, b.param(name), b.idx(j))
	}
	bias := func(name string) string { // [K,1,·]
		return b.op("Unsqueeze", nil, layer(name), b.i64(1))
	}
	xs := b.op("Reshape", nil, x, perSet) // [K,N·T,W]
	d := b.op("Add", nil, b.op("MatMul", nil, xs, layer("adapter_down_w")), bias("adapter_down_b"))
	u := b.op("Add", nil, b.op("MatMul", nil, b.op("Relu", nil, d), layer("adapter_up_w")), bias("adapter_up_b"))
	u = b.op("Reshape", nil, u, b.op("Shape", nil, h)) // [K·N,T,W]
	return x, b.op("Add", nil, h, b.op("Mul", nil, u, b.scalar(b.opt.Scale)))
}

// untile reshapes the features [K·N,W] to [K,N,W].
func (b *builder) untile(f string) string {
	shape := b.op("Concat", []attr{attrInt("axis", 0)}, b.setsK(), b.i64(-1, int64(b.w.Config.Width)))
	return b.op("Reshape", nil, f, shape)
}
