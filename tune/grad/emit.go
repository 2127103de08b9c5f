package grad

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/models/onnxpb"
)

// Element types used by the rules (onnxpb.TensorProto_DataType values).
const (
	tFloat  = int32(onnxpb.TensorProto_FLOAT)
	tDouble = int32(onnxpb.TensorProto_DOUBLE)
	tInt64  = int32(onnxpb.TensorProto_INT64)
	tBool   = int32(onnxpb.TensorProto_BOOL)
)

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

func attrString(name, v string) attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

func attrTensor(name string, t *onnxpb.TensorProto) attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t}
}

// emitter appends nodes and constants to a graph under fresh names.
type emitter struct {
	g      *onnxpb.GraphProto
	prefix string          // prefix of every new tensor and node name
	n      int             // name counter
	taken  map[string]bool // every tensor name in the graph
	consts map[string]string
	shapes map[string]string // tensor → its Shape tensor (one per tensor)
	pieces map[string]piece  // Gather gradients not yet padded (accumulate)
}

func newEmitter(g *onnxpb.GraphProto, prefix string) *emitter {
	e := &emitter{g: g, prefix: prefix, taken: map[string]bool{}, consts: map[string]string{}, shapes: map[string]string{},
		pieces: map[string]piece{}}
	for _, v := range g.GetInput() {
		e.taken[v.GetName()] = true
	}
	for _, t := range g.GetInitializer() {
		e.taken[t.GetName()] = true
	}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			e.taken[o] = true
		}
	}
	return e
}

// fresh returns an unused tensor name containing hint.
func (e *emitter) fresh(hint string) string {
	for {
		e.n++
		s := e.prefix + hint + "_" + strconv.Itoa(e.n)
		if !e.taken[s] {
			e.taken[s] = true
			return s
		}
	}
}

// op appends a standard-domain node with one output and returns its name.
func (e *emitter) op(opType string, attrs []attr, inputs ...string) string {
	return e.opN(opType, attrs, 1, inputs...)[0]
}

// opN appends a node with nout outputs.
func (e *emitter) opN(opType string, attrs []attr, nout int, inputs ...string) []string {
	outs := make([]string, nout)
	for i := range outs {
		outs[i] = e.fresh(opType)
	}
	e.g.Node = append(e.g.Node, &onnxpb.NodeProto{OpType: proto.String(opType), Name: proto.String(outs[0]),
		Input: inputs, Output: outs, Attribute: attrs})
	return outs
}

// i64 is a 1-D int64 constant (shared between uses).
func (e *emitter) i64(v ...int64) string { return e.i64dims([]int64{int64(len(v))}, v...) }

// i64s is a scalar int64 constant.
func (e *emitter) i64s(v int64) string { return e.i64dims([]int64{}, v) }

func (e *emitter) i64dims(dims []int64, v ...int64) string {
	key := fmt.Sprint("i64", dims, v)
	if n, ok := e.consts[key]; ok {
		return n
	}
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	name := e.fresh("const")
	e.g.Initializer = append(e.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: dims,
		DataType: proto.Int32(tInt64), RawData: raw})
	e.consts[key] = name
	return name
}

// scalar is a rank-0 constant of element type dt (float or double).
func (e *emitter) scalar(v float64, dt int32) string {
	key := fmt.Sprint("s", dt, math.Float64bits(v))
	if n, ok := e.consts[key]; ok {
		return n
	}
	name := e.fresh("const")
	e.g.Initializer = append(e.g.Initializer, scalarTensor(name, v, dt))
	e.consts[key] = name
	return name
}

func scalarTensor(name string, v float64, dt int32) *onnxpb.TensorProto {
	var raw []byte
	if dt == tDouble {
		raw = binary.LittleEndian.AppendUint64(nil, math.Float64bits(v))
	} else {
		raw = binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(v)))
	}
	t := &onnxpb.TensorProto{Dims: []int64{}, DataType: proto.Int32(dt), RawData: raw}
	if name != "" {
		t.Name = proto.String(name)
	}
	return t
}

