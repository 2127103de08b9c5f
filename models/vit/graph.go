package vit

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/onnxpb"
)

// Graph tensor names.
const (
	// InputName is the image input, float32 [N,3,S,S] in [0,1].
	InputName = "input"
	// OutputName is the feature output, float32 [N,W]: the CLS token after
	// the final LayerNorm.
	OutputName = "features"
	// PromptMeanName is the prompt variant's extra output, float32 [N,W]: the
	// mean of the prompt tokens after the final LayerNorm (L2P's head input).
	PromptMeanName = "prompt_mean"
	// BatchDim is the symbolic batch dimension's name.
	BatchDim = "batch"
)

// Opset is the ONNX opset of the graphs (LayerNormalization needs 17).
const Opset = 17

// LayerNormEps is timm's ViT LayerNorm epsilon (docs/METHODS.md §4).
const LayerNormEps = 1e-6

// builder accumulates one graph.
type builder struct {
	w      *Weights
	opt    Options
	specs  map[string]ParamSpec
	g      *onnxpb.GraphProto
	n      int
	consts map[string]string
	params map[string]string // param name → tensor holding it (input or expanded initializer)
	shapeN string            // [N] int64, the batch size
	msft   bool              // uses com.microsoft ops
	sets   *setsState        // BuildAdapterSets (adaptersets.go); nil otherwise
}

// Build turns weights into an ONNX model of the chosen variant: image input
// "input" float32 [N,3,S,S], output "features" float32 [N,W] (+ "prompt_mean"
// for the prompt variant), the variant's parameters as extra graph inputs
// (ParamSpecs) unless baked, and a cl manifest (opt.Preprocess, by default
// models.ForImageSize(S), no mean/std) in metadata_props. The batch
// dimension is dynamic.
func Build(w *Weights, opt Options) (*onnxpb.ModelProto, error) { return build(w, opt, false) }

// build is Build; sets stacks the adapter variant's parameters (adaptersets.go).
func build(w *Weights, opt Options, sets bool) (*onnxpb.ModelProto, error) {
	if err := w.check(); err != nil {
		return nil, err
	}
	opt, err := opt.normalize(w.Config)
	if err != nil {
		return nil, err
	}
	specs := ParamSpecs(w.Config, opt)
	b := &builder{w: w, opt: opt, g: &onnxpb.GraphProto{Name: proto.String("vit")},
		consts: map[string]string{}, params: map[string]string{}, specs: map[string]ParamSpec{}}
	if sets {
		b.sets = &setsState{}
	}
	for _, s := range specs {
		b.specs[s.Name] = s
	}
	if err := b.checkBake(specs); err != nil {
		return nil, err
	}
	c := w.Config
	b.g.Input = append(b.g.Input, valueInfo(InputName, []any{BatchDim, 3, c.Image, c.Image}))
	for _, s := range specs {
		if opt.Bake == nil {
			b.g.Input = append(b.g.Input, valueInfo(s.Name, b.setsDims(s.dims())))
		}
	}
	b.forward()
	b.g.Output = append(b.g.Output, valueInfo(OutputName, b.setsDims([]any{BatchDim, c.Width})))
	if opt.Variant == Prompt {
		b.g.Output = append(b.g.Output, valueInfo(PromptMeanName, []any{BatchDim, c.Width}))
	}
	m := &onnxpb.ModelProto{
		IrVersion:       proto.Int64(8),
		ProducerName:    proto.String("cl models import"),
		ProducerVersion: proto.String("1"),
		Graph:           b.g,
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}},
		DocString:       proto.String(opt.describe(c)),
	}
	if b.msft {
		m.OpsetImport = append(m.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String("com.microsoft"), Version: proto.Int64(1)})
	}
	desc := opt.Description
	if desc == "" {
		desc = opt.describe(c)
	}
	pre := models.ForImageSize(c.Image)
	if opt.Preprocess != nil {
		pre = *opt.Preprocess
	}
	models.SetManifest(m, models.Manifest{Input: InputName, Output: OutputName, Preprocess: pre, Backbone: desc})
	models.SetMetadata(m, "cl.vit.config", fmt.Sprintf(`{"width":%d,"depth":%d,"heads":%d,"patch":%d,"mlp":%d,"image":%d}`,
		c.Width, c.Depth, c.Heads, c.Patch, c.MLP, c.Image))
	models.SetMetadata(m, "cl.vit.variant", opt.JSON())
	return m, nil
}

