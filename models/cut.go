package models

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/models/onnxpb"
)

// DefaultFeatureOutput is the name cut gives the feature output.
const DefaultFeatureOutput = "features"

// CutOptions say which tensor of a graph becomes the feature output.
type CutOptions struct {
	// Tensor is the name of the intermediate (or output) tensor to expose.
	Tensor string
	// OutputName names the new feature output; "" = DefaultFeatureOutput.
	OutputName string
	// Pool is "" (none) or "gap": global average pooling of a 4-D [N,C,H,W]
	// tensor to [N,C,1,1] before flattening.
	Pool string
	// Preprocess and Backbone go into the manifest stored in the model.
	Preprocess Preprocess
	Backbone   string
}

// CutResult reports what Cut did.
type CutResult struct {
	// Manifest is the manifest stored in the model (input and output filled).
	Manifest Manifest
	// SourceType is the element type of Tensor ("float32", "uint8", …).
	SourceType string
	// Dequantized is true when a DequantizeLinear was added, with the scale
	// and zero-point tensors it reads.
	Dequantized      bool
	Scale, ZeroPoint string
	// Pooled is true when a GlobalAveragePool was added.
	Pooled bool
	// NodesBefore and NodesAfter count the graph's nodes.
	NodesBefore, NodesAfter int
}

// PreprocessPreset resolves a --preprocess value: "vit-in21k" (ViTIN21K),
// "imagenet" (bilinear 256, crop 224, ImageNet mean/std) or a JSON object of
// Preprocess fields. The result is validated.
func PreprocessPreset(s string) (Preprocess, error) {
	var p Preprocess
	switch strings.TrimSpace(s) {
	case "vit-in21k":
		p = ViTIN21K()
	case "imagenet":
		p = Preprocess{Resize: 256, Interpolation: "bilinear", Crop: 224,
			Mean: []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225}}
	default:
		if !strings.HasPrefix(strings.TrimSpace(s), "{") {
			return p, fmt.Errorf("preprocess %q: use vit-in21k, imagenet or a JSON object like {\"resize\":256,\"interpolation\":\"bicubic\",\"crop\":224}", s)
		}
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return p, fmt.Errorf("preprocess JSON %s: %v", s, err)
		}
	}
	return p, p.Validate()
}

// quantParamIndex gives, for ops that produce a quantized tensor, the index
// of the output scale input (the zero point follows it).
var quantParamIndex = map[string]int{
	"QuantizeLinear": 1, "DynamicQuantizeLinear": -1,
	"QLinearConv": 6, "QLinearMatMul": 6, "QLinearAdd": 6, "QLinearMul": 6,
	"QLinearConcat": 0, "QLinearGlobalAveragePool": 3, "QLinearAveragePool": 3,
	"QLinearSigmoid": 3, "QLinearLeakyRelu": 3, "QLinearSoftmax": 3, "QLinearReduceMean": 3,
	"QLinearWhere": 7, "QGemm": 6,
}

// passThrough ops keep their first input's quantization (shape and
// selection ops on quantized tensors).
var passThrough = map[string]bool{
	"Reshape": true, "Flatten": true, "Squeeze": true, "Unsqueeze": true, "Transpose": true,
	"MaxPool": true, "Identity": true, "Slice": true, "Gather": true, "Split": true,
	"Resize": true, "DepthToSpace": true, "SpaceToDepth": true, "Pad": true,
}

type graphIndex struct {
	g        *onnxpb.GraphProto
	producer map[string]*onnxpb.NodeProto
	init     map[string]*onnxpb.TensorProto
	values   map[string]*onnxpb.ValueInfoProto // inputs, outputs, value_info
	inputs   map[string]bool                   // non-initializer graph inputs
}

func indexGraph(g *onnxpb.GraphProto) *graphIndex {
	ix := &graphIndex{g: g, producer: map[string]*onnxpb.NodeProto{}, init: map[string]*onnxpb.TensorProto{},
		values: map[string]*onnxpb.ValueInfoProto{}, inputs: map[string]bool{}}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			if o != "" {
				ix.producer[o] = n
			}
		}
	}
	for _, t := range g.GetInitializer() {
		ix.init[t.GetName()] = t
	}
	for _, vs := range [][]*onnxpb.ValueInfoProto{g.GetValueInfo(), g.GetOutput(), g.GetInput()} {
		for _, v := range vs {
			ix.values[v.GetName()] = v
		}
	}
	for _, v := range g.GetInput() {
		if ix.init[v.GetName()] == nil {
			ix.inputs[v.GetName()] = true
		}
	}
	return ix
}

