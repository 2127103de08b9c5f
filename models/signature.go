package models

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cl-dev/cl/models/onnxpb"
)

// Signature is what CheckSignature learns of a backbone graph.
type Signature struct {
	Dim    int // feature width D; 0 when symbolic
	FixedN int // batch size when the model fixes it; 0 when dynamic
}

// CheckSignature validates the manifest's input and output against the
// graph's declared types, filling empty manifest names when the graph has
// exactly one candidate.
func CheckSignature(name string, g *onnxpb.GraphProto, man *Manifest) (Signature, error) {
	var sig Signature
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	var inputs []*onnxpb.ValueInfoProto
	for _, v := range g.GetInput() {
		if !inits[v.GetName()] {
			inputs = append(inputs, v)
		}
	}
	in, err := pickValue(name, "input", man.Input, inputs)
	if err != nil {
		return sig, err
	}
	out, err := pickValue(name, "output", man.Output, g.GetOutput())
	if err != nil {
		return sig, err
	}
	if len(inputs) != 1 {
		return sig, fmt.Errorf("%s has %d inputs (%s); a backbone takes one image input", name, len(inputs), valueNames(inputs))
	}
	man.Input, man.Output = in.GetName(), out.GetName()
	s := man.Preprocess.Crop
	et, dims, ok := tensorType(in)
	if !ok || et != int32(onnxpb.TensorProto_FLOAT) || len(dims) != 4 {
		return sig, fmt.Errorf("%s: input %q is %s; a backbone needs float32 [N,3,%d,%d] images", name, in.GetName(), typeString(in), s, s)
	}
	want := []int64{-1, 3, int64(s), int64(s)}
	for i := 1; i < 4; i++ {
		if dims[i] >= 0 && dims[i] != want[i] {
			return sig, fmt.Errorf("%s: input %q is %s, but the manifest says [N,3,%d,%d] (preprocess crop %d)", name, in.GetName(), typeString(in), s, s, s)
		}
	}
	if dims[0] > 0 {
		sig.FixedN = int(dims[0])
	}
	et, dims, ok = tensorType(out)
	if !ok || et != int32(onnxpb.TensorProto_FLOAT) || len(dims) != 2 {
		return sig, fmt.Errorf("%s: output %q is %s; a backbone's feature output must be float32 [N,D] (use `cl models cut --tensor NAME` to expose a feature tensor)", name, out.GetName(), typeString(out))
	}
	if dims[1] > 0 {
		sig.Dim = int(dims[1])
	}
	return sig, nil
}

func pickValue(model, what, want string, vs []*onnxpb.ValueInfoProto) (*onnxpb.ValueInfoProto, error) {
	if want == "" {
		if len(vs) == 1 {
			return vs[0], nil
		}
		return nil, fmt.Errorf("%s has %d graph %ss (%s) and the manifest names none", model, len(vs), what, valueNames(vs))
	}
	for _, v := range vs {
		if v.GetName() == want {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%s: the manifest's %s %q is not a graph %s (have %s)", model, what, want, what, valueNames(vs))
}

func valueNames(vs []*onnxpb.ValueInfoProto) string {
	if len(vs) == 0 {
		return "none"
	}
	var s []string
	for _, v := range vs {
		s = append(s, strconv.Quote(v.GetName()))
	}
	return strings.Join(s, ", ")
}

// tensorType returns the element type and dims (−1 = symbolic or unknown) of
// a tensor value; ok is false when v is not a tensor or has no shape.
func tensorType(v *onnxpb.ValueInfoProto) (elem int32, dims []int64, ok bool) {
	tt := v.GetType().GetTensorType()
	if tt == nil || tt.GetShape() == nil {
		return tt.GetElemType(), nil, false
	}
	for _, d := range tt.GetShape().GetDim() {
		if _, isVal := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue); isVal {
			dims = append(dims, d.GetDimValue())
		} else {
			dims = append(dims, -1)
		}
	}
	return tt.GetElemType(), dims, true
}

// DTypeName is the lower-case name of an ONNX element type ("float32", "uint8", …).
func DTypeName(elem int32) string {
	switch onnxpb.TensorProto_DataType(elem) {
	case onnxpb.TensorProto_FLOAT:
		return "float32"
	case onnxpb.TensorProto_DOUBLE:
		return "float64"
	case onnxpb.TensorProto_FLOAT16:
		return "float16"
	case onnxpb.TensorProto_BFLOAT16:
		return "bfloat16"
	case onnxpb.TensorProto_UNDEFINED:
		return "?"
	}
	if n, ok := onnxpb.TensorProto_DataType_name[elem]; ok {
		return strings.ToLower(n)
	}
	return "type" + strconv.Itoa(int(elem))
}

// ShapeString renders a value's shape as "[batch_size,3,224,224]"; unknown
// dims print as "?".
func ShapeString(v *onnxpb.ValueInfoProto) string {
	tt := v.GetType().GetTensorType()
	if tt == nil || tt.GetShape() == nil {
		return "[?]"
	}
	var s []string
	for _, d := range tt.GetShape().GetDim() {
		switch x := d.GetValue().(type) {
		case *onnxpb.TensorShapeProto_Dimension_DimValue:
			s = append(s, strconv.FormatInt(x.DimValue, 10))
		case *onnxpb.TensorShapeProto_Dimension_DimParam:
			s = append(s, x.DimParam)
		default:
			s = append(s, "?")
		}
	}
	return "[" + strings.Join(s, ",") + "]"
}

func typeString(v *onnxpb.ValueInfoProto) string {
	if v.GetType().GetTensorType() == nil {
		return "not a tensor"
	}
	return DTypeName(v.GetType().GetTensorType().GetElemType()) + " " + ShapeString(v)
}

// ValueInfo declares a tensor value: element type elem and dims, where a
// dim < 0 is the symbolic batch dimension "batch".
func ValueInfo(name string, elem onnxpb.TensorProto_DataType, dims ...int64) *onnxpb.ValueInfoProto {
	var d []*onnxpb.TensorShapeProto_Dimension
	for _, v := range dims {
		if v < 0 {
			d = append(d, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch"}})
		} else {
			d = append(d, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: v}})
		}
	}
	e := int32(elem)
	return &onnxpb.ValueInfoProto{Name: &name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: &e, Shape: &onnxpb.TensorShapeProto{Dim: d}}}}}
}
