package grad

import (
	"math/rand/v2"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/internal/testenv"
	"github.com/cl-dev/cl/models/onnxpb"
)

// tgraph builds small test models.
type tgraph struct {
	m  *onnxpb.ModelProto
	dt int32
}

func newTGraph(dt int32) *tgraph {
	return &tgraph{dt: dt, m: &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph:       &onnxpb.GraphProto{Name: proto.String("t")},
	}}
}

func (t *tgraph) g() *onnxpb.GraphProto { return t.m.Graph }

// input declares a graph input; dims < 0 are symbolic.
func (t *tgraph) input(name string, dt int32, dims ...int64) {
	t.g().Input = append(t.g().Input, testenv.ValueInfo(name, dt, dims))
}

func (t *tgraph) output(name string) {
	t.g().Output = append(t.g().Output, &onnxpb.ValueInfoProto{Name: proto.String(name)})
}

func (t *tgraph) node(op string, in []string, out []string, attrs ...attr) {
	t.g().Node = append(t.g().Node, &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String("n_" + out[0]),
		Input: in, Output: out, Attribute: attrs})
}

func (t *tgraph) initI64(name string, dims []int64, v ...int64) {
	if dims == nil {
		dims = []int64{int64(len(v))}
	}
	t.g().Initializer = append(t.g().Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: dims,
		DataType: proto.Int32(tInt64), Int64Data: v})
}

func (t *tgraph) initF(name string, dt int32, dims []int64, v []float64) {
	tp := &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(dt)}
	if dt == tDouble {
		tp.DoubleData = v
	} else {
		for _, x := range v {
			tp.FloatData = append(tp.FloatData, float32(x))
		}
	}
	t.g().Initializer = append(t.g().Initializer, tp)
}

func randn(r *rand.Rand, n int, scale, offset float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = offset + scale*r.NormFloat64()
	}
	return v
}

func numel(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}
