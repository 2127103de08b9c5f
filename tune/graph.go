package tune

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/models/onnxpb"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune/grad"
)

// Names of the tensors the training graph adds to a backbone.
const (
	// HeadWeight is the cosine classifier's weight, float32 [C,W].
	HeadWeight = "head.weight"
	// HeadSigma is the cosine classifier's learnable scale σ, float32 [1].
	HeadSigma = "head.sigma"
	// LabelsInput is the one-hot targets, float32 [N,C].
	LabelsInput = "labels_onehot"
	// LogitsOutput is σ·cos(f, w_c), float32 [N,C].
	LogitsOutput = "logits"
	// LossOutput is the mean cross-entropy, float32 [1].
	LossOutput = "loss"
)

// normEps2 is added under the square root of ‖x‖²: torch's F.normalize
// clamps ‖x‖ at 1e-12 instead; the two agree for any non-zero feature.
const normEps2 = 1e-24

// AddCosineHead appends to the forward graph m (output features [N,W]) the
// cosine classifier of APER/SimpleCIL (docs/METHODS.md §2.0):
// logits = σ·⟨f/‖f‖, w_c/‖w_c‖⟩ with inputs HeadWeight [C,W] and HeadSigma
// [1], and the mean cross-entropy against the one-hot LabelsInput [N,C]:
// loss = −mean_n Σ_c y_nc·log softmax(logits)_nc. Outputs become
// LossOutput and LogitsOutput. m is modified in place.
func AddCosineHead(m *onnxpb.ModelProto, features string, width, classes int) {
	g := m.Graph
	b := &nodes{g: g, prefix: "head_"}
	eps := b.constF32(normEps2)
	normalize := func(x string) string {
		ss := b.op("ReduceSum", []*onnxpb.AttributeProto{attrInt("keepdims", 1)}, b.op("Mul", nil, x, x), b.constI64(-1))
		return b.op("Div", nil, x, b.op("Sqrt", nil, b.op("Add", nil, ss, eps)))
	}
	fn := normalize(features)
	wn := normalize(HeadWeight)
	cos := b.op("MatMul", nil, fn, b.op("Transpose", []*onnxpb.AttributeProto{attrInts("perm", 1, 0)}, wn))
	logits := b.opNamed("Mul", LogitsOutput, nil, cos, HeadSigma)
	lsm := b.op("LogSoftmax", []*onnxpb.AttributeProto{attrInt("axis", -1)}, logits)
	per := b.op("ReduceSum", []*onnxpb.AttributeProto{attrInt("keepdims", 0)}, b.op("Mul", nil, lsm, LabelsInput), b.constI64(-1))
	mean := b.op("ReduceMean", []*onnxpb.AttributeProto{attrInt("keepdims", 1)}, per) // [1]: onnxruntime_go cannot return rank-0 tensors
	b.opNamed("Neg", LossOutput, nil, mean)
	g.Input = append(g.Input,
		valueInfo(HeadWeight, int64(classes), int64(width)),
		valueInfo(HeadSigma, 1),
		valueInfoBatch(LabelsInput, int64(classes)))
	g.Output = []*onnxpb.ValueInfoProto{valueInfo(LossOutput, 1), valueInfoBatch(LogitsOutput, int64(classes))}
}

// TrainingGraph builds the variant of w that method trains, with the cosine
// head for classes classes and the loss, and differentiates it: inputs are
// the image, the variant's parameters, HeadWeight, HeadSigma and
// LabelsInput; outputs the loss, the logits and grad.GradName of every
// trained tensor (the variant's parameters, then the head's), in Trainable
// order.
func TrainingGraph(w *vit.Weights, method Method, classes int) (*onnxpb.ModelProto, []vit.ParamSpec, error) {
	opt := method.vitOptions()
	m, err := vit.Build(w, opt)
	if err != nil {
		return nil, nil, err
	}
	nopt, err := vit.NormalizedOptions(w.Config, opt)
	if err != nil {
		return nil, nil, err
	}
	specs := vit.ParamSpecs(w.Config, nopt)
	for _, s := range specs {
		if s.Batched {
			return nil, nil, fmt.Errorf("%s: variant %s has per-image parameters (%s), which first-session tuning does not train", method.Name, method.Variant, s.Name)
		}
	}
	AddCosineHead(m, vit.OutputName, w.Width, classes)
	var trainable []string
	for _, s := range specs {
		trainable = append(trainable, s.Name)
	}
	trainable = append(trainable, HeadWeight, HeadSigma)
	tg, err := grad.Build(m, grad.Spec{Trainable: trainable, Loss: LossOutput, Keep: []string{LogitsOutput}})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: differentiating the training graph: %w", method.Name, err)
	}
	return tg, specs, nil
}

func (m Method) vitOptions() vit.Options {
	return vit.Options{Variant: m.Variant, Tokens: m.Tokens, Layers: m.Layers, Bottleneck: m.Bottleneck, Scale: m.Scale}
}

// nodes appends nodes with fresh output names to a graph.
type nodes struct {
	g      *onnxpb.GraphProto
	prefix string
	n      int
}

func (b *nodes) fresh() string {
	b.n++
	return fmt.Sprintf("%s%d", b.prefix, b.n)
}

func (b *nodes) op(op string, attrs []*onnxpb.AttributeProto, in ...string) string {
	return b.opNamed(op, b.fresh(), attrs, in...)
}

func (b *nodes) opNamed(op, out string, attrs []*onnxpb.AttributeProto, in ...string) string {
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(out), Input: in, Output: []string{out}, Attribute: attrs})
	return out
}

func (b *nodes) constF32(v float32) string {
	name := b.fresh()
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: []float32{v}})
	return name
}

func (b *nodes) constI64(v ...int64) string {
	name := b.fresh()
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: []int64{int64(len(v))}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: v})
	return name
}

func attrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func attrInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func tensorInfo(name string, dims []*onnxpb.TensorShapeProto_Dimension) *onnxpb.ValueInfoProto {
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: &onnxpb.TensorShapeProto{Dim: dims}}}}}
}

func dimValue(v int64) *onnxpb.TensorShapeProto_Dimension {
	return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: v}}
}

func valueInfo(name string, dims ...int64) *onnxpb.ValueInfoProto {
	var d []*onnxpb.TensorShapeProto_Dimension
	for _, v := range dims {
		d = append(d, dimValue(v))
	}
	return tensorInfo(name, d)
}

func valueInfoBatch(name string, dims ...int64) *onnxpb.ValueInfoProto {
	d := []*onnxpb.TensorShapeProto_Dimension{{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: vit.BatchDim}}}
	for _, v := range dims {
		d = append(d, dimValue(v))
	}
	return tensorInfo(name, d)
}