// ---- graph helpers ----

func (b *builder) name(prefix string) string {
	b.n++
	return prefix + "_" + strconv.Itoa(b.n)
}

type attr = *onnxpb.AttributeProto

func attrInt(name string, v int64) attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func attrInts(name string, v ...int64) attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func attrFloat(name string, v float32) attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

// op appends a node with one output and returns the output's name.
func (b *builder) op(opType string, attrs []attr, inputs ...string) string {
	return b.opN(opType, "", attrs, 1, inputs...)[0]
}

func (b *builder) opN(opType, domain string, attrs []attr, nout int, inputs ...string) []string {
	outs := make([]string, nout)
	for i := range outs {
		outs[i] = b.name(opType)
	}
	n := &onnxpb.NodeProto{OpType: proto.String(opType), Input: inputs, Output: outs, Attribute: attrs,
		Name: proto.String(outs[0])}
	if domain != "" {
		n.Domain = proto.String(domain)
		b.msft = true
	}
	b.g.Node = append(b.g.Node, n)
	return outs
}

func floatTensor(name string, dims []int64, v []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims,
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: raw}
}

// f32 adds a float32 initializer.
func (b *builder) f32(name string, dims []int64, v []float32) string {
	b.g.Initializer = append(b.g.Initializer, floatTensor(name, dims, v))
	return name
}

// i64 adds (or reuses) an int64 constant initializer.
func (b *builder) i64(v ...int64) string {
	return b.i64dims(nil, v...)
}

func (b *builder) i64dims(dims []int64, v ...int64) string {
	if dims == nil {
		dims = []int64{int64(len(v))}
	}
	key := fmt.Sprint("i64", dims, v)
	if n, ok := b.consts[key]; ok {
		return n
	}
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	name := b.name("const_i64")
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: dims,
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), RawData: raw})
	b.consts[key] = name
	return name
}

// scalar adds (or reuses) a float32 scalar constant.
func (b *builder) scalar(v float32) string {
	key := fmt.Sprint("f32", math.Float32bits(v))
	if n, ok := b.consts[key]; ok {
		return n
	}
	name := b.name("const_f32")
	b.g.Initializer = append(b.g.Initializer, floatTensor(name, []int64{}, []float32{v}))
	b.consts[key] = name
	return name
}

// idx is a scalar int64 index constant (for Gather that drops the axis).
func (b *builder) idx(i int) string { return b.i64dims([]int64{}, int64(i)) }

func valueInfo(name string, dims []any) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		switch x := d.(type) {
		case string:
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: x}
		case int:
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(x)}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{
		Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: shape}}}}
}

// batch returns the [N] int64 tensor holding the batch size.
func (b *builder) batch() string {
	if b.shapeN == "" {
		sh := b.op("Shape", nil, InputName)
		b.shapeN = b.op("Slice", nil, sh, b.i64(0), b.i64(1))
	}
	return b.shapeN
}

// expandBatch broadcasts a tensor of rank r (without batch) to [N, …].
func (b *builder) expandBatch(x string, rank int) string {
	ones := make([]int64, rank)
	for i := range ones {
		ones[i] = 1
	}
	shape := b.op("Concat", []attr{attrInt("axis", 0)}, b.batch(), b.i64(ones...))
	return b.op("Expand", nil, x, shape)
}

func (b *builder) layerNorm(x, w, bias string) string {
	return b.op("LayerNormalization", []attr{attrInt("axis", -1), attrFloat("epsilon", LayerNormEps)}, x, w, bias)
}

