// Package testenv holds helpers shared by the project's tests: tiny ONNX
// graphs, and the checks that skip a test (or fail it under CI=true) when
// something it needs is missing.
package testenv

import (
	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/models/onnxpb"
)

// ValueInfo describes a tensor value of element type elem; a dim < 0 is
// symbolic, named "N", "D", "H", "W" by its position.
func ValueInfo(name string, elem int32, dims []int64) *onnxpb.ValueInfoProto {
	var d []*onnxpb.TensorShapeProto_Dimension
	for i, v := range dims {
		if v < 0 {
			d = append(d, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: []string{"N", "D", "H", "W", "X", "Y", "Z"}[i%7]}})
		} else {
			d = append(d, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: v}})
		}
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(elem), Shape: &onnxpb.TensorShapeProto{Dim: d}}}}}
}

// OneNodeGraph builds an opset-17 model of one node: input "x" (inElem,
// inDims) → op → output "y" (outElem, outDims). It has no cl manifest.
func OneNodeGraph(op string, inElem onnxpb.TensorProto_DataType, inDims []int64, outElem onnxpb.TensorProto_DataType, outDims []int64, attrs ...*onnxpb.AttributeProto) *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph: &onnxpb.GraphProto{
			Name:   proto.String("g"),
			Node:   []*onnxpb.NodeProto{{OpType: proto.String(op), Input: []string{"x"}, Output: []string{"y"}, Attribute: attrs}},
			Input:  []*onnxpb.ValueInfoProto{ValueInfo("x", int32(inElem), inDims)},
			Output: []*onnxpb.ValueInfoProto{ValueInfo("y", int32(outElem), outDims)},
		},
	}
}