func (ix *graphIndex) exists(name string) bool {
	return ix.producer[name] != nil || ix.init[name] != nil || ix.inputs[name]
}

// elemType finds a tensor's element type: declared, else inferred from its
// producer (quantizing ops give their zero point's type, DequantizeLinear
// float, shape ops their input's type), else for a "<x>_quantized" tensor from
// the <x>_zero_point convention. 0 = unknown.
func (ix *graphIndex) elemType(name string, depth int) int32 {
	if v := ix.values[name]; v != nil && v.GetType().GetTensorType().GetElemType() != 0 {
		return v.GetType().GetTensorType().GetElemType()
	}
	if t := ix.init[name]; t != nil {
		return t.GetDataType()
	}
	if depth > 64 {
		return 0
	}
	quantType := func(zp string) int32 {
		if zp != "" {
			if t := ix.elemType(zp, depth+1); t != 0 {
				return t
			}
		}
		return int32(onnxpb.TensorProto_UINT8) // the default zero point type
	}
	if n := ix.producer[name]; n != nil {
		op, in := n.GetOpType(), n.GetInput()
		switch {
		case op == "DequantizeLinear":
			return int32(onnxpb.TensorProto_FLOAT)
		case op == "Shape" || op == "Size" || op == "NonZero" || op == "ArgMax" || op == "ArgMin":
			return int32(onnxpb.TensorProto_INT64)
		case op == "Constant":
			for _, a := range n.GetAttribute() {
				if a.GetName() == "value" && a.GetT() != nil {
					return a.GetT().GetDataType()
				}
			}
		case op == "Cast":
			for _, a := range n.GetAttribute() {
				if a.GetName() == "to" {
					return int32(a.GetI())
				}
			}
		case passThrough[op] && len(in) > 0:
			return ix.elemType(in[0], depth+1)
		}
		if i, ok := quantParamIndex[op]; ok && i >= 0 && len(in) > i {
			zp := ""
			if len(in) > i+1 {
				zp = in[i+1]
			}
			return quantType(zp)
		}
	}
	if strings.HasSuffix(name, "_quantized") {
		if _, zp, ok := ix.conventionParams(name); ok {
			return quantType(zp)
		}
	}
	return 0
}

// quantParams finds the scale and zero-point tensors of a quantized tensor
// from its producing node (QLinear*, QuantizeLinear, or a shape op on a
// quantized input), else from the <x>_scale/<x>_zero_point convention.
func (ix *graphIndex) quantParams(name string, depth int) (scale, zp string, ok bool) {
	if depth > 64 {
		return "", "", false
	}
	if n := ix.producer[name]; n != nil {
		in := n.GetInput()
		if i, known := quantParamIndex[n.GetOpType()]; known && i >= 0 && len(in) > i {
			if len(in) > i+1 {
				zp = in[i+1]
			}
			return in[i], zp, true
		}
		if passThrough[n.GetOpType()] && len(in) > 0 {
			if s, z, ok := ix.quantParams(in[0], depth+1); ok {
				return s, z, true
			}
		}
	}
	return ix.conventionParams(name)
}

func (ix *graphIndex) conventionParams(name string) (scale, zp string, ok bool) {
	for _, base := range []string{strings.TrimSuffix(name, "_quantized"), name} {
		if ix.exists(base+"_scale") && ix.exists(base+"_zero_point") {
			return base + "_scale", base + "_zero_point", true
		}
	}
	return "", "", false
}

// shape returns the declared dims of a tensor (nil when unknown); symbolic
// dims are returned as TensorShapeProto_Dimension too.
func (ix *graphIndex) shape(name string) []*onnxpb.TensorShapeProto_Dimension {
	v := ix.values[name]
	if v == nil || v.GetType().GetTensorType().GetShape() == nil {
		return nil
	}
	return v.GetType().GetTensorType().GetShape().GetDim()
}

