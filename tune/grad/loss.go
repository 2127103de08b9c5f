package grad

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/models/onnxpb"
)

// Names of the tensors Objective adds to a forward graph.
const (
	// LogitsName is the classifier's output [N,C], masked classes at −inf.
	LogitsName = "logits"
	// LossName is the loss, float32 [1] (ONNX Runtime's Go binding cannot
	// return rank-0 tensors).
	LossName = "loss"
	// LabelsName is the int64 [N] input of class indices in [0, C).
	LabelsName = "labels"
	// ClassMaskName is the float32 [C] input of MaskInput: 1 for the classes
	// the loss may predict, 0 for the others.
	ClassMaskName = "class_mask"
	// HeadWeightName is the head's weight input: [D,C] (x·w orientation)
	// for HeadLinear, [C,D] (one row per class) for HeadCosine.
	HeadWeightName = "head.weight"
	// HeadBiasName is HeadLinear's bias input [C].
	HeadBiasName = "head.bias"
	// HeadSigmaName is HeadCosine's learnable scale input σ [1].
	HeadSigmaName = "head.sigma"
)

// HeadKind chooses the classifier on the features.
type HeadKind string

// Heads.
const (
	// HeadLinear: logits = x·W + b.
	HeadLinear HeadKind = "linear"
	// HeadCosine: logits = σ·cos(x, w_c) = σ·(x/‖x‖)·(w_c/‖w_c‖), the
	// cosine classifier of APER and SimpleCIL (weights and σ learnable).
	HeadCosine HeadKind = "cosine"
)

// MaskKind chooses how classes outside the current task are masked.
type MaskKind string

// Masks.
const (
	// MaskNone: every class takes part.
	MaskNone MaskKind = ""
	// MaskInput: the float [C] input ClassMaskName (0 = masked), fed per run.
	MaskInput MaskKind = "input"
	// MaskRange: classes outside [Range[0], Range[1]) are masked (fixed in
	// the graph).
	MaskRange MaskKind = "range"
)

// Term is an extra scalar term of the loss: Weight × Tensor, where Tensor is
// a scalar or [1] float tensor the caller has added to the graph (with
// Objective.Op or Objective.Input), e.g. L2P's key pull or an orthogonality
// penalty.
type Term struct {
	Tensor string
	Weight float64
}

// ObjectiveSpec describes the classifier and loss appended to a forward
// graph.
type ObjectiveSpec struct {
	// Features is the forward tensor [N,D] the head reads (models/vit's
	// "features").
	Features string
	// Classes is C, the number of head outputs.
	Classes int
	// Head is HeadLinear or HeadCosine.
	Head HeadKind
	// Mask and Range choose the label masking (logits of masked classes
	// are set to −inf before the softmax, as PILOT's learners do).
	Mask  MaskKind
	Range [2]int
}

// Objective edits a copy of a forward model: it adds a head, a masked
// cross-entropy and extra terms, and offers Op and Input so callers can add
// their own subgraphs (extra loss terms) before Build.
type Objective struct {
	m   *onnxpb.ModelProto
	e   *emitter
	s   *shapes
	dt  int32
	ext []Term
}

// NewObjective starts editing a copy of m.
func NewObjective(m *onnxpb.ModelProto) *Objective {
	c := proto.Clone(m).(*onnxpb.ModelProto)
	return &Objective{m: c, e: newEmitter(c.Graph, "obj_"), dt: tFloat}
}

// Model is the edited model.
func (o *Objective) Model() *onnxpb.ModelProto { return o.m }

// Op appends a standard-domain node (one output) and returns its output's
// name: the hook for caller-built loss terms.
func (o *Objective) Op(opType string, attrs []*onnxpb.AttributeProto, inputs ...string) string {
	return o.e.op(opType, attrs, inputs...)
}

// Int64s adds a 1-D int64 constant (axes, shapes for Op) and returns its
// name.
func (o *Objective) Int64s(v ...int64) string { return o.e.i64(v...) }

// Scalar adds a rank-0 constant of the graph's float type.
func (o *Objective) Scalar(v float64) string { return o.e.scalar(v, o.dt) }

// Input declares a graph input; dims are int (fixed) or string (symbolic).
func (o *Objective) Input(name string, elem int32, dims ...any) error {
	if o.e.taken[name] {
		return fmt.Errorf("grad: the graph already has a tensor named %q", name)
	}
	o.e.taken[name] = true
	t := &tinfo{dt: elem, rank: len(dims)}
	for _, d := range dims {
		switch x := d.(type) {
		case int:
			t.dims = append(t.dims, known(int64(x)))
		case string:
			t.dims = append(t.dims, dim{n: -1, sym: x})
		default:
			return fmt.Errorf("grad: input %q: dimension %v is neither int nor string", name, d)
		}
	}
	o.m.Graph.Input = append(o.m.Graph.Input, valueInfo(name, t))
	return nil
}

// AddTerm adds weight × tensor to the loss Classifier builds (call before
// Classifier).
func (o *Objective) AddTerm(t Term) { o.ext = append(o.ext, t) }