// linear computes x·Wᵀ + bias for a torch-layout weight [out,in]; with
// --quantize int8 it is one com.microsoft DynamicQuantizeMatMul.
func (b *builder) linear(x, name string, w []float32, bias []float32, out, in int) string {
	if b.opt.Quantize == "int8" {
		q, scale := quantizeColumns(w, out, in)
		qt := &onnxpb.TensorProto{Name: proto.String(name + ".weight_int8"), Dims: []int64{int64(in), int64(out)},
			DataType: proto.Int32(int32(onnxpb.TensorProto_INT8)), RawData: q}
		b.g.Initializer = append(b.g.Initializer, qt)
		s := b.f32(name+".weight_scale", []int64{int64(out)}, scale)
		bb := b.f32(name+".bias", []int64{int64(out)}, bias)
		return b.opN("DynamicQuantizeMatMul", "com.microsoft", nil, 1, x, qt.GetName(), s, "", bb)[0]
	}
	wt := make([]float32, len(w))
	transposeInto(wt, w, out, in) // [in,out] for MatMul
	wn := b.f32(name+".weight_t", []int64{int64(in), int64(out)}, wt)
	bn := b.f32(name+".bias", []int64{int64(out)}, bias)
	return b.op("Add", nil, b.op("MatMul", nil, x, wn), bn)
}

// gelu is the exact (erf) GELU 0.5·x·(1+erf(x/√2)) in the pattern ONNX
// Runtime fuses into one Gelu kernel.
func (b *builder) gelu(x string) string {
	e := b.op("Erf", nil, b.op("Div", nil, x, b.scalar(float32(math.Sqrt2))))
	return b.op("Mul", nil, b.op("Mul", nil, x, b.op("Add", nil, e, b.scalar(1))), b.scalar(0.5))
}

// ---- the network ----

func (b *builder) forward() {
	w, c := b.w, b.w.Config
	W, T, L := c.Width, c.Tokens(), c.Grid()*c.Grid()
	P := int64(c.Patch)
	// Patch embedding: Conv k=s=P → [N,W,g,g] → [N,W,L] → [N,L,W].
	pw := b.f32("patch_embed.proj.weight", []int64{int64(W), 3, P, P}, w.PatchW)
	pb := b.f32("patch_embed.proj.bias", []int64{int64(W)}, w.PatchB)
	x := b.op("Conv", []attr{attrInts("kernel_shape", P, P), attrInts("strides", P, P)}, InputName, pw, pb)
	x = b.op("Transpose", []attr{attrInts("perm", 0, 2, 1)}, b.op("Reshape", nil, x, b.i64(0, int64(W), -1)))
	if b.opt.Variant == SSF {
		x = b.ssf(x, "ssf_patch", -1)
	}
	// Position embedding: patches get pos[1:], the class token pos[0]
	// (folded into a constant, as cls+pos0 is the same for every image).
	x = b.op("Add", nil, x, b.f32("pos_embed.patches", []int64{int64(L), int64(W)}, w.Pos[W:T*W]))
	cls := make([]float32, W)
	for i := range cls {
		cls[i] = w.CLS[i] + w.Pos[i]
	}
	clsN := b.expandBatch(b.f32("cls_token_pos", []int64{1, int64(W)}, cls), 2)
	seq := []string{clsN}
	if b.opt.Variant == Prompt {
		pos0 := b.f32("pos_embed.cls", []int64{int64(W)}, w.Pos[:W])
		seq = append(seq, b.op("Add", nil, b.param("prompt"), pos0))
	}
	seq = append(seq, x)
	if b.opt.Variant == VPTShallow {
		seq = append(seq, b.expandBatch(b.param("vpt"), 2))
	}
	x = b.op("Concat", []attr{attrInt("axis", 1)}, seq...)
	seqLen := T
	if b.opt.Variant == Prompt {
		seqLen += b.opt.Tokens
	}
	for i := range w.Blocks {
		if b.opt.Variant == VPTDeep {
			if j := indexOf(b.opt.Layers, i); j >= 0 {
				x = b.op("Concat", []attr{attrInt("axis", 1)}, x, b.expandBatch(b.gather(b.param("vpt"), j), 2))
				x = b.block(i, x)
				x = b.op("Slice", nil, x, b.i64(0), b.i64(int64(seqLen)), b.i64(1))
				continue
			}
		}
		x = b.block(i, x)
	}
	nw := b.f32("norm.weight", []int64{int64(W)}, w.NormW)
	nb := b.f32("norm.bias", []int64{int64(W)}, w.NormB)
	// The final LayerNorm acts per token: normalise only the tokens read.
	clsTok := b.op("Gather", []attr{attrInt("axis", 1)}, x, b.idx(0))
	f := b.layerNorm(clsTok, nw, nb)
	if b.opt.Variant == SSF {
		f = b.ssf(f, "ssf_norm", -1)
	}
	if b.sets != nil {
		f = b.untile(f)
	}
	b.rename(f, OutputName)
	if b.opt.Variant == Prompt {
		p := b.op("Slice", nil, x, b.i64(1), b.i64(int64(1+b.opt.Tokens)), b.i64(1))
		p = b.layerNorm(p, nw, nb)
		m := b.op("ReduceMean", []attr{attrInts("axes", 1), attrInt("keepdims", 0)}, p)
		b.rename(m, PromptMeanName)
	}
}