// closeNames lists up to 8 tensor names that resemble name.
func (ix *graphIndex) closeNames(name string) []string {
	seen := map[string]bool{}
	var all []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			all = append(all, s)
		}
	}
	for _, n := range ix.g.GetNode() {
		for _, o := range n.GetOutput() {
			add(o)
		}
	}
	for s := range ix.inputs {
		add(s)
	}
	type cand struct {
		s string
		d int
	}
	var cs []cand
	lname := strings.ToLower(name)
	for _, s := range all {
		d := editDistance(lname, strings.ToLower(s))
		if strings.Contains(strings.ToLower(s), lname) || strings.Contains(lname, strings.ToLower(s)) {
			d = min(d, 1)
		}
		cs = append(cs, cand{s, d})
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].d < cs[j].d })
	var out []string
	for _, c := range cs {
		if len(out) == 8 || c.d > max(3, len(name)/2) {
			break
		}
		out = append(out, c.s)
	}
	return out
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Cut edits m in place so that its only output is opts.Tensor as float32
// [N,D]: a DequantizeLinear is added for a uint8/int8 tensor (scale and zero
// point from the producing QLinear* node or <x>_scale/<x>_zero_point), a Cast
// for float16/float64, a GlobalAveragePool when opts.Pool is "gap", and always
// a Flatten(axis=1). Nodes, initializers and inputs not needed for the new
// output are removed, and the manifest is stored in metadata_props.
func Cut(m *onnxpb.ModelProto, opts CutOptions) (CutResult, error) {
	var res CutResult
	g := m.GetGraph()
	if g == nil {
		return res, fmt.Errorf("the model has no graph")
	}
	if err := opts.Preprocess.Validate(); err != nil {
		return res, err
	}
	switch opts.Pool {
	case "", "none", "gap":
	default:
		return res, fmt.Errorf("pool %q unknown: use gap or leave it out", opts.Pool)
	}
	outName := opts.OutputName
	if outName == "" {
		outName = DefaultFeatureOutput
	}
	res.NodesBefore = len(g.GetNode())
	ix := indexGraph(g)
	tensor := opts.Tensor
	if !ix.exists(tensor) {
		msg := fmt.Sprintf("tensor %q is not in the graph", tensor)
		if c := ix.closeNames(tensor); len(c) > 0 {
			msg += "; close names: " + strings.Join(c, ", ")
		}
		return res, fmt.Errorf("%s (list them with `cl models inspect --tensors`)", msg)
	}
	if ix.inputs[tensor] || ix.init[tensor] != nil {
		return res, fmt.Errorf("tensor %q is a graph input or a weight, not a computed feature", tensor)
	}
	elem := ix.elemType(tensor, 0)
	srcShape := ix.shape(tensor)
	res.SourceType = DTypeName(elem)
	if elem == 0 {
		res.SourceType = "float32 (assumed; the graph does not declare its type)"
		elem = int32(onnxpb.TensorProto_FLOAT)
	}
	defVersion := int64(-1)
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			defVersion = o.GetVersion()
		}
	}
	if defVersion < 0 {
		return res, fmt.Errorf("the model imports no standard ONNX opset; cannot add Flatten")
	}

	// The new output name must not clash with an existing tensor.
	if ix.exists(outName) || ix.values[outName] != nil {
		fresh := uniqueName(ix, outName+"_orig")
		renameTensor(g, outName, fresh)
		if tensor == outName {
			tensor = fresh
		}
		ix = indexGraph(g)
	}
	var added []*onnxpb.NodeProto
	cur := tensor
	next := func(suffix string) string { return uniqueName(ix, tensor+"_"+suffix) }
	switch onnxpb.TensorProto_DataType(elem) {
	case onnxpb.TensorProto_FLOAT:
	case onnxpb.TensorProto_UINT8, onnxpb.TensorProto_INT8:
		scale, zp, ok := ix.quantParams(tensor, 0)
		if !ok {
			return res, fmt.Errorf("tensor %q is %s but its scale and zero point cannot be found (no QLinear* producer and no %s_scale/%s_zero_point tensors)",
				tensor, res.SourceType, strings.TrimSuffix(tensor, "_quantized"), strings.TrimSuffix(tensor, "_quantized"))
		}
		if defVersion < 10 {
			return res, fmt.Errorf("the model's opset %d is too old for DequantizeLinear (needs 10)", defVersion)
		}
		o := next("dequantized")
		in := []string{cur, scale}
		if zp != "" {
			in = append(in, zp)
		}
		added = append(added, node("DequantizeLinear", "cl_cut_dequantize", in, o))
		cur = o
		res.Dequantized, res.Scale, res.ZeroPoint = true, scale, zp
	case onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_BFLOAT16:
		o := next("float")
		n := node("Cast", "cl_cut_cast", []string{cur}, o)
		n.Attribute = []*onnxpb.AttributeProto{{Name: proto.String("to"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(onnxpb.TensorProto_FLOAT))}}
		added = append(added, n)
		cur = o
	default:
		return res, fmt.Errorf("tensor %q is %s; a feature must be float or a quantized uint8/int8 tensor", tensor, res.SourceType)
	}
	dims := srcShape
	if opts.Pool == "gap" {
		if dims != nil && len(dims) != 4 {
			return res, fmt.Errorf("--pool gap needs a 4-D [N,C,H,W] tensor; %q has %d dims", tensor, len(dims))
		}
		o := next("pooled")
		added = append(added, node("GlobalAveragePool", "cl_cut_gap", []string{cur}, o))
		cur = o
		res.Pooled = true
		if dims != nil {
			dims = dims[:2]
		}
	}
	fl := node("Flatten", "cl_cut_flatten", []string{cur}, outName)
	fl.Attribute = []*onnxpb.AttributeProto{{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)}}
	added = append(added, fl)
	g.Node = append(g.Node, added...)
	g.Output = []*onnxpb.ValueInfoProto{featureValueInfo(outName, dims, batchDim(ix))}

	prune(g)
	inputs := graphInputs(g)
	if len(inputs) != 1 {
		if len(inputs) == 0 {
			return res, fmt.Errorf("tensor %q does not depend on any graph input", opts.Tensor)
		}
		return res, fmt.Errorf("tensor %q needs %d graph inputs (%s); a backbone takes one image input", opts.Tensor, len(inputs), strings.Join(inputs, ", "))
	}
	res.Manifest = Manifest{Input: inputs[0], Output: outName, Preprocess: opts.Preprocess, Backbone: opts.Backbone}
	SetManifest(m, res.Manifest)
	res.NodesAfter = len(g.GetNode())
	return res, nil
}

