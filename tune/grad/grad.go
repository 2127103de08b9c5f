// Package grad differentiates ONNX graphs in reverse mode: from a forward
// graph, the name of a scalar loss in it and the trainable tensors, Build
// emits one ONNX graph (opset 17, standard operators only) that computes the
// loss, the kept forward outputs (logits) and the gradient of the loss with
// respect to every trainable tensor, as outputs "grad/<name>". The result is
// an ordinary inference graph: ONNX Runtime's inference build runs it on any
// execution provider. Frozen weights stay initializers; only the nodes on a
// path from a trainable tensor to the loss get backward nodes, and a rule
// references only the forward tensors its gradient needs (a MatMul with a
// frozen weight keeps the weight, not its input). docs/TRAINING.md describes
// the rules, the losses and how to add a rule.
//
// Pure Go, no cgo: it works on the models/onnxpb protobuf types.
package grad

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/models/onnxpb"
)

// GradPrefix starts the name of every gradient output: "grad/" + tensor.
const GradPrefix = "grad/"

// Opset is the standard-domain opset of the graphs Build reads and writes.
const Opset = 17

// Spec says what to differentiate.
type Spec struct {
	// Trainable names the tensors to differentiate against: graph inputs
	// (prompts, adapters: the caller feeds their values) or initializers,
	// which Build turns into graph inputs of the same name, type and shape
	// (full fine-tuning: the caller feeds the values it reads from the
	// original initializer). Order is kept in the gradient outputs.
	Trainable []string
	// Loss is the scalar (rank 0, or all dimensions 1) float or double
	// tensor to differentiate.
	Loss string
	// Keep names forward tensors to output as well (logits, features).
	Keep []string
}

// GradName is the output holding the gradient of tensor name.
func GradName(name string) string { return GradPrefix + name }

// Build returns a new model whose graph outputs are, in order, the loss,
// the Keep tensors and GradName(t) for each trainable t (same shape and
// type as t). The input model is not modified. Errors name the operator and
// node without a rule, a trainable that is not in the graph or does not
// reach the loss, and non-standard operators.
func Build(model *onnxpb.ModelProto, spec Spec) (*onnxpb.ModelProto, error) {
	if model.GetGraph() == nil {
		return nil, fmt.Errorf("grad: the model has no graph")
	}
	if err := checkOpset(model); err != nil {
		return nil, err
	}
	m := proto.Clone(model).(*onnxpb.ModelProto)
	g := m.Graph
	if err := lowerContrib(g); err != nil {
		return nil, err
	}
	if err := makeTrainableInputs(g, spec.Trainable); err != nil {
		return nil, err
	}
	s := inferGraph(g)
	e := newEmitter(g, "grad_")
	producers := map[string]bool{}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			producers[o] = true
		}
	}
	isInput := map[string]bool{}
	for _, v := range g.GetInput() {
		isInput[v.GetName()] = true
	}
	if spec.Loss == "" {
		return nil, fmt.Errorf("grad: no loss tensor named")
	}
	if !producers[spec.Loss] && !isInput[spec.Loss] {
		return nil, fmt.Errorf("grad: loss %q is not a tensor of the graph", spec.Loss)
	}
	li := s.get(spec.Loss)
	if li.dt != tFloat && li.dt != tDouble {
		return nil, fmt.Errorf("grad: loss %q must be float or double (its element type is %d)", spec.Loss, li.dt)
	}
	if li.rank < 0 {
		return nil, fmt.Errorf("grad: the shape of the loss %q is unknown (it must be a scalar)", spec.Loss)
	}
	for _, d := range li.dims {
		if !d.known() || d.n != 1 {
			return nil, fmt.Errorf("grad: loss %q must be a scalar; its shape is %v", spec.Loss, li)
		}
	}
	kept := map[string]bool{spec.Loss: true}
	for _, k := range spec.Keep {
		if !producers[k] && !isInput[k] {
			return nil, fmt.Errorf("grad: kept output %q is not a tensor of the graph", k)
		}
		if kept[k] {
			return nil, fmt.Errorf("grad: output %q named twice (the loss is always the first output)", k)
		}
		kept[k] = true
	}
	for _, t := range spec.Trainable {
		if e.taken[GradName(t)] {
			return nil, fmt.Errorf("grad: the graph already has a tensor named %q", GradName(t))
		}
	}

	active, toLoss := reach(g, s, spec.Trainable, spec.Loss)
	for _, t := range spec.Trainable {
		if !toLoss[t] {
			return nil, fmt.Errorf("grad: trainable %q does not reach the loss %q", t, spec.Loss)
		}
	}
	if !active[spec.Loss] {
		return nil, fmt.Errorf("grad: the loss %q does not depend on any trainable tensor", spec.Loss)
	}

	// The sweep sees composite patterns (GELU) as one node.
	nodes := sweepNodes(g, s, kept)
	if err := checkRules(nodes, active, toLoss); err != nil {
		return nil, err
	}

	// Reverse sweep.
	contrib := map[string][]string{}
	if li.rank == 0 {
		contrib[spec.Loss] = []string{e.scalar(1, li.dt)}
	} else {
		contrib[spec.Loss] = []string{e.op("ConstantOfShape", []attr{attrTensor("value", oneElem(1, li.dt))}, e.shape(spec.Loss))}
	}
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		gy := make([]string, len(n.GetOutput()))
		any := false
		for j, o := range n.GetOutput() {
			if c := contrib[o]; len(c) > 0 && active[o] {
				gy[j] = e.accumulate(c)
				any = true
			}
		}
		if !any {
			continue
		}
		need := make([]bool, len(n.GetInput()))
		for j, in := range n.GetInput() {
			need[j] = in != "" && active[in]
		}
		c := &rctx{e: e, s: s, n: n, need: need}
		gx, err := rules[n.GetOpType()](c, gy)
		if err != nil {
			return nil, fmt.Errorf("grad: %s (node %q): %w", opName(n), n.GetName(), err)
		}
		for j, name := range gx {
			if name != "" && need[j] {
				in := n.GetInput()[j]
				contrib[in] = append(contrib[in], name)
			}
		}
	}

	// Outputs.
	var outs []*onnxpb.ValueInfoProto
	outs = append(outs, valueInfo(spec.Loss, s.get(spec.Loss)))
	for _, k := range spec.Keep {
		outs = append(outs, valueInfo(k, s.get(k)))
	}
	for _, t := range spec.Trainable {
		c := contrib[t]
		if len(c) == 0 {
			return nil, fmt.Errorf("grad: trainable %q does not reach the loss %q", t, spec.Loss)
		}
		g.Node = append(g.Node, &onnxpb.NodeProto{OpType: proto.String("Identity"), Name: proto.String(GradName(t)),
			Input: []string{e.accumulate(c)}, Output: []string{GradName(t)}})
		outs = append(outs, valueInfo(GradName(t), s.get(t)))
	}
	g.Output = outs
	prune(g)
	g.ValueInfo = nil
	m.OpsetImport = []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}}
	return m, nil
}