// shape returns Shape(x), emitted once per tensor.
func (e *emitter) shape(x string) string {
	if s, ok := e.shapes[x]; ok {
		return s
	}
	s := e.op("Shape", nil, x)
	e.shapes[x] = s
	return s
}

// zerosLike is a tensor of zeros with the shape of x, element type dt.
func (e *emitter) zerosLike(x string, dt int32) string {
	return e.op("ConstantOfShape", []attr{attrTensor("value", oneElem(0, dt))}, e.shape(x))
}

func oneElem(v float64, dt int32) *onnxpb.TensorProto {
	t := scalarTensor("", v, dt)
	t.Dims = []int64{1}
	return t
}

// transposeLast2 swaps the last two axes of a tensor of the given rank.
func (e *emitter) transposeLast2(x string, rank int) string {
	perm := make([]int64, rank)
	for i := range perm {
		perm[i] = int64(i)
	}
	perm[rank-1], perm[rank-2] = perm[rank-2], perm[rank-1]
	return e.op("Transpose", []attr{attrInts("perm", perm...)}, x)
}

// sum adds tensors of one shape (one name: itself).
func (e *emitter) sum(xs []string) string {
	switch len(xs) {
	case 1:
		return xs[0]
	case 2:
		return e.op("Add", nil, xs[0], xs[1])
	}
	return e.op("Sum", nil, xs...)
}

// ---- reading nodes ----

func getAttr(n *onnxpb.NodeProto, name string) attr {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

func attrIntOr(n *onnxpb.NodeProto, name string, def int64) int64 {
	if a := getAttr(n, name); a != nil {
		return a.GetI()
	}
	return def
}

func attrFloatOr(n *onnxpb.NodeProto, name string, def float32) float32 {
	if a := getAttr(n, name); a != nil {
		return a.GetF()
	}
	return def
}

func attrIntsOr(n *onnxpb.NodeProto, name string, def []int64) []int64 {
	if a := getAttr(n, name); a != nil {
		return a.GetInts()
	}
	return def
}

// input returns the i-th input name of n, "" when absent.
func input(n *onnxpb.NodeProto, i int) string {
	if i < len(n.GetInput()) {
		return n.GetInput()[i]
	}
	return ""
}

// tensorValues decodes an int64 or int32 tensor's values (nil, false for
// other types).
func tensorInts(t *onnxpb.TensorProto) ([]int64, bool) {
	switch t.GetDataType() {
	case tInt64:
		if raw := t.GetRawData(); raw != nil {
			v := make([]int64, len(raw)/8)
			for i := range v {
				v[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
			return v, true
		}
		return append([]int64(nil), t.GetInt64Data()...), true
	case int32(onnxpb.TensorProto_INT32):
		if raw := t.GetRawData(); raw != nil {
			v := make([]int64, len(raw)/4)
			for i := range v {
				v[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
			}
			return v, true
		}
		v := make([]int64, len(t.GetInt32Data()))
		for i, x := range t.GetInt32Data() {
			v[i] = int64(x)
		}
		return v, true
	}
	return nil, false
}

// tensorFloats decodes a float or double tensor into float64s.
func tensorFloats(t *onnxpb.TensorProto) ([]float64, bool) {
	switch t.GetDataType() {
	case tFloat:
		if raw := t.GetRawData(); raw != nil {
			v := make([]float64, len(raw)/4)
			for i := range v {
				v[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
			}
			return v, true
		}
		v := make([]float64, len(t.GetFloatData()))
		for i, x := range t.GetFloatData() {
			v[i] = float64(x)
		}
		return v, true
	case tDouble:
		if raw := t.GetRawData(); raw != nil {
			v := make([]float64, len(raw)/8)
			for i := range v {
				v[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
			}
			return v, true
		}
		return append([]float64(nil), t.GetDoubleData()...), true
	}
	return nil, false
}