func node(op, name string, in []string, out string) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: in, Output: []string{out}}
}

// featureValueInfo declares float32 [N,D] with N and D taken from the source
// dims when known (D = product of dims[1:]).
func featureValueInfo(name string, src []*onnxpb.TensorShapeProto_Dimension, batchName string) *onnxpb.ValueInfoProto {
	batch := &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: batchName}}
	feat := &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: name + "_dim"}}
	if len(src) > 0 {
		if v, ok := src[0].GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue); ok {
			batch = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: v.DimValue}}
		} else if p := src[0].GetDimParam(); p != "" {
			batch = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: p}}
		}
		d := int64(1)
		for _, x := range src[1:] {
			v, ok := x.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue)
			if !ok || v.DimValue <= 0 {
				d = -1
				break
			}
			d *= v.DimValue
		}
		if d > 0 && len(src) > 1 {
			feat = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}}
		}
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
			Shape: &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{batch, feat}}}}}}
}

// batchDim is the symbolic name of the image input's batch dim when the
// graph has one input, else "batch".
func batchDim(ix *graphIndex) string {
	if len(ix.inputs) == 1 {
		for name := range ix.inputs {
			if d := ix.shape(name); len(d) > 0 && d[0].GetDimParam() != "" {
				return d[0].GetDimParam()
			}
		}
	}
	return "batch"
}

// SetFeatureDim fixes the D of the (single) feature output's declared
// [N,D] shape, e.g. after ONNX Runtime has measured it.
func SetFeatureDim(m *onnxpb.ModelProto, output string, d int) {
	for _, o := range m.GetGraph().GetOutput() {
		if o.GetName() != output {
			continue
		}
		sh := o.GetType().GetTensorType().GetShape()
		if sh != nil && len(sh.Dim) == 2 {
			sh.Dim[1] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}}
		}
	}
}