// rename makes the last node producing from write to name instead.
func (b *builder) rename(from, to string) {
	for i := len(b.g.Node) - 1; i >= 0; i-- {
		for j, o := range b.g.Node[i].Output {
			if o == from {
				b.g.Node[i].Output[j] = to
				return
			}
		}
	}
}

func indexOf(v []int, x int) int {
	for i, y := range v {
		if y == x {
			return i
		}
	}
	return -1
}

func (b *builder) gather(x string, i int) string {
	return b.op("Gather", []attr{attrInt("axis", 0)}, x, b.idx(i))
}

// ssf applies y = x·scale + shift with the [2,dim] parameters of name
// (layer < 0) or row layer of the [L,2,dim] parameters.
func (b *builder) ssf(x, name string, layer int) string {
	p := b.param(name)
	if layer >= 0 {
		p = b.gather(p, layer)
	}
	return b.op("Add", nil, b.op("Mul", nil, x, b.gather(p, 0)), b.gather(p, 1))
}

func (b *builder) block(i int, x string) string {
	w, c := b.w.Blocks[i], b.w.Config
	W, H, hd, M := c.Width, c.Heads, c.HeadDim(), c.MLP
	pre := fmt.Sprintf("blocks.%d.", i)
	isSSF := b.opt.Variant == SSF
	h := b.layerNorm(x, b.f32(pre+"norm1.weight", []int64{int64(W)}, w.Norm1W), b.f32(pre+"norm1.bias", []int64{int64(W)}, w.Norm1B))
	if isSSF {
		h = b.ssf(h, "ssf_ln1", i)
	}
	qkv := b.linear(h, pre+"attn.qkv", w.QKVW, w.QKVB, 3*W, W)
	if isSSF {
		qkv = b.ssf(qkv, "ssf_qkv", i)
	}
	var pk, pv string // prefix keys/values [N,p,W]
	if b.opt.Variant == Prefix {
		if j := indexOf(b.opt.Layers, i); j >= 0 {
			pl := b.op("Gather", []attr{attrInt("axis", 1)}, b.param("prefix"), b.idx(j)) // [N,2,p,W]
			pk = b.op("Gather", []attr{attrInt("axis", 1)}, pl, b.idx(0))
			pv = b.op("Gather", []attr{attrInt("axis", 1)}, pl, b.idx(1))
		}
	}
	var o string
	scale := float32(1 / math.Sqrt(float64(hd)))
	if b.opt.Attention == AttentionMHA {
		qkvs := b.opN("Split", "", []attr{attrInt("axis", -1)}, 3, qkv, b.i64(int64(W), int64(W), int64(W)))
		q, k, v := qkvs[0], qkvs[1], qkvs[2]
		if pk != "" {
			k = b.op("Concat", []attr{attrInt("axis", 1)}, pk, k)
			v = b.op("Concat", []attr{attrInt("axis", 1)}, pv, v)
		}
		o = b.opN("MultiHeadAttention", "com.microsoft", []attr{attrInt("num_heads", int64(H)),
			attrFloat("scale", scale)}, 1, q, k, v)[0]
	} else {
		// timm's own pattern: one Reshape+Transpose of qkv to [3,N,H,T,hd],
		// then (q·kᵀ)·scale with kᵀ a last-two-axes Transpose, which ONNX
		// Runtime folds (with the scale) into one FusedMatMul.
		t := b.op("Transpose", []attr{attrInts("perm", 2, 0, 3, 1, 4)},
			b.op("Reshape", nil, qkv, b.i64(0, 0, 3, int64(H), int64(hd))))
		q, k, v := b.gather(t, 0), b.gather(t, 1), b.gather(t, 2) // [N,H,T,hd]
		if pk != "" {
			heads := func(x string) string {
				return b.op("Transpose", []attr{attrInts("perm", 0, 2, 1, 3)}, b.op("Reshape", nil, x, b.i64(0, 0, int64(H), int64(hd))))
			}
			k = b.op("Concat", []attr{attrInt("axis", 2)}, heads(pk), k)
			v = b.op("Concat", []attr{attrInt("axis", 2)}, heads(pv), v)
		}
		kt := b.op("Transpose", []attr{attrInts("perm", 0, 1, 3, 2)}, k)
		a := b.op("Softmax", []attr{attrInt("axis", -1)}, b.op("Mul", nil, b.op("MatMul", nil, q, kt), b.scalar(scale)))
		o = b.op("MatMul", nil, a, v)
		o = b.op("Reshape", nil, b.op("Transpose", []attr{attrInts("perm", 0, 2, 1, 3)}, o), b.i64(0, 0, int64(W)))
	}
	o = b.linear(o, pre+"attn.proj", w.ProjW, w.ProjB, W, W)
	if isSSF {
		o = b.ssf(o, "ssf_proj", i)
	}
	x = b.op("Add", nil, x, o)
	h = b.layerNorm(x, b.f32(pre+"norm2.weight", []int64{int64(W)}, w.Norm2W), b.f32(pre+"norm2.bias", []int64{int64(W)}, w.Norm2B))
	if isSSF {
		h = b.ssf(h, "ssf_ln2", i)
	}
	h = b.linear(h, pre+"mlp.fc1", w.FC1W, w.FC1B, M, W)
	if isSSF {
		h = b.ssf(h, "ssf_fc1", i)
	}
	h = b.linear(b.gelu(h), pre+"mlp.fc2", w.FC2W, w.FC2B, W, M)
	if isSSF {
		h = b.ssf(h, "ssf_fc2", i)
	}
	if b.opt.Variant == Adapter {
		if j := indexOf(b.opt.Layers, i); j >= 0 && b.sets != nil {
			x, h = b.setsAdapter(j, x, h)
		} else if j >= 0 {
			d := b.op("Add", nil, b.op("MatMul", nil, x, b.gather(b.param("adapter_down_w"), j)), b.gather(b.param("adapter_down_b"), j))
			u := b.op("Add", nil, b.op("MatMul", nil, b.op("Relu", nil, d), b.gather(b.param("adapter_up_w"), j)), b.gather(b.param("adapter_up_b"), j))
			h = b.op("Add", nil, h, b.op("Mul", nil, u, b.scalar(b.opt.Scale)))
		}
	}
	return b.op("Add", nil, x, h)
}