// Classifier appends the head and the loss: inputs LabelsName int64 [N],
// the head's parameters (HeadWeightName and HeadBiasName or HeadSigmaName)
// and, for MaskInput, ClassMaskName; outputs LogitsName [N,C] and LossName
// [1] = mean over the batch of −log softmax(masked logits)[label] + Σ terms.
func (o *Objective) Classifier(spec ObjectiveSpec) error {
	g := o.m.Graph
	for _, n := range []string{LogitsName, LossName} {
		if o.e.taken[n] {
			return fmt.Errorf("grad: the graph already has a tensor named %q", n)
		}
	}
	if err := lowerContrib(g); err != nil {
		return err
	}
	o.s = inferGraph(g)
	fi := o.s.get(spec.Features)
	if !o.e.taken[spec.Features] {
		return fmt.Errorf("grad: features %q are not a tensor of the graph", spec.Features)
	}
	if fi.rank != 2 || !fi.dims[1].known() {
		return fmt.Errorf("grad: features %q must be [N,D] with D known (shape %v)", spec.Features, fi)
	}
	if fi.dt == tDouble {
		o.dt = tDouble
	}
	D, C := int(fi.dims[1].n), spec.Classes
	if C < 1 {
		return fmt.Errorf("grad: %d classes", C)
	}
	batch := any("batch")
	if d := fi.dims[0]; d.known() {
		batch = int(d.n)
	} else if d.sym[0] != '?' {
		batch = d.sym
	}
	var logits string
	switch spec.Head {
	case HeadLinear:
		if err := o.inputs([]string{HeadWeightName, HeadBiasName}, [][]any{{D, C}, {C}}); err != nil {
			return err
		}
		logits = o.Op("Add", nil, o.Op("MatMul", nil, spec.Features, HeadWeightName), HeadBiasName)
	case HeadCosine:
		if err := o.inputs([]string{HeadWeightName, HeadSigmaName}, [][]any{{C, D}, {1}}); err != nil {
			return err
		}
		x := o.normalize(spec.Features)
		w := o.normalize(HeadWeightName)
		cos := o.Op("MatMul", nil, x, o.Op("Transpose", []attr{attrInts("perm", 1, 0)}, w))
		logits = o.Op("Mul", nil, cos, HeadSigmaName)
	default:
		return fmt.Errorf("grad: head %q unknown: use linear or cosine", spec.Head)
	}
	switch spec.Mask {
	case MaskNone:
	case MaskInput:
		if err := o.Input(ClassMaskName, o.dt, C); err != nil {
			return err
		}
		logits = o.maskWhere(logits, o.Op("Cast", []attr{attrInt("to", int64(tBool))}, ClassMaskName))
	case MaskRange:
		lo, hi := spec.Range[0], spec.Range[1]
		if lo < 0 || hi > C || lo >= hi {
			return fmt.Errorf("grad: class range [%d,%d) is not inside [0,%d)", lo, hi, C)
		}
		v := make([]bool, C)
		for i := lo; i < hi; i++ {
			v[i] = true
		}
		logits = o.maskWhere(logits, o.boolConst(v))
	default:
		return fmt.Errorf("grad: mask %q unknown: use input or range", spec.Mask)
	}
	o.rename(logits, LogitsName)
	if err := o.Input(LabelsName, tInt64, batch); err != nil {
		return err
	}
	logp := o.Op("LogSoftmax", []attr{attrInt("axis", 1)}, LogitsName)
	lab := o.Op("Unsqueeze", nil, LabelsName, o.e.i64(1))
	picked := o.Op("GatherElements", []attr{attrInt("axis", 1)}, logp, lab) // [N,1]
	ce := o.Op("Neg", nil, o.Op("ReduceMean", []attr{attrInts("axes", 1), attrInt("keepdims", 0)},
		o.Op("Reshape", nil, picked, o.e.i64(1, -1))))
	loss := ce
	for _, t := range o.ext {
		if !o.e.taken[t.Tensor] {
			return fmt.Errorf("grad: loss term %q is not a tensor of the graph", t.Tensor)
		}
		v := o.Op("Reshape", nil, t.Tensor, o.e.i64(1))
		if t.Weight != 1 {
			v = o.Op("Mul", nil, v, o.e.scalar(t.Weight, o.dt))
		}
		loss = o.Op("Add", nil, loss, v)
	}
	o.rename(loss, LossName)
	return nil
}

func (o *Objective) inputs(names []string, dims [][]any) error {
	for i, n := range names {
		if err := o.Input(n, o.dt, dims[i]...); err != nil {
			return err
		}
	}
	return nil
}

// normalize divides the rows of x [R,D] by their L2 norm (√(Σx² + 10⁻²⁴),
// torch's F.normalize with eps 1e-12 for any row that is not ~0).
func (o *Objective) normalize(x string) string {
	ss := o.Op("ReduceSum", []attr{attrInt("keepdims", 1)}, o.Op("Mul", nil, x, x), o.e.i64(-1))
	n := o.Op("Sqrt", nil, o.Op("Add", nil, ss, o.e.scalar(1e-24, o.dt)))
	return o.Op("Div", nil, x, n)
}

func (o *Objective) maskWhere(logits, cond string) string {
	return o.Op("Where", nil, cond, logits, o.e.scalar(math.Inf(-1), o.dt))
}

func (o *Objective) boolConst(v []bool) string {
	raw := make([]byte, len(v))
	for i, b := range v {
		if b {
			raw[i] = 1
		}
	}
	name := o.e.fresh("mask")
	o.m.Graph.Initializer = append(o.m.Graph.Initializer, &onnxpb.TensorProto{Name: proto.String(name),
		Dims: []int64{int64(len(v))}, DataType: proto.Int32(tBool), RawData: raw})
	return name
}

// rename makes the node producing from write to name instead.
func (o *Objective) rename(from, to string) {
	for _, n := range o.m.Graph.Node {
		for j, out := range n.Output {
			if out == from {
				n.Output[j] = to
				o.e.taken[to] = true
				return
			}
		}
	}
}