func uniqueName(ix *graphIndex, base string) string {
	name := base
	for i := 1; ix.exists(name) || ix.values[name] != nil; i++ {
		name = base + "_" + strconv.Itoa(i)
	}
	// Reserve it so that the next call gives another name.
	ix.values[name] = &onnxpb.ValueInfoProto{Name: proto.String(name)}
	return name
}

// renameTensor renames a tensor everywhere in g (nodes, subgraphs, inputs,
// outputs, value_info, initializers).
func renameTensor(g *onnxpb.GraphProto, from, to string) {
	for _, n := range g.GetNode() {
		for i, s := range n.Input {
			if s == from {
				n.Input[i] = to
			}
		}
		for i, s := range n.Output {
			if s == from {
				n.Output[i] = to
			}
		}
		for _, a := range n.GetAttribute() {
			if a.G != nil {
				renameTensor(a.G, from, to)
			}
			for _, sg := range a.Graphs {
				renameTensor(sg, from, to)
			}
		}
	}
	for _, vs := range [][]*onnxpb.ValueInfoProto{g.Input, g.Output, g.ValueInfo} {
		for _, v := range vs {
			if v.GetName() == from {
				v.Name = proto.String(to)
			}
		}
	}
	for _, t := range g.Initializer {
		if t.GetName() == from {
			t.Name = proto.String(to)
		}
	}
}

// subgraphInputs adds every tensor name a node's subgraphs read.
func subgraphInputs(n *onnxpb.NodeProto, need map[string]bool) {
	for _, a := range n.GetAttribute() {
		gs := append([]*onnxpb.GraphProto(nil), a.Graphs...)
		if a.G != nil {
			gs = append(gs, a.G)
		}
		for _, sg := range gs {
			for _, sn := range sg.GetNode() {
				for _, s := range sn.GetInput() {
					need[s] = true
				}
				subgraphInputs(sn, need)
			}
		}
	}
}

// prune keeps only the nodes, initializers, inputs and value_info needed to
// compute g's outputs.
func prune(g *onnxpb.GraphProto) {
	need := map[string]bool{}
	for _, o := range g.GetOutput() {
		need[o.GetName()] = true
	}
	nodes := g.GetNode()
	keep := make([]bool, len(nodes))
	for i := len(nodes) - 1; i >= 0; i-- { // nodes are topologically sorted
		n := nodes[i]
		for _, o := range n.GetOutput() {
			if need[o] {
				keep[i] = true
				break
			}
		}
		if keep[i] {
			for _, s := range n.GetInput() {
				need[s] = true
			}
			subgraphInputs(n, need)
		}
	}
	var kept []*onnxpb.NodeProto
	for i, n := range nodes {
		if keep[i] {
			kept = append(kept, n)
		}
	}
	g.Node = kept
	var inits []*onnxpb.TensorProto
	for _, t := range g.GetInitializer() {
		if need[t.GetName()] {
			inits = append(inits, t)
		}
	}
	g.Initializer = inits
	var ins []*onnxpb.ValueInfoProto
	for _, v := range g.GetInput() {
		if need[v.GetName()] {
			ins = append(ins, v)
		}
	}
	g.Input = ins
	var vis []*onnxpb.ValueInfoProto
	for _, v := range g.GetValueInfo() {
		if need[v.GetName()] {
			vis = append(vis, v)
		}
	}
	g.ValueInfo = vis
	var sparse []*onnxpb.SparseTensorProto
	for _, s := range g.GetSparseInitializer() {
		if need[s.GetValues().GetName()] {
			sparse = append(sparse, s)
		}
	}
	g.SparseInitializer = sparse
}

// graphInputs lists g's inputs that are not initializers.
func graphInputs(g *onnxpb.GraphProto) []string {
	init := map[string]bool{}
	for _, t := range g.GetInitializer() {
		init[t.GetName()] = true
	}
	var out []string
	for _, v := range g.GetInput() {
		if !init[v.GetName()] {
			out = append(out, v.GetName())
		}
	}
	return out
}