func opName(n *onnxpb.NodeProto) string {
	if d := n.GetDomain(); d != "" && d != "ai.onnx" {
		return d + "." + n.GetOpType()
	}
	return n.GetOpType()
}

// RuleOps lists the operators with a gradient rule, sorted.
func RuleOps() []string {
	var v []string
	for k := range rules {
		if !strings.HasPrefix(k, "_") {
			v = append(v, k)
		}
	}
	sort.Strings(v)
	return v
}

func checkOpset(m *onnxpb.ModelProto) error {
	for _, o := range m.GetOpsetImport() {
		if (o.GetDomain() == "" || o.GetDomain() == "ai.onnx") && o.GetVersion() != Opset {
			return fmt.Errorf("grad: the model imports standard opset %d; gradient graphs are built from opset %d models (re-export at opset %d)",
				o.GetVersion(), Opset, Opset)
		}
	}
	return nil
}

// makeTrainableInputs checks that every trainable name is a graph input or
// an initializer, and turns the initializers into inputs.
func makeTrainableInputs(g *onnxpb.GraphProto, names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("grad: no trainable tensors named")
	}
	inputs := map[string]bool{}
	for _, v := range g.GetInput() {
		inputs[v.GetName()] = true
	}
	inits := map[string]int{}
	for i, t := range g.GetInitializer() {
		inits[t.GetName()] = i
	}
	seen := map[string]bool{}
	drop := map[int]bool{}
	for _, name := range names {
		if seen[name] {
			return fmt.Errorf("grad: trainable %q named twice", name)
		}
		seen[name] = true
		i, isInit := inits[name]
		switch {
		case isInit:
			t := g.Initializer[i]
			if t.GetDataType() != tFloat && t.GetDataType() != tDouble {
				return fmt.Errorf("grad: trainable initializer %q is not float or double", name)
			}
			drop[i] = true
			if !inputs[name] {
				g.Input = append(g.Input, valueInfo(name, infoOfTensor(t)))
			}
		case inputs[name]:
		default:
			var in []string
			for _, v := range g.GetInput() {
				in = append(in, v.GetName())
			}
			return fmt.Errorf("grad: trainable %q is neither an input nor an initializer of the graph (inputs: %s)",
				name, strings.Join(in, ", "))
		}
	}
	if len(drop) > 0 {
		var keep []*onnxpb.TensorProto
		for i, t := range g.Initializer {
			if !drop[i] {
				keep = append(keep, t)
			}
		}
		g.Initializer = keep
	}
	return nil
}

// valueInfo describes a tensor for the graph's inputs and outputs; unknown
// dimensions stay unnamed.
func valueInfo(name string, t *tinfo) *onnxpb.ValueInfoProto {
	tt := &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(t.dt)}
	if t.rank >= 0 {
		sh := &onnxpb.TensorShapeProto{}
		for _, d := range t.dims {
			dd := &onnxpb.TensorShapeProto_Dimension{}
			switch {
			case d.known():
				dd.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.n}
			case !strings.HasPrefix(d.sym, "?"):
				dd.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d.sym}
			}
			sh.Dim = append(sh.Dim, dd)
		}
		tt.Shape = sh
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{
		Value: &onnxpb.TypeProto_TensorType{TensorType: tt}}}
}

// prune drops nodes and initializers that no output needs.
func prune(g *onnxpb.GraphProto) {
	need := map[string]bool{}
	for _, o := range g.GetOutput() {
		need[o.GetName()] = true
	}
	keep := make([]bool, len(g.Node))
	for i := len(g.Node) - 1; i >= 0; i-- {
		n := g.Node[i]
		hit := false
		for _, o := range n.GetOutput() {
			hit = hit || need[o]
		}
		if !hit {
			continue
		}
		keep[i] = true
		for _, in := range n.GetInput() {
			need[in] = true
		}
		for _, a := range n.GetAttribute() {
			if a.GetG() != nil {
				// Subgraphs may read outer tensors: keep everything.
				for _, t := range g.Initializer {
					need[t.GetName()] = true
				}
			}
		}
	}
	var nodes []*onnxpb.NodeProto
	for i, n := range g.Node {
		if keep[i] {
			nodes = append(nodes, n)
		}
	}
	g.Node = nodes
	var inits []*onnxpb.TensorProto
	for _, t := range g.Initializer {
		if need[t.GetName()] {
			inits = append(inits, t)
		}
	}
	g.Initializer = inits
}
